"""The Feature flags page: the cached listing, its filters and table, the audited changes, evaluation and history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from core.domain.models import Actor
from core.domain.rbac import Permission, can
from core.flags.models import (
    ChangeResult,
    Evaluation,
    Flag,
    FlagCatalog,
    FlagHistory,
    FlagListing,
    FlagToggle,
    RolloutChange,
)
from core.flags.service import FlagService, build_context
from dashboard import formats, reads, widgets
from dashboard.services import services

ANY = "any"
STATES = (ANY, "on somewhere", "off everywhere")
STALENESS = (ANY, "stale", "potentially stale", "active")
ACTIONS = ("Turn on", "Turn off", "Set rollout %")


def flag_service() -> FlagService:
    """Return this process's flag service."""
    return services().flags


def can_change(actor: Actor) -> bool:
    """Tell whether the actor may toggle flags and change rollouts."""
    return can(actor, Permission.TOGGLE_FLAG) and can(actor, Permission.CHANGE_ROLLOUT)


def listing() -> FlagListing:
    """Return the flags from Unleash (cached, dropped after a change), or the last known state when it is down."""
    return _listing(reads.configuration())


@reads.cached
def _listing(settings: str) -> FlagListing:
    return flag_service().list_flags()


def forget_listing() -> None:
    """Drop the cached listing so the next read comes from Unleash."""
    _listing.clear()


def down_banner(shown: FlagListing, now: datetime | None = None) -> str:
    """Return the banner shown when the flags come from the last known state."""
    fetched = shown.catalog.fetched_at
    return (
        f"Unleash is not answering ({shown.problem}). Showing the last known state from "
        f"{fetched:%Y-%m-%d %H:%M:%S} UTC, {formats.age(shown.age_seconds(now))} old. Changes are refused until "
        "Unleash answers again."
    )


@dataclass(frozen=True)
class FlagFilters:
    """What the person narrowed the table to."""

    search: str = ""
    projects: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    state: str = ANY
    staleness: str = ANY


def flag_names(catalog: FlagCatalog) -> list[str]:
    """Return the names of the catalogue's flags, in its order."""
    return [flag.name for flag in catalog.flags]


def flag_types(catalog: FlagCatalog) -> list[str]:
    """Return the types the catalogue's flags have, sorted."""
    return sorted({flag.type for flag in catalog.flags})


def shown_caption(shown: list[Flag], shown_listing: FlagListing) -> str:
    """Say how many of the flags the filters leave, and how long ago they were read."""
    catalog = shown_listing.catalog
    return f"{len(shown)} of {len(catalog.flags)} flags · read {formats.age(shown_listing.age_seconds())} ago"


def staleness_of(flag: Flag) -> str:
    """Name a flag's staleness: stale, potentially stale or active."""
    if flag.stale:
        return "stale"
    return "potentially stale" if flag.potentially_stale else "active"


def filter_flags(catalog: FlagCatalog, filters: FlagFilters) -> list[Flag]:
    """Return the flags matching every filter (search matches the name and description)."""
    needle = filters.search.strip().lower()
    chosen = []
    for flag in catalog.flags:
        if needle and needle not in flag.name.lower() and needle not in flag.description.lower():
            continue
        if filters.projects and flag.project not in filters.projects:
            continue
        if filters.types and flag.type not in filters.types:
            continue
        on_somewhere = any(state.enabled for state in flag.environments.values())
        if filters.state == "on somewhere" and not on_somewhere:
            continue
        if filters.state == "off everywhere" and on_somewhere:
            continue
        if filters.staleness != ANY and staleness_of(flag) != filters.staleness:
            continue
        chosen.append(flag)
    return chosen


def state_cell(flag: Flag, environment: str) -> str:
    """Say a flag's state in one environment: on, on 25 %, off, or - when it is not there."""
    state = flag.environments.get(environment)
    if state is None:
        return "-"
    if not state.enabled:
        return "off"
    rollout = state.rollout
    return "on" if rollout is None or rollout == 100 else f"on {rollout} %"


def flags_table(flags: list[Flag], environments: list[str]) -> pd.DataFrame:
    """Build the flags x environments table the page shows."""
    rows: list[dict[str, Any]] = []
    for flag in flags:
        row: dict[str, Any] = {"Flag": flag.name, "Type": flag.type, "Project": flag.project}
        for env in environments:
            row[env] = state_cell(flag, env)
        row["Staleness"] = staleness_of(flag)
        row["Last change"] = flag.last_changed_at
        row["By"] = flag.last_changed_by or ""
        rows.append(row)
    columns = ["Flag", "Type", "Project", *environments, "Staleness", "Last change", "By"]
    return pd.DataFrame(rows, columns=columns)


def apply_change(actor: Actor, name: str, environment: str, action: str, percent: int, reason: str) -> str:
    """Make one change through the flag service and return the message that says what happened."""
    service = flag_service()
    reason = widgets.audit_reason(reason)
    result: ChangeResult
    if action == "Set rollout %":
        result = service.set_rollout(
            actor, RolloutChange.of(name=name, environment=environment, percent=percent, reason=reason)
        )
        what = f"Rollout of {name} in {environment} set to {percent} %"
        unchanged = f"The rollout of {name} in {environment} was already {percent} %; nothing changed"
    else:
        on = action == "Turn on"
        result = service.set_enabled(actor, FlagToggle.of(name=name, environment=environment, on=on, reason=reason))
        what = f"{name} turned {'on' if on else 'off'} in {environment}"
        unchanged = f"{name} was already {'on' if on else 'off'} in {environment}; nothing changed"
    forget_listing()
    message = f"{what}." if result.changed else f"{unchanged}."
    if not result.propagated:
        message += " Unleash has not passed it to its clients yet; they get it within a few seconds."
    return message


def evaluate_for(user_id: str, properties: str) -> pd.DataFrame:
    """Ask the real Unleash client what every flag answers for a user id and properties."""
    context = build_context(user_id, properties)
    results: list[Evaluation] = flag_service().evaluate_all(context)
    return pd.DataFrame(
        [
            {
                "Flag": e.name,
                "Enabled": e.enabled,
                "Answered from": "Unleash client" if e.known_to_client else "registered default",
            }
            for e in results
        ],
        columns=["Flag", "Enabled", "Answered from"],
    )


def history_tables(actor: Actor, name: str) -> tuple[FlagHistory, pd.DataFrame, pd.DataFrame]:
    """Return a flag's Unleash events and our audit rows about it (when the actor may read them), as two tables."""
    history = flag_service().history(actor, name)
    events = pd.DataFrame(
        [
            {"At": e.at, "Event": e.type, "Environment": e.environment or "", "By": e.by, "Summary": e.summary}
            for e in history.events
        ],
        columns=["At", "Event", "Environment", "By", "Summary"],
    )
    audit = pd.DataFrame(
        [
            {
                "At": r.at,
                "Actor": r.actor,
                "Action": r.action,
                "Outcome": r.outcome.value,
                "Environment": (r.after or r.before or {}).get("environment", ""),
                "Reason": r.reason or "",
                "Detail": r.detail or "",
            }
            for r in history.audit
        ],
        columns=["At", "Actor", "Action", "Outcome", "Environment", "Reason", "Detail"],
    )
    return history, events, audit
