"""The Unleash Admin API adapter: read every flag in every environment in a handful of calls, and change them.

A catalog read costs one request per environment plus one for the newest change events, whatever
the number of flags, run concurrently: each environment's flags with their state and strategies,
and the change events newer than the last read. Unleash 7 and newer refuse admin tokens on the
client API (``/api/client/features`` takes backend tokens only): an environment whose backend token
the adapter was given is read there, as SDKs get it, from Unleash's cache (fast); the others come
from one evaluation of the playground (``POST /api/admin/playground/advanced``, an admin endpoint
that reads Unleash's own tables and records no event; a few times slower at 500 flags). The
projects, environments, flag types and each flag's project, creation time and environments (and,
without a backend token, its type, description and staleness) change rarely and are read again
every 30 seconds (one request each, one per project). Calls have a timeout, reads one retry on a
refused connection, and a failed connection opens a short circuit breaker so a page never waits on
a dead Unleash more than once.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

from core.domain.exceptions import UnleashUnavailable
from core.flags.models import (
    ChangeRefused,
    EnvironmentState,
    Flag,
    FlagCatalog,
    FlagError,
    FlagEvent,
    Strategy,
    UnknownEnvironment,
    UnknownFlag,
)

CHANGE_EVENT_TYPES = (
    "feature-created",
    "feature-updated",
    "feature-metadata-updated",
    "feature-stale-on",
    "feature-stale-off",
    "feature-environment-enabled",
    "feature-environment-disabled",
    "feature-strategy-add",
    "feature-strategy-update",
    "feature-strategy-remove",
)
RECENT_CHANGES = 1000  # the most the event search returns in one call
LAYOUT_SECONDS = 30.0  # projects, environments and flag types change rarely: read them again after this
INCREMENTAL_CHANGES = 50  # a later catalog read asks only for this many of the newest change events
BREAKER_SECONDS = 5.0
PLAYGROUND_CONTEXT = {"appName": "krowoc-admin"}
"""The context of the playground evaluation: its results are not read, only each flag's state and strategies."""


_TOKEN = re.compile(r"^[^:.]+:([^:.*]+)\.")


def token_environment(token: str) -> str | None:
    """Return the environment an Unleash backend token is for (``<project>:<environment>.<secret>``), else None."""
    match = _TOKEN.match(token)
    return match.group(1) if match else None


