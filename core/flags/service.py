"""``FlagService``: list, toggle, roll out, evaluate and explain feature flags; every change audited.

The last catalog read from Unleash is kept in Redis (``{prefix}flags:last-known``) and in this
process: Redis because every dashboard instance behind the load balancer then shows the same last
known state after Unleash goes away, even one started after it went away; the in-process copy for
when Redis is away too. When Unleash does not answer, the listing is that copy, marked with its age,
and every change is refused (and audited as failed).
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

import redis
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import distinct_on

from core.adapters.redis import RedisClient
from core.adapters.tables import AuditLogRow
from core.audit import AuditLog
from core.domain.actions import AdminAction
from core.domain.exceptions import InvalidInput, UnleashUnavailable
from core.domain.models import Actor, AuditOutcome
from core.domain.rbac import Permission, can
from core.flags.evaluation import FlagEvaluator
from core.flags.models import (
    ChangeResult,
    EnvironmentState,
    Evaluation,
    FlagCatalog,
    FlagHistory,
    FlagListing,
    FlagToggle,
    RolloutChange,
    UnknownEnvironment,
)
from core.flags.registry import REGISTRY
from core.flags.unleash_admin import UnleashAdmin

log = logging.getLogger(__name__)

TARGET_TYPE = "feature_flag"
NOT_CONFIGURED = (
    "Unleash is not configured: set KROWOC_UNLEASH_URL and KROWOC_UNLEASH_ADMIN_TOKEN, or start the embedded "
    "one with `krowoc-admin stack up` (it runs the pinned unleash-server on the venv's Node; `make install` first)."
)
ATTRIBUTION_WINDOW = timedelta(seconds=30)
PROPAGATION_SECONDS = 5.0
_FLAG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
_PROPERTY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


class FlagSnapshots:
    """The last known catalog: in Redis for every instance, and in this process."""

    def __init__(self, client: RedisClient | None, prefix: str) -> None:
        self.client = client
        self.key = f"{prefix}flags:last-known"
        self._memory: FlagCatalog | None = None

    def save(self, catalog: FlagCatalog) -> None:
        """Keep a catalog as the last known state."""
        self._memory = catalog
        if self.client is None:
            return
        try:
            self.client.set(self.key, catalog.model_dump_json())
        except redis.RedisError as exc:
            log.warning("last known flag state not saved in Redis: %s", exc)

    def load(self) -> FlagCatalog | None:
        """Return the last known catalog (Redis first, then this process), or None."""
        if self.client is not None:
            try:
                raw = self.client.get(self.key)
            except redis.RedisError as exc:
                log.warning("last known flag state not read from Redis: %s", exc)
                raw = None
            if isinstance(raw, bytes | str):
                try:
                    stored = FlagCatalog.model_validate_json(raw)
                except ValidationError:  # written by another version: the process's own copy will do
                    log.warning("last known flag state in Redis is unreadable; ignoring it")
                    return self._memory
                if self._memory is None or stored.fetched_at >= self._memory.fetched_at:
                    return stored
        return self._memory


def _env_summary(state: EnvironmentState) -> dict[str, Any]:
    return {"environment": state.environment, "enabled": state.enabled, "rollout": state.rollout}


def build_context(user_id: str, properties: str = "") -> dict[str, Any]:
    """Build an Unleash context from a user id and ``key=value`` lines; refuses what it cannot use."""
    cleaned = user_id.strip()
    if not cleaned or len(cleaned) > 200:
        raise InvalidInput("Enter a user id (at most 200 characters) to evaluate the flags for.")
    props: dict[str, str] = {}
    for number, line in enumerate(properties.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _PROPERTY.match(key):
            raise InvalidInput(f"Property line {number} must look like tier=pro (a name, '=', a value): {line!r}")
        props[key] = value.strip()
    return {"userId": cleaned, "properties": props}


class FlagService:
    """Feature flags for the product team: read from Unleash, changed through it, audited here."""

    def __init__(
        self,
        admin: UnleashAdmin | None,
        audit: AuditLog,
        snapshots: FlagSnapshots,
        evaluator: FlagEvaluator | None = None,
    ) -> None:
        self.admin = admin
        self.audit = audit
        self.snapshots = snapshots
        self.evaluator = evaluator

    def _admin(self) -> UnleashAdmin:
        if self.admin is None:
            raise UnleashUnavailable(NOT_CONFIGURED)
        return self.admin

    # -- reads ------------------------------------------------------------------------------

    def list_flags(self) -> FlagListing:
        """List every flag in every environment: live from Unleash, else the last known state with its age."""
        try:
            catalog = self._admin().catalog()
        except UnleashUnavailable as exc:
            known = self.snapshots.load()
            if known is None:
                raise UnleashUnavailable(f"{exc} No earlier state of the flags is known yet.") from exc
            return FlagListing(catalog=known, live=False, problem=str(exc))
        catalog = self._attribute(catalog)
        self.snapshots.save(catalog)
        return FlagListing(catalog=catalog, live=True)

    def _attribute(self, catalog: FlagCatalog) -> FlagCatalog:
        """Names the person behind a change made through this service, which Unleash logs as the token's user."""
        stmt = (
            select(AuditLogRow.target_id, AuditLogRow.actor, AuditLogRow.at)
            .where(
                AuditLogRow.target_type == TARGET_TYPE,
                AuditLogRow.outcome == AuditOutcome.SUCCESS.value,
                AuditLogRow.after["changed"].as_boolean().is_(True),
            )
            .ext(distinct_on(AuditLogRow.target_id))
            .order_by(AuditLogRow.target_id, AuditLogRow.at.desc())
        )
        try:
            with self.audit.db.read() as conn:
                ours = {row.target_id: (row.actor, row.at) for row in conn.execute(stmt)}
        except Exception as exc:  # the listing stays useful without names
            log.warning("flag changes not attributed from the audit log: %s", exc.__class__.__name__)
            return catalog
        flags = []
        for flag in catalog.flags:
            mine = ours.get(flag.name)
            if mine and flag.last_changed_at and abs(mine[1] - flag.last_changed_at) <= ATTRIBUTION_WINDOW:
                flag = flag.model_copy(update={"last_changed_by": f"{mine[0]} (Krowoc Admin)"})
            flags.append(flag)
        return catalog.model_copy(update={"flags": flags})

    def history(self, reader: Actor, name: str) -> FlagHistory:
        """Return a flag's events in Unleash beside our audit rows about it (those only to who may read the log)."""
        audit = (
            self.audit.search(reader, target_type=TARGET_TYPE, target_id=name, limit=200)
            if can(reader, Permission.VIEW_AUDIT_LOG)
            else []
        )
        try:
            events = self._admin().events(name)
        except UnleashUnavailable as exc:
            return FlagHistory(name=name, events=[], audit=audit, problem=str(exc))
        return FlagHistory(name=name, events=events, audit=audit)

    def evaluate(self, name: str, context: dict[str, Any] | None = None) -> Evaluation:
        """Asks the real Unleash client whether a flag is on for a context."""
        if self.evaluator is None:
            raise UnleashUnavailable(NOT_CONFIGURED)
        return self.evaluator.evaluate(name, context)

    def evaluate_all(self, context: dict[str, Any], names: list[str] | None = None) -> list[Evaluation]:
        """Evaluate every flag the client or the registry knows (or the given ones) for a context."""
        if self.evaluator is None:
            raise UnleashUnavailable(NOT_CONFIGURED)
        wanted = names if names is not None else sorted(self.evaluator.known() | set(REGISTRY))
        return [self.evaluator.evaluate(name, context) for name in wanted]

    # -- changes ----------------------------------------------------------------------------

    @staticmethod
    def _check(name: str, environment: str, percent: int | None = None) -> None:
        if not _FLAG_NAME.match(name or ""):
            raise InvalidInput(f"{name[:100]!r} is not a flag name (letters, digits, '.', '_', ':', '-'; at most 100).")
        if not _FLAG_NAME.match(environment or ""):
            raise InvalidInput(f"{environment[:100]!r} is not an environment name.")
        if percent is not None and (
            isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100
        ):
            raise InvalidInput(f"The rollout must be a whole percentage from 0 to 100, not {percent!r}.")

    def set_enabled(self, actor: Actor, change: FlagToggle) -> ChangeResult:
        """Turn a flag on or off in one environment, and record who did it and why."""
        name, environment, on = change.name, change.environment, change.on
        with self.audit.action(
            actor,
            AdminAction.FLAG_TOGGLE,
            permission=Permission.TOGGLE_FLAG,
            target_type=TARGET_TYPE,
            target_id=name,
            reason=change.reason,
            external=True,
            check=lambda: self._check(name, environment),
        ) as act:
            admin = self._admin()
            project = admin.find_project(name)
            state, _ = admin.environment_state(project, name, environment)
            act.before = _env_summary(state)
            changed = state.enabled != on
            if changed:
                admin.set_enabled(project, name, environment, on)
            act.after = {**_env_summary(state), "enabled": on, "changed": changed}
        # Unleash serves SDKs (and the listing) from a cache it refreshes about once a second.
        seen = admin.wait_for_clients(name, environment, enabled=on, timeout=PROPAGATION_SECONDS)
        return ChangeResult(
            name=name, environment=environment, before=act.before, after=act.after, changed=changed, propagated=seen
        )

    def set_rollout(self, actor: Actor, change: RolloutChange) -> ChangeResult:
        """Set the rollout % of a flag's gradual rollout in one environment, and record who did it and why."""
        name, environment, percent = change.name, change.environment, change.percent
        with self.audit.action(
            actor,
            AdminAction.FLAG_ROLLOUT,
            permission=Permission.CHANGE_ROLLOUT,
            target_type=TARGET_TYPE,
            target_id=name,
            reason=change.reason,
            external=True,
            check=lambda: self._check(name, environment, percent),
        ) as act:
            admin = self._admin()
            project = admin.find_project(name)
            state, ids = admin.environment_state(project, name, environment)
            act.before = _env_summary(state)
            rollouts = [
                (strategy_id, s)
                for strategy_id, s in zip(ids, state.strategies, strict=True)
                if s.rollout is not None and not s.disabled
            ]
            if not rollouts:
                raise UnknownEnvironment(
                    f"{name!r} has no gradual rollout in {environment!r}; "
                    "add a gradual rollout strategy in Unleash first."
                )
            strategy_id, strategy = rollouts[0]
            changed = strategy.rollout != percent
            if changed:
                admin.set_rollout(project, name, environment, strategy_id, percent)
            act.after = {**_env_summary(state), "rollout": percent, "changed": changed}
        seen = admin.wait_for_clients(name, environment, rollout=percent, timeout=PROPAGATION_SECONDS)
        return ChangeResult(
            name=name, environment=environment, before=act.before, after=act.after, changed=changed, propagated=seen
        )

    def close(self) -> None:
        """Stop the evaluation client and closes the Admin API connections."""
        if self.evaluator is not None:
            self.evaluator.close()
        if self.admin is not None:
            self.admin.close()
