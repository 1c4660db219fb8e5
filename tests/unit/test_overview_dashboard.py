"""The dashboard's pure parts behind the Overview: links' time ranges, figures, charts, role mapping."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from pydantic import SecretStr

from core.config import Settings
from core.domain.exceptions import (
    DependencyUnavailable,
    InvalidInput,
    PrometheusUnavailable,
    RedisUnavailable,
    SessionStoreUnavailable,
    UnleashUnavailable,
)
from core.domain.models import Role, TimeWindow
from dashboard import charts, formats, time_range, widgets
from dashboard.auth import actor_from_identity, role_for_email
from dashboard.services import settings_key
from dashboard.time_range import RangeChoice
from queries.grain import Grain

NOW = datetime(2026, 11, 26, 4, 50, 30, tzinfo=UTC)


# -- time ranges in links ------------------------------------------------------------------------


@pytest.mark.parametrize("preset", list(time_range.PRESETS))
def test_a_preset_in_the_link_is_read(preset: str) -> None:
    link = time_range.from_query_params({"range": preset})

    assert link == time_range.LinkedRange(RangeChoice(preset))
    assert link.choice is not None
    assert link.choice.window(NOW) == TimeWindow.last(time_range.PRESETS[preset], now=NOW)


def test_a_link_without_a_range_names_none() -> None:
    assert time_range.from_query_params({"other": "x"}) == time_range.LinkedRange(None)


def test_a_custom_range_in_the_link_is_read_in_utc() -> None:
    link = time_range.from_query_params(
        {"range": "custom", "from": "2026-11-20T10:00Z", "to": "2026-11-21T11:30+01:00"}
    )

    assert link.problem is None and link.choice is not None
    assert link.choice.window(NOW) == TimeWindow(
        start=datetime(2026, 11, 20, 10, 0, tzinfo=UTC), end=datetime(2026, 11, 21, 10, 30, tzinfo=UTC)
    )


def test_from_and_to_without_range_still_name_a_custom_range() -> None:
    link = time_range.from_query_params({"from": "2026-11-20T10:00", "to": "2026-11-20T12:00"})

    assert link.choice == RangeChoice.custom(
        datetime(2026, 11, 20, 10, tzinfo=UTC), datetime(2026, 11, 20, 12, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"range": "2w"}, "`2w`"),
        ({"range": "custom"}, "both `from` and `to`"),
        ({"range": "custom", "from": "2026-11-20T10:00Z"}, "both `from` and `to`"),
        ({"from": "last tuesday", "to": "2026-11-20T10:00Z"}, "last tuesday"),
    ],
)
def test_a_link_range_that_cannot_be_used_is_reported(params: dict[str, str], named: str) -> None:
    link = time_range.from_query_params(params)

    assert link.choice is None
    assert link.problem is not None and named in link.problem and "last 24 hours" in link.problem


def test_a_reversed_custom_range_is_refused_with_both_ends_named() -> None:
    reversed_range = RangeChoice.custom(datetime(2026, 11, 21, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC))

    with pytest.raises(InvalidInput, match=r"must be after its start \(2026-11-21 00:00 UTC\)"):
        reversed_range.window(NOW)


def test_a_custom_range_longer_than_400_days_is_refused() -> None:
    too_long = RangeChoice.custom(datetime(2024, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))

    with pytest.raises(InvalidInput, match="at most 400 days"):
        too_long.window(NOW)


def test_choices_write_the_link_they_are_read_from() -> None:
    custom = RangeChoice.custom(
        datetime(2026, 11, 20, 10, 0, 45, tzinfo=UTC), datetime(2026, 11, 21, 9, 15, tzinfo=UTC)
    )

    assert RangeChoice("7d").query_params() == {"range": "7d"}
    assert custom.query_params() == {"range": "custom", "from": "2026-11-20T10:00Z", "to": "2026-11-21T09:15Z"}
    assert time_range.from_query_params(custom.query_params()).choice == custom


def test_a_window_is_described_in_utc_to_the_minute() -> None:
    shown = TimeWindow(start=datetime(2026, 11, 25, 4, 50, 30, tzinfo=UTC), end=NOW)

    assert time_range.describe(shown) == "2026-11-25 04:50 → 2026-11-26 04:50 UTC"


# -- figures -------------------------------------------------------------------------------------


def test_figures_are_written_for_people() -> None:
    assert formats.count(1234567) == "1,234,567"
    assert formats.share(0.02614) == "2.61 %"
    assert formats.share(None) == formats.NOT_AVAILABLE
    assert formats.duration_ms(5480.3) == "5,480 ms"
    assert formats.duration_ms(60_250) == "60.2 s"
    assert formats.usd(Decimal("135.3218")) == "$135.32"
    assert formats.usd(Decimal("0.00421")) == "$0.0042"


def test_sizes_ttls_and_ages_are_written_for_people() -> None:
    assert [formats.size(v) for v in (512, 2048, 412 * 1024**2, 3 * 1024**5)] == [
        "512 B",
        "2.0 KiB",
        "412.0 MiB",
        "3,072.0 TiB",
    ]
    assert [formats.ttl(v) for v in (None, 40, 750, 11_520)] == ["—", "40 s", "12.5 min", "3.2 h"]
    assert [formats.age(v) for v in (-3, 40, 720, 11_100, 400_000)] == ["0 s", "40 s", "12 min", "3 h 5 min", "4 days"]


# -- a part that is down -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (RedisUnavailable("Redis is down: nothing was invalidated."), "Redis is down: nothing was invalidated."),
        (
            SessionStoreUnavailable("Redis did not answer, so the sessions were not dropped."),
            "Redis did not answer, so the sessions were not dropped.",
        ),
        (UnleashUnavailable("the admin token was refused"), "Unleash did not answer: the admin token was refused"),
        (PrometheusUnavailable(), "Prometheus did not answer."),
        (DependencyUnavailable("timed out"), "A dependency did not answer: timed out"),
    ],
)
def test_a_part_that_is_down_is_named_in_its_message(error: DependencyUnavailable, shown: str) -> None:
    assert widgets.part_down(error) == shown


# -- charts --------------------------------------------------------------------------------------


def test_the_overview_timeline_stacks_three_series_on_one_time_axis() -> None:
    span = TimeWindow(start=datetime(2026, 11, 26, 1, tzinfo=UTC), end=datetime(2026, 11, 26, 4, tzinfo=UTC))
    buckets = pd.date_range(span.start, periods=3, freq="h")
    executions = pd.DataFrame(
        {
            "bucket_start": buckets,
            "executions": [60, 0, 120],
            "errors": [3, 0, 6],
            "executions_per_minute": [1.0, 0.0, 2.0],
            "error_rate": [0.05, np.nan, 0.05],
        }
    )
    latency = pd.DataFrame(
        {"bucket_start": buckets, "latency_count": [60, 0, 118], "latency_ms": [900.0, np.nan, 1100.0]}
    )

    figure = charts.overview_timeline(executions, latency, window=span, grain=Grain.HOUR)

    assert [trace.name for trace in figure.data] == ["Executions / min", "Error rate", "p95 latency"]
    assert list(figure.data[0].y) == [1.0, 0.0, 2.0]
    assert figure.layout.xaxis.matches == figure.layout.xaxis2.matches == "x3"  # zooming one zooms all
    assert list(figure.layout.xaxis.range) == [span.start, span.end]
    assert figure.layout.yaxis2.tickformat == ".1%"
    assert "per hour" in figure.layout.xaxis3.title.text
    assert [a.text for a in figure.layout.annotations] == ["Executions per minute", "Error rate", "p95 latency (ms)"]
    # The three plots are stacked without overlapping, top to bottom.
    domains = [tuple(figure.layout[f"yaxis{s}"].domain) for s in ("", "2", "3")]
    assert all(low < high for low, high in domains)
    assert domains[0][0] > domains[1][1] and domains[1][0] > domains[2][1]


def test_each_incident_is_a_dotted_line_across_the_three_plots() -> None:
    span = TimeWindow(start=datetime(2026, 11, 26, 1, tzinfo=UTC), end=datetime(2026, 11, 26, 4, tzinfo=UTC))
    buckets = pd.date_range(span.start, periods=3, freq="h")
    executions = pd.DataFrame(
        {"bucket_start": buckets, "executions": [60, 60, 60], "errors": [1, 30, 1],
         "executions_per_minute": [1.0, 1.0, 1.0], "error_rate": [1 / 60, 0.5, 1 / 60]}
    )  # fmt: skip
    latency = pd.DataFrame({"bucket_start": buckets, "latency_count": [60] * 3, "latency_ms": [900.0] * 3})
    incidents = pd.DataFrame({"bucket_start": [buckets[1]]})

    figure = charts.overview_timeline(executions, latency, window=span, grain=Grain.HOUR, incidents=incidents)

    lines = [(shape.xref, shape.yref, shape.x0) for shape in figure.layout.shapes]
    assert lines == [(f"x{s}", f"y{s} domain", buckets[1]) for s in ("", "2", "3")]
    assert [(trace.xaxis, trace.yaxis) for trace in figure.data] == [("x", "y"), ("x2", "y2"), ("x3", "y3")]


# -- login ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "role"),
    [
        ("boss@krowoc.test", Role.ADMIN),
        ("BOSS@Krowoc.test ", Role.ADMIN),
        ("intern@krowoc.test", Role.VIEWER),
        (None, Role.VIEWER),
    ],
)
def test_admin_emails_map_to_the_admin_role_and_everyone_else_to_viewer(email: str | None, role: Role) -> None:
    assert role_for_email(email, admin_emails=" ops@krowoc.test,boss@krowoc.test ,") is role


def test_an_identity_without_email_is_known_by_its_subject() -> None:
    actor = actor_from_identity({"sub": "auth0|42", "name": "Sam"}, admin_emails="")

    assert (actor.id, actor.role, actor.display_name, actor.dev_login) == ("auth0|42", Role.VIEWER, "Sam", False)


def test_settings_keys_tell_configurations_apart_including_secrets() -> None:
    base = Settings(database_url="postgresql://db/a", redis_url="redis://r")

    assert settings_key(base) == settings_key(Settings(database_url="postgresql://db/a", redis_url="redis://r"))
    assert settings_key(base) != settings_key(Settings(database_url="postgresql://db/b", redis_url="redis://r"))
    assert settings_key(base.model_copy(update={"unleash_admin_token": SecretStr("one")})) != settings_key(
        base.model_copy(update={"unleash_admin_token": SecretStr("two")})
    )
