"""Text platform users wrote reaches every page as text: no link, image, markup or HTML is rendered.

A platform user names themselves, titles a prompt, and makes a provider fail with an error message;
a link's parameters carry the same. Every page is opened on that platform, and everything the page
sends to be rendered as markdown is rendered here with a CommonMark parser: the planted link,
image, emphasis and HTML must come out as text. Chart labels must carry no live HTML either.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from markdown_it import MarkdownIt
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from core.bootstrap import Services
from core.domain.models import Role
from core.executions.refresh import refresh
from core.users import UserStatusChange
from tests.support.apptest import open_page
from tests.support.databases import SeedPlan
from tests.support.settings import actor

EVIL = "evil.example"
PLANT = (
    f"[c](http://{EVIL}/x) ![i](http://{EVIL}/p.png) **loud** "
    f'<a href="http://{EVIL}/h">a</a> <img src="http://{EVIL}/i.png"> :red[x] www.{EVIL}'
)
MARKDOWN_ELEMENTS = ("markdown", "caption", "info", "warning", "error", "success", "subheader", "title", "header")
RENDER = MarkdownIt("gfm-like")  # CommonMark with tables, strikethrough and linkified bare URLs, as Streamlit


@pytest.fixture()
def planted(
    seeded_copy: Callable[[SeedPlan], str], dashboard_on: Callable[[str], Services]
) -> Iterator[dict[str, int]]:
    services = dashboard_on(seeded_copy(SeedPlan(executions=3_000, days=2, seed=41)))
    with services.db.write() as conn:
        user_id = conn.execute(
            text(
                "UPDATE users SET display_name = :p, email = :p WHERE id = "
                "(SELECT user_id FROM prompt_executions GROUP BY 1 ORDER BY count(*) DESC LIMIT 1) RETURNING id"
            ),
            {"p": PLANT},
        ).scalar_one()
        conn.execute(text("UPDATE prompts SET title = :p"), {"p": PLANT})
        execution_id = (
            conn.execute(
                text(
                    "UPDATE prompt_executions SET error_message = :p, error_code = 'planted' "
                    "WHERE status = 'failed' RETURNING id"
                ),
                {"p": PLANT},
            )
            .scalars()
            .first()
        )
    refresh(services.settings.database_url or "")  # the error table is built whole, planted messages with it
    services.leaderboards.refresh(actor(Role.ADMIN))
    services.users.suspend(actor(Role.SUPPORT), UserStatusChange(user_id=user_id, reason=PLANT))
    yield {"user": user_id, "execution": int(execution_id)}


def rendered_html(at: AppTest) -> list[str]:
    """Render as markdown every text the page sends to a markdown-rendering element or label."""
    sources: list[str] = []
    for kind in MARKDOWN_ELEMENTS:
        sources += [str(element.value) for element in at.get(kind)]
    for kind in ("button", "expander", "tab", "metric", "text_input", "selectbox", "checkbox"):
        sources += [str(getattr(element, "label", "")) for element in at.get(kind)]
    return [RENDER.render(source) for source in sources]


def chart_labels(at: AppTest) -> str:
    return " ".join(
        json.dumps(chart.proto.spec if hasattr(chart, "proto") else str(chart)) for chart in at.get("plotly_chart")
    )


def assert_shown_as_text(at: AppTest) -> None:
    html = rendered_html(at)
    assert any(EVIL in part for part in html), "the planted text is not on the page at all"
    for part in html:
        assert f'href="http://{EVIL}' not in part and f'href="http://www.{EVIL}' not in part, part
        assert f'src="http://{EVIL}' not in part, part
        assert "<strong>loud</strong>" not in part and "<a href" not in part.replace("&lt;a href", ""), part
        assert "<img" not in part, part
    labels = chart_labels(at)
    assert f'<a href=\\"http://{EVIL}' not in labels and f'<a href=\\"http://{EVIL}' not in labels


PAGES: list[tuple[str, Callable[[dict[str, int]], dict[str, str]]]] = [
    ("users.py", lambda ids: {"user": str(ids["user"])}),
    ("users.py", lambda ids: {"q": PLANT}),
    ("executions.py", lambda ids: {"execution": str(ids["execution"]), "provider": PLANT}),
    ("errors.py", lambda ids: {"range": "7d", "provider": PLANT}),
    ("latency.py", lambda ids: {"provider": PLANT, "model": PLANT}),
    ("audit_log.py", lambda ids: {"actor": PLANT}),
    ("leaderboards.py", lambda ids: {}),
    ("overview.py", lambda ids: {"range": PLANT}),
    ("cache.py", lambda ids: {}),
    ("flags.py", lambda ids: {"q": PLANT}),
    ("health.py", lambda ids: {}),
]


@pytest.mark.parametrize(("page", "params"), PAGES, ids=[f"{p}-{n}" for n, (p, _) in enumerate(PAGES)])
def test_planted_markdown_is_shown_as_text(
    planted: dict[str, int], page: str, params: Callable[[dict[str, int]], dict[str, Any]]
) -> None:
    at = open_page(page, Role.ADMIN, params(planted))
    html = rendered_html(at)
    if any(EVIL in part for part in html) or page in {"users.py", "executions.py", "errors.py"}:
        assert_shown_as_text(at)
    else:
        # The page shows none of the planted text in markdown (tables and charts show it as data).
        for part in html:
            assert "<a href" not in part and "<img" not in part, part
