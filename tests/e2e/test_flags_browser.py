"""In a real browser: a product login opens Feature flags and turns a flag on in production with a reason."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.domain.models import Role
from core.flags.unleash_admin import UnleashAdmin
from tests.support.browser import dev_log_in, running_dashboard
from tests.support.databases import RunDatabases
from tests.support.unleash import RunningUnleash

# With the other tests of the run's Unleash in one worker, so the run starts one unleash-server.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("unleash")]


@pytest.fixture(scope="module")
def flags_dashboard_url(
    databases: RunDatabases,
    redis_url: str,
    redis_prefix: str,
    unleash: RunningUnleash,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """Start ``streamlit run dashboard/app.py`` pointed at the run's Unleash and a fresh database."""
    folder = tmp_path_factory.mktemp("flags-streamlit")
    settings = {
        "KROWOC_DATABASE_URL": databases.migrated(),
        "KROWOC_REDIS_URL": redis_url,
        "KROWOC_REDIS_KEY_PREFIX": redis_prefix,
        "KROWOC_UNLEASH_URL": unleash.endpoint.api_url,
        "KROWOC_UNLEASH_ADMIN_TOKEN": unleash.endpoint.admin_token,
        "KROWOC_UNLEASH_CLIENT_TOKEN": unleash.endpoint.client_tokens["production"],
        "KROWOC_UNLEASH_BACKUP_DIR": str(folder / "unleash-backup"),
    }
    with running_dashboard(settings, folder / "streamlit.log") as url:
        yield url


def pick(page: Any, container: Any, label: str, option: str) -> None:
    """Chooses an option of a Streamlit selectbox by typing it, as a person would."""
    box = container.get_by_test_id("stSelectbox").filter(has=page.get_by_text(label, exact=True))
    box.locator("input").click()
    box.locator("input").fill(option)
    page.get_by_role("option", name=option, exact=True).click()


def test_a_product_login_turns_a_flag_on_in_production_from_the_page(
    page: Any, flags_dashboard_url: str, unleash: RunningUnleash, tmp_path: Path
) -> None:
    admin = UnleashAdmin(unleash.endpoint.api_url, unleash.endpoint.admin_token)
    name = f"browser-{uuid.uuid4().hex[:8]}"
    admin.create_flag("default", name, "release", "made by a browser test")
    admin.add_strategy("default", name, "production", "flexibleRollout", {"rollout": "100", "stickiness": "default"})
    assert admin.wait_for_clients(name, "production")  # the page lists what Unleash serves its clients

    dev_log_in(page, flags_dashboard_url, "pat", Role.PRODUCT)
    page.get_by_test_id("stSidebarNav").get_by_text("Feature flags").click()
    page.get_by_role("heading", name="Feature flags").wait_for()
    page.get_by_test_id("stDataFrame").first.wait_for()

    form = page.get_by_test_id("stForm").first
    pick(page, form, "Flag", name)
    pick(page, form, "Environment", "production")
    form.get_by_label("Reason (goes into the audit log)").fill("launch from the browser")
    form.get_by_text("I have checked the flag, the environment and the change").click()
    form.get_by_role("button", name="Apply change").click()

    page.get_by_text(f"{name} turned on in production.").wait_for()
    page.get_by_test_id("stDataFrame").first.wait_for()  # the table, read again from Unleash
    page.screenshot(path=str(tmp_path / "flags.png"), full_page=True)
    state, _ = admin.environment_state("default", name, "production")
    admin.close()
    assert state.enabled
