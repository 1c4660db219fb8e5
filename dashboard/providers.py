"""Provider health, shown on the Overview and the Errors pages: every provider's circuit breaker.

Operators may force a breaker open or closed, with a reason; the breakers live in Redis, so with
Redis down the panel says the states are unknown and the rest of the page keeps working.
"""

from __future__ import annotations

import streamlit as st

from core.domain.catalog import PROVIDERS
from core.domain.exceptions import RedisUnavailable
from core.domain.models import Actor
from core.domain.rbac import Permission, can
from core.providers.breaker import BreakerOverride, BreakerState, BreakerStatus
from core.providers.service import BreakerChange
from dashboard import widgets
from dashboard.services import services
from dashboard.untrusted import md

STATE_LABELS = {BreakerState.CLOSED: "closed", BreakerState.HALF_OPEN: "half-open", BreakerState.OPEN: "OPEN"}
OVERRIDE_LABELS = {"open": "Force open", "closed": "Force closed", "auto": "Automatic"}


def provider_health(actor: Actor, *, key: str = "provider-health") -> None:
    """Show every provider's circuit breaker; operators may force one open or closed, with a reason."""
    try:
        statuses = services().provider_health.statuses()
    except RedisUnavailable as exc:
        # Only this panel depends on Redis: it says so, and the page's other parts stay.
        st.warning(md(exc), icon=":material/cloud_off:")
        return
    _breakers(statuses)
    if can(actor, Permission.FORCE_BREAKER):
        _force_form(actor, key)


def _breakers(statuses: list[BreakerStatus]) -> None:
    columns = st.columns(len(statuses))
    for column, status in zip(columns, statuses, strict=True):
        forced = "" if status.override is BreakerOverride.AUTO else f" (forced {status.override.value})"
        column.metric(
            status.provider,
            STATE_LABELS[status.effective] + forced,
            help=f"{status.failures} provider-side failures in a row.",
            border=True,
        )
    open_now = [s.provider for s in statuses if s.effective is BreakerState.OPEN]
    if open_now:
        st.error(f"Circuit breaker open for {md(', '.join(open_now))}: calls go to fallbacks or fail fast.")


def _force_form(actor: Actor, key: str) -> None:
    with st.expander("Force a circuit breaker"), st.form(f"{key}.form", clear_on_submit=False):
        provider = st.selectbox("Provider", list(PROVIDERS), key=f"{key}.provider")
        override = st.radio(
            "Breaker",
            [o.value for o in BreakerOverride],
            format_func=OVERRIDE_LABELS.__getitem__,
            horizontal=True,
            key=f"{key}.override",
        )
        reason = st.text_input("Reason (goes into the audit log)", key=f"{key}.reason")
        if st.form_submit_button("Apply"):
            with widgets.known_errors_shown():
                after = force_breaker(actor, provider, override, reason)
                st.success(f"{md(after.provider)}: breaker {STATE_LABELS[after.effective]} ({after.override.value}).")


def force_breaker(actor: Actor, provider: str, override: str, reason: str) -> BreakerStatus:
    """Force a provider's breaker open or closed, or release it, as the actor (audited)."""
    change = BreakerChange.of(provider=provider, override=override, reason=widgets.audit_reason(reason))
    return services().provider_health.force(actor, change)
