"""The dashboard's reads from Prometheus (or Thanos/Mimir, same API), with timeouts and a breaker.

Every query is PromQL over the metrics of ``core.adapters.telemetry``. A slow or dead Prometheus must not
stall a page: each request has a short timeout and at most one retry, and after
``failure_threshold`` failures in a row this client stops calling for ``cooldown_seconds`` and
answers ``PrometheusUnavailable`` at once (its own circuit breaker, in process: it guards this
process's calls, nothing else needs to see it).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from core.domain.exceptions import PrometheusUnavailable

if TYPE_CHECKING:
    import pandas as pd

RATE_WINDOW = "1m"

ERROR_RATE_BY_CATEGORY = (
    "sum by (category) (rate(krowoc_execution_errors_total[{w}]))"
    " / scalar(sum(rate(krowoc_execution_duration_seconds_count[{w}])))"
)
EXECUTION_LATENCY_QUANTILE = (
    "histogram_quantile({q}, sum by (le) (rate(krowoc_execution_duration_seconds_bucket[{w}])))"
)
EXECUTION_LATENCY_QUANTILE_BY_PROVIDER = (
    "histogram_quantile({q}, sum by (le, provider) (rate(krowoc_execution_duration_seconds_bucket[{w}])))"
)
API_RESPONSE_TIME_QUANTILE = (
    "histogram_quantile({q}, sum by (le) (rate(krowoc_http_request_duration_seconds_bucket[{w}])))"
)
REQUEST_RATE = "sum(rate(krowoc_http_request_duration_seconds_count[{w}]))"
EXECUTION_RATE = "sum(rate(krowoc_execution_duration_seconds_count[{w}]))"
BREAKER_STATE = "max by (provider) (krowoc_circuit_breaker_state)"


@dataclass(frozen=True)
class PrometheusQuery:
    """A PromQL expression with the label that names its series (None: one series)."""

    promql: str
    series_label: str | None = None


def _frame(result: list[dict[str, Any]], label: str | None, *, ranged: bool) -> pd.DataFrame:
    # pandas is imported on first use: under pandas 3 it loads pyarrow, which a process that never
    # reads Prometheus (the platform's API importing core) should not pay for.
    import pandas as pd

    times: list[float] = []
    series: list[str] = []
    values: list[float] = []
    for item in result:
        name = str(item.get("metric", {}).get(label, "")) if label else "all"
        points = item.get("values", []) if ranged else [item.get("value")]
        for point in points:
            if not point:
                continue
            times.append(float(point[0]))
            series.append(name)
            values.append(float(point[1]))
    return pd.DataFrame(
        {
            "time": pd.to_datetime(pd.Series(times, dtype="float64"), unit="s", utc=True),
            "series": pd.Series(series, dtype="object"),
            "value": pd.Series(values, dtype="float64"),
        }
    )


class PrometheusClient:
    """PromQL reads for the live panels: error rate by category, latency quantiles, rates, breakers."""

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float = 2.0,
        failure_threshold: int = 3,
        cooldown_seconds: float = 30.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self._client = PrometheusConnect(
            url=self.url,
            disable_ssl=True,
            retry=Retry(total=1, backoff_factor=0.1, status_forcelist=[502, 503, 504]),
            timeout=int(max(1, round(timeout_seconds))),
        )
        self._failures = 0
        self._open_until = 0.0
        self._lock = threading.Lock()

    # -- the breaker -------------------------------------------------------------------------

    @property
    def breaker_open(self) -> bool:
        """Whether calls are being refused after repeated failures."""
        return time.monotonic() < self._open_until

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self.breaker_open:
            raise PrometheusUnavailable(
                f"Prometheus at {self.url} failed {self.failure_threshold} times in a row; "
                f"not asking again for up to {self.cooldown_seconds:.0f} s."
            )
        try:
            result = fn(*args, timeout=self.timeout_seconds, **kwargs)
        except (requests.RequestException, PrometheusApiClientException, ValueError, KeyError) as exc:
            with self._lock:
                self._failures += 1
                if self._failures >= self.failure_threshold:
                    self._open_until = time.monotonic() + self.cooldown_seconds
            raise PrometheusUnavailable(f"Prometheus at {self.url} did not answer: {exc.__class__.__name__}") from exc
        with self._lock:
            self._failures = 0
        return result

    # -- queries -----------------------------------------------------------------------------

    def instant(self, query: PrometheusQuery) -> pd.DataFrame:
        """Run an instant query; one row per series (columns time, series, value)."""
        return _frame(self._call(self._client.custom_query, query.promql), query.series_label, ranged=False)

    def range(self, query: PrometheusQuery, *, start: datetime, end: datetime, step: timedelta) -> pd.DataFrame:
        """Run a range query; one row per series and step (columns time, series, value)."""
        if end <= start:
            raise ValueError("the end of a Prometheus range must be after its start")
        seconds = f"{max(1, int(step.total_seconds()))}s"
        result = self._call(self._client.custom_query_range, query.promql, start, end, seconds)
        return _frame(result, query.series_label, ranged=True)

    def healthy(self) -> bool:
        """Tell whether Prometheus answers a trivial query now."""
        try:
            self._call(self._client.custom_query, "vector(1)")
        except PrometheusUnavailable:
            return False
        return True

    def error_rate_by_category(self, *, start: datetime, end: datetime, step: timedelta) -> pd.DataFrame:
        """Failed executions per execution, by error category, over time."""
        return self.range(
            PrometheusQuery(ERROR_RATE_BY_CATEGORY.format(w=RATE_WINDOW), "category"), start=start, end=end, step=step
        )

    def execution_latency(
        self, *, q: float, start: datetime, end: datetime, step: timedelta, by_provider: bool = False
    ) -> pd.DataFrame:
        """Return the q-quantile of execution latency in seconds over time (``histogram_quantile``)."""
        _check_quantile(q)
        template = EXECUTION_LATENCY_QUANTILE_BY_PROVIDER if by_provider else EXECUTION_LATENCY_QUANTILE
        query = PrometheusQuery(template.format(q=q, w=RATE_WINDOW), "provider" if by_provider else None)
        return self.range(query, start=start, end=end, step=step)

    def api_response_time(self, *, q: float, start: datetime, end: datetime, step: timedelta) -> pd.DataFrame:
        """Return the q-quantile of API response time in seconds over time."""
        _check_quantile(q)
        query = PrometheusQuery(API_RESPONSE_TIME_QUANTILE.format(q=q, w=RATE_WINDOW))
        return self.range(query, start=start, end=end, step=step)

    def request_rate(self, *, start: datetime, end: datetime, step: timedelta) -> pd.DataFrame:
        """Return API requests per second over time."""
        return self.range(PrometheusQuery(REQUEST_RATE.format(w=RATE_WINDOW)), start=start, end=end, step=step)

    def execution_rate(self) -> float | None:
        """Return executions per second now, or None when Prometheus has no sample."""
        frame = self.instant(PrometheusQuery(EXECUTION_RATE.format(w=RATE_WINDOW)))
        return None if frame.empty else float(frame["value"].iloc[0])

    def breaker_states(self) -> dict[str, int]:
        """Each provider's circuit-breaker state now (0 closed, 1 half-open, 2 open)."""
        frame = self.instant(PrometheusQuery(BREAKER_STATE, "provider"))
        return {str(name): int(value) for name, value in zip(frame["series"], frame["value"], strict=True)}


def _check_quantile(q: float) -> None:
    if not 0 < q < 1:
        raise ValueError(f"a quantile is between 0 and 1, not {q}")


def last_hour(now: datetime | None = None) -> tuple[datetime, datetime, timedelta]:
    """Return the live panels' range: the last hour, one point every 30 s."""
    end = (now or datetime.now(UTC)).astimezone(UTC)
    return end - timedelta(hours=1), end, timedelta(seconds=30)