class _NotFound(FlagError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason
    if isinstance(body, dict):
        details = body.get("details")
        if isinstance(details, list) and details and isinstance(details[0], dict) and details[0].get("message"):
            return str(details[0]["message"])
        return str(body.get("message") or body.get("error") or response.reason)
    return response.reason


class UnleashAdmin:
    """Talks to one Unleash through its Admin API with an admin token."""

    def __init__(
        self, api_url: str, admin_token: str, *, timeout: float = 3.0, client_tokens: dict[str, str] | None = None
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.client_tokens = dict(client_tokens or {})
        self.session = requests.Session()
        self.session.headers.update({"Authorization": admin_token, "Content-Type": "application/json"})
        self.session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=16))
        self.session.mount("https://", HTTPAdapter(pool_connections=4, pool_maxsize=16))
        self._open_until = 0.0
        self._lock = threading.Lock()
        self._changes_lock = threading.Lock()
        self._layout_lock = threading.Lock()
        self._meta_lock = threading.Lock()
        self._meta: tuple[float, dict[str, tuple[str, dict[str, Any]]]] | None = None
        self._layout_cache: tuple[float, list[str], list[str], dict[str, int | None]] | None = None
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="unleash")
        self._changes: dict[str, FlagEvent] = {}
        self._newest_change_id: int | None = None

    # -- transport --------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        read: bool = False,
        token: str | None = None,
    ) -> Any:
        if time.monotonic() < self._open_until:
            raise UnleashUnavailable(f"Unleash at {self.api_url} did not answer a moment ago; retrying shortly.")
        attempts = 2 if method == "GET" or read else 1
        headers = {"Authorization": token} if token else None
        for attempt in range(attempts):
            try:
                response = self.session.request(
                    method, f"{self.api_url}{path}", json=body, params=params, headers=headers, timeout=self.timeout
                )
                break
            except requests.ConnectionError as exc:
                if attempt + 1 < attempts:
                    time.sleep(0.1)
                    continue
                self._trip()
                problem = f"Unleash at {self.api_url} is unreachable ({exc.__class__.__name__})."
                raise UnleashUnavailable(problem) from exc
            except requests.Timeout as exc:
                self._trip()
                problem = f"Unleash at {self.api_url} did not answer within {self.timeout:g} s."
                raise UnleashUnavailable(problem) from exc
        if response.status_code == 404:
            raise _NotFound(_message(response))
        if response.status_code == 401:
            raise UnleashUnavailable("Unleash refused the admin token (401); check KROWOC_UNLEASH_ADMIN_TOKEN.")
        if response.status_code >= 500:
            self._trip()
            raise UnleashUnavailable(f"Unleash answered {response.status_code}: {_message(response)}")
        if response.status_code >= 400:
            raise ChangeRefused(f"Unleash refused the request ({response.status_code}): {_message(response)}")
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def _trip(self) -> None:
        with self._lock:
            self._open_until = time.monotonic() + BREAKER_SECONDS

    def close(self) -> None:
        """Close pooled connections and the worker threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.session.close()

    def healthy(self) -> bool:
        """Tells whether Unleash answers its health check."""
        try:
            answer = self.session.get(f"{self.api_url.removesuffix('/api')}/health", timeout=self.timeout)
        except requests.RequestException:
            return False
        return answer.status_code == 200

    # -- reads ------------------------------------------------------------------------------

    def projects(self) -> list[str]:
        """List the project ids."""
        return [p["id"] for p in self._call("GET", "/admin/projects")["projects"]]

    def environments(self) -> list[str]:
        """List the enabled environments in Unleash's sort order."""
        envs = self._call("GET", "/admin/environments")["environments"]
        return [e["name"] for e in sorted(envs, key=lambda e: e.get("sortOrder", 0)) if e.get("enabled")]

    def lifetimes(self) -> dict[str, int | None]:
        """Return each flag type's expected lifetime in days (None: permanent)."""
        return {t["id"]: t.get("lifetimeDays") for t in self._call("GET", "/admin/feature-types")["types"]}

    def recent_changes(self, *, limit: int = RECENT_CHANGES, feature: str | None = None) -> list[FlagEvent]:
        """Return the newest change events (of one flag when given), newest first."""
        params: dict[str, Any] = {"limit": limit, "type": "IS_ANY_OF:" + ",".join(CHANGE_EVENT_TYPES)}
        if feature:
            params["feature"] = f"IS:{feature}"
        return [self._event(e) for e in self._call("GET", "/admin/search/events", params=params)["events"]]

    def events(self, name: str, *, limit: int = 100) -> list[FlagEvent]:
        """Return every kind of event Unleash logged about one flag, newest first."""
        params = {"limit": limit, "feature": f"IS:{name}"}
        return [self._event(e) for e in self._call("GET", "/admin/search/events", params=params)["events"]]

    @staticmethod
    def _event(raw: dict[str, Any]) -> FlagEvent:
        return FlagEvent(
            id=int(raw["id"]),
            at=_parse_time(raw.get("createdAt")) or datetime.now(UTC),
            type=str(raw.get("type")),
            by=str(raw.get("createdBy") or "unknown"),
            environment=raw.get("environment"),
            project=raw.get("project"),
            feature=raw.get("featureName"),
            summary=str(raw.get("summary") or raw.get("label") or ""),
        )

    def _last_changes(self) -> dict[str, FlagEvent]:
        """Return each flag's newest change event, reading only the events newer than the last call's."""
        with self._changes_lock:
            newest_known = self._newest_change_id
            events = self.recent_changes(limit=INCREMENTAL_CHANGES) if newest_known is not None else []
            if newest_known is None or (len(events) == INCREMENTAL_CHANGES and events[-1].id > newest_known):
                # First read, or more new events than one small page holds: read the whole window again.
                events = self.recent_changes()
                self._changes = {}
                newest_known = None
            for event in reversed(events):  # oldest first, so a flag's newest event is written last
                if event.feature and (newest_known is None or event.id > newest_known):
                    self._changes[event.feature] = event
            if events:
                self._newest_change_id = max(events[0].id, newest_known or 0)
            return dict(self._changes)

    def _project_flags(self, project: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/admin/projects/{quote(project)}/features")["features"])

    def _environment_states(self, environments: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
        """Return each environment's flags with their state and strategies, from one playground evaluation."""
        body = {"environments": environments, "projects": "*", "context": PLAYGROUND_CONTEXT}
        answer = self._call("POST", "/admin/playground/advanced", body=body, read=True)
        live: dict[str, dict[str, dict[str, Any]]] = {env: {} for env in environments}
        for feature in answer["features"]:
            for env, evaluations in (feature.get("environments") or {}).items():
                if not evaluations:
                    continue
                first = evaluations[0]  # one context, so one evaluation per environment
                live.setdefault(env, {})[str(feature["name"])] = {
                    "enabled": bool(first.get("isEnabledInCurrentEnvironment")),
                    "strategies": list((first.get("strategies") or {}).get("data") or []),
                }
        return live

    def _client_features(self, environment: str, token: str) -> dict[str, dict[str, Any]]:
        features = self._call("GET", "/client/features", token=token)["features"]
        return {str(f["name"]): f for f in features}

    @staticmethod
    def _strategy(raw: dict[str, Any]) -> Strategy:
        return Strategy(
            name=str(raw.get("name")),
            parameters={str(k): str(v) for k, v in (raw.get("parameters") or {}).items()},
            constraints=len(raw.get("constraints") or []),
            disabled=bool(raw.get("disabled", False)),
        )

    def _layout(self) -> tuple[list[str], list[str], dict[str, int | None]]:
        """Return the projects, environments and flag-type lifetimes, read again every LAYOUT_SECONDS."""
        with self._layout_lock:
            if self._layout_cache is None or time.monotonic() - self._layout_cache[0] > LAYOUT_SECONDS:
                projects_f = self._pool.submit(self.projects)
                envs_f = self._pool.submit(self.environments)
                types_f = self._pool.submit(self.lifetimes)
                self._layout_cache = (time.monotonic(), projects_f.result(), envs_f.result(), types_f.result())
            _, projects, environments, lifetimes = self._layout_cache
            return projects, environments, lifetimes

    def _flag_meta(self, projects: list[str], *, force: bool) -> dict[str, tuple[str, dict[str, Any]]]:
        """Return each flag's project and its project listing (creation time, environments), kept LAYOUT_SECONDS."""
        with self._meta_lock:
            if force or self._meta is None or time.monotonic() - self._meta[0] > LAYOUT_SECONDS:
                futures = [(p, self._pool.submit(self._project_flags, p)) for p in projects]
                meta = {str(f["name"]): (p, f) for p, future in futures for f in future.result()}
                self._meta = (time.monotonic(), meta)
            return self._meta[1]

    def catalog(self) -> FlagCatalog:
        """Read every flag of every project with its state and strategies in every environment.

        The state and strategies come from the client API with an environment's backend token, else
        from one playground evaluation of the environments without one; what changes rarely (a
        flag's project, creation time and environments) is read from the project listings every
        LAYOUT_SECONDS, or at once when a flag appears that they do not know yet.
        """
        changes_f = self._pool.submit(self._last_changes)
        projects, environments, lifetimes = self._layout()
        by_token = {
            env: self._pool.submit(self._client_features, env, self.client_tokens[env])
            for env in environments
            if self.client_tokens.get(env)
        }
        others = [env for env in environments if env not in by_token]
        played = self._pool.submit(self._environment_states, others) if others else None
        meta = self._flag_meta(projects, force=False)
        live = {env: future.result() for env, future in by_token.items()}
        if played is not None:
            live.update(played.result())
        if any(name not in meta for features in live.values() for name in features):
            meta = self._flag_meta(projects, force=True)
        last = changes_f.result()
        now = datetime.now(UTC)
        flags = [
            self._flag(project, raw, live, lifetimes, last.get(name), now)
            for name, (project, raw) in meta.items()
            if any(name in features for features in live.values())
        ]
        flags.sort(key=lambda f: (f.project, f.name))
        return FlagCatalog(projects=projects, environments=environments, flags=flags, fetched_at=now)

    @classmethod
    def _flag(
        cls,
        project: str,
        raw: dict[str, Any],
        live: dict[str, dict[str, dict[str, Any]]],
        lifetimes: dict[str, int | None],
        change: FlagEvent | None,
        now: datetime,
    ) -> Flag:
        name = str(raw["name"])
        # The client API's copy is current; a playground evaluation carries no type, description or
        # staleness, which then come from the project listing.
        current = next((features[name] for features in live.values() if name in features), raw)
        created = _parse_time(raw.get("createdAt"))
        flag_type = str(current.get("type") or raw.get("type") or "release")
        lifetime = lifetimes.get(flag_type)
        stale = bool(current.get("stale", raw.get("stale")))
        # Unleash's own rule (its scheduler sets ``potentially_stale`` the same way once a minute).
        potentially = bool(
            not stale and created is not None and lifetime is not None and now > created + timedelta(days=lifetime)
        )
        envs: dict[str, EnvironmentState] = {}
        for env in raw.get("environments", []):
            state = live.get(env["name"], {}).get(name)
            if state is None:
                continue
            envs[env["name"]] = EnvironmentState(
                environment=env["name"],
                enabled=bool(state.get("enabled")),
                strategies=[cls._strategy(s) for s in state.get("strategies", [])],
            )
        return Flag(
            name=name,
            project=project,
            type=flag_type,
            description=str(current.get("description") or raw.get("description") or ""),
            stale=stale,
            potentially_stale=potentially,
            created_at=created,
            environments=envs,
            last_changed_at=change.at if change else created,
            last_changed_by=change.by if change else None,
        )

    def find_project(self, name: str) -> str:
        """Return the project of a flag, or raises ``UnknownFlag``."""
        found = self._call("GET", "/admin/search/features", params={"query": name, "limit": 100})["features"]
        for feature in found:
            if feature["name"] == name:
                return str(feature["project"])
        raise UnknownFlag(f"There is no flag named {name!r} in Unleash; check the name on the flags page.")

    def environment_state(self, project: str, name: str, environment: str) -> tuple[EnvironmentState, list[str]]:
        """Return a flag's state in one environment and the ids of its strategies there."""
        try:
            raw = self._call("GET", f"/admin/projects/{quote(project)}/features/{quote(name)}")
        except _NotFound as exc:
            raise UnknownFlag(f"There is no flag named {name!r} in Unleash ({exc.message}).") from exc
        for env in raw.get("environments", []):
            if env["name"] == environment:
                strategies = env.get("strategies", [])
                state = EnvironmentState(
                    environment=environment,
                    enabled=bool(env.get("enabled")),
                    strategies=[self._strategy(s) for s in strategies],
                )
                return state, [str(s["id"]) for s in strategies]
        known = ", ".join(e["name"] for e in raw.get("environments", []))
        raise UnknownEnvironment(f"The flag {name!r} has no environment {environment!r}; it has: {known}.")

    # -- changes ----------------------------------------------------------------------------

    def set_enabled(self, project: str, name: str, environment: str, on: bool) -> None:
        """Turn a flag on or off in one environment."""
        path = f"/admin/projects/{quote(project)}/features/{quote(name)}/environments/{quote(environment)}/"
        try:
            self._call("POST", path + ("on" if on else "off"))
        except _NotFound as exc:
            raise UnknownEnvironment(f"Unleash has no {environment!r} for {name!r}: {exc.message}") from exc

    def set_rollout(self, project: str, name: str, environment: str, strategy_id: str, percent: int) -> None:
        """Set the rollout % of one gradual rollout strategy."""
        path = (
            f"/admin/projects/{quote(project)}/features/{quote(name)}/environments/{quote(environment)}"
            f"/strategies/{quote(strategy_id)}"
        )
        patch = [{"op": "replace", "path": "/parameters/rollout", "value": str(percent)}]
        try:
            self._call("PATCH", path, body=patch)
        except _NotFound as exc:
            raise UnknownEnvironment(f"Unleash could not find that strategy: {exc.message}") from exc

    # -- set-up (seeding, benchmark) --------------------------------------------------------

    def client_view(self, name: str, environment: str) -> EnvironmentState | None:
        """Return a flag's state in one environment as SDKs currently get it, or None when they do not yet.

        With a backend token of that environment this is what the client API serves (from Unleash's
        cache, refreshed about once a second); without one, what Unleash holds now.
        """
        token = self.client_tokens.get(environment)
        if token:
            raw = self._client_features(environment, token).get(name)
        else:
            raw = self._environment_states([environment]).get(environment, {}).get(name)
        if raw is None:
            return None
        strategies = [self._strategy(s) for s in raw.get("strategies", [])]
        return EnvironmentState(environment=environment, enabled=bool(raw.get("enabled")), strategies=strategies)

    def wait_for_clients(
        self,
        name: str,
        environment: str,
        *,
        enabled: bool | None = None,
        rollout: int | None = None,
        timeout: float = 5.0,
    ) -> bool:
        """Wait until SDKs get a flag (in the given state); Unleash refreshes what they get about once a second."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.client_view(name, environment)
            if (
                state is not None
                and (enabled is None or state.enabled == enabled)
                and (rollout is None or state.rollout == rollout)
            ):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)

    def create_flag(self, project: str, name: str, flag_type: str, description: str = "") -> None:
        """Create a flag in a project."""
        body = {"name": name, "type": flag_type, "description": description}
        self._call("POST", f"/admin/projects/{quote(project)}/features", body=body)

    def add_strategy(
        self, project: str, name: str, environment: str, strategy: str, parameters: dict[str, str] | None = None
    ) -> None:
        """Add an activation strategy to a flag in one environment."""
        path = f"/admin/projects/{quote(project)}/features/{quote(name)}/environments/{quote(environment)}/strategies"
        self._call("POST", path, body={"name": strategy, "parameters": parameters or {}})

    def mark_stale(self, project: str, names: Iterable[str]) -> None:
        """Mark flags stale."""
        self._call("POST", f"/admin/projects/{quote(project)}/stale", body={"features": list(names), "stale": True})

    def enable_environment(self, environment: str, project: str = "default") -> None:
        """Enable an environment and adds it to a project (for the benchmark's third environment)."""
        self._call("POST", f"/admin/environments/{quote(environment)}/on")
        with contextlib.suppress(ChangeRefused):  # already in the project
            self._call("POST", f"/admin/projects/{quote(project)}/environments", body={"environment": environment})

    def flag_names(self, project: str) -> list[str]:
        """List the flag names of a project."""
        return [str(f["name"]) for f in self._project_flags(project)]
