"""Krowoc Admin's entrypoint (``streamlit run dashboard/app.py``): page set-up, login, navigation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from core.config import get_settings
from core.domain.models import Actor
from core.domain.rbac import Permission, can
from dashboard import auth, widgets

PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"


@dataclass(frozen=True)
class PageEntry:
    """A page script under ``pages/`` and who may open it."""

    file: str
    title: str
    icon: str
    permission: Permission = Permission.VIEW_DASHBOARD


# One line per page, grouped by the people who use it; the first page opens by default.
NAVIGATION: dict[str, tuple[PageEntry, ...]] = {
    "Operate": (
        PageEntry("overview.py", "Overview", ":material/monitoring:"),
        PageEntry("errors.py", "Errors", ":material/error:"),
        PageEntry("latency.py", "Latency", ":material/speed:"),
        PageEntry("leaderboards.py", "Leaderboards", ":material/leaderboard:"),
        PageEntry("cache.py", "Cache", ":material/memory:"),
    ),
    "Support": (
        PageEntry("executions.py", "Executions", ":material/manage_search:"),
        PageEntry("users.py", "Users", ":material/person_search:"),
    ),
    "Product": (PageEntry("flags.py", "Feature flags", ":material/toggle_on:"),),
    "Admin": (
        PageEntry("audit_log.py", "Audit log", ":material/history:", Permission.VIEW_AUDIT_LOG),
        PageEntry("health.py", "Health", ":material/health_and_safety:"),
    ),
}


def pages_for(actor: Actor) -> dict[str, list[StreamlitPage]]:
    """Return the navigation sections with the pages the actor's role may open."""
    sections: dict[str, list[StreamlitPage]] = {}
    for section, entries in NAVIGATION.items():
        pages = [
            st.Page(PAGES_DIR / entry.file, title=entry.title, icon=entry.icon)
            for entry in entries
            if can(actor, entry.permission)
        ]
        if pages:
            sections[section] = pages
    return sections


st.set_page_config(page_title="Krowoc Admin", page_icon=":material/monitoring:", layout="wide")
settings = get_settings()
if settings.dev_login_enabled:
    auth.dev_banner()
actor = auth.current_actor(settings)
auth.show_identity(actor)
page = st.navigation(pages_for(actor))
with widgets.known_errors_shown():
    page.run()
