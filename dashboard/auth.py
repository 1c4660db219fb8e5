"""The login gate: a dev login on the embedded default, OIDC through ``st.login`` otherwise.

The dev login lets anyone pick a staff role, so it exists only when ``settings.dev_login_enabled``
(on by default for the embedded stack alone) and every page says so in a banner.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from core.config import Settings, get_settings
from core.domain.models import Actor, AuditSource, Role

ACTOR_KEY = "actor"
"""Session-state key of the dev login's ``Actor``."""
DEV_BANNER = "Dev login — not for production"
NO_LOGIN_MESSAGE = "No login is configured: set up OIDC in .streamlit/secrets.toml [auth] or use the embedded default."
ROLE_SUMMARIES: dict[Role, str] = {
    Role.VIEWER: "viewer: sees every page, changes nothing",
    Role.SUPPORT: "support: users and executions (tier, suspend, rate limit, payloads)",
    Role.OPERATOR: "operator: caches, rollups, leaderboards, audit log",
    Role.PRODUCT: "product: feature flags and rollouts",
    Role.ADMIN: "admin: everything",
}


def current_actor(settings: Settings | None = None) -> Actor:
    """Return the signed-in member of staff, or draw the way to sign in and stop the run."""
    settings = settings or get_settings()
    if settings.dev_login_enabled:
        actor = st.session_state.get(ACTOR_KEY)
        if isinstance(actor, Actor):
            return actor
        _dev_login_form()
        st.stop()
    if settings.oidc_configured:
        if st.user.is_logged_in:
            return actor_from_identity(st.user.to_dict(), admin_emails=settings.admin_emails)
        _oidc_login()
        st.stop()
    st.error(NO_LOGIN_MESSAGE, icon=":material/lock:")
    st.stop()


def role_for_email(email: str | None, *, admin_emails: str) -> Role:
    """Map an identity's email to a role: admin when listed in ``admin_emails``, else viewer."""
    admins = {entry.strip().lower() for entry in admin_emails.split(",") if entry.strip()}
    return Role.ADMIN if email and email.strip().lower() in admins else Role.VIEWER


def actor_from_identity(identity: Mapping[str, Any], *, admin_emails: str) -> Actor:
    """Build the actor of an OIDC identity (its email, else its subject)."""
    email = identity.get("email")
    subject = str(email or identity.get("sub") or "").strip()
    if not subject:
        st.error("The identity provider sent neither an email nor a subject; ask for the email claim.")
        st.stop()
    return Actor(
        id=subject[:200],
        role=role_for_email(email, admin_emails=admin_emails),
        display_name=str(identity.get("name") or subject),
        source=AuditSource.DASHBOARD,
    )


def dev_banner() -> None:
    """Say on the page and in the sidebar that the dev login is on."""
    st.warning(DEV_BANNER, icon=":material/science:")
    st.sidebar.warning(DEV_BANNER, icon=":material/science:")


def show_identity(actor: Actor) -> None:
    """Show in the sidebar who is signed in and with which role, and offer to log out."""
    with st.sidebar:
        st.text(f"Signed in as {actor.display_name or actor.id}")
        st.caption(f"Role: {actor.role.value}")
        if actor.dev_login:
            st.button("Log out", key="auth.logout", on_click=_forget_dev_actor)
        else:
            st.button("Log out", key="auth.logout", on_click=st.logout)


def _forget_dev_actor() -> None:
    st.session_state.pop(ACTOR_KEY, None)


def _dev_login_form() -> None:
    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        st.title("Krowoc Admin")
        st.write("Pick the role to act as. Every change you make is recorded in the audit log under your name.")
        with st.form("dev-login"):
            name = st.text_input("Your name", key="dev_login.name", max_chars=100, placeholder="e.g. ada")
            role = st.selectbox(
                "Role",
                list(Role),
                key="dev_login.role",
                format_func=ROLE_SUMMARIES.__getitem__,
            )
            submitted = st.form_submit_button("Log in", type="primary")
        if not submitted:
            return
        cleaned = name.strip()
        if not cleaned:
            st.error("Enter your name: the audit log records who made each change.")
            return
    st.session_state[ACTOR_KEY] = Actor(
        id=f"dev:{cleaned}", role=role, display_name=cleaned, source=AuditSource.DASHBOARD, dev_login=True
    )
    st.rerun()


def _oidc_login() -> None:
    st.title("Krowoc Admin")
    st.write("Sign in with your company account to continue.")
    st.button("Log in", type="primary", on_click=st.login)
