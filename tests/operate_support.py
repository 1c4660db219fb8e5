"""Fixtures and helpers of the operators' views (errors, latency, providers): a database seeded and
refreshed for them, and random executions to write.

Test modules import the fixture functions (``operate_database_fixture``, ``operate_services_fixture``)
and ask for them by their fixture names, ``operate_database_url`` and ``operate_services``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from core.bootstrap import Services, build_services
from core.domain.catalog import KNOWN_MODELS
from core.domain.models import ExecutionStatus
from core.executions import refresh as rollups_refresh
from core.executions.records import ExecutionRecord
from devstack.simulator.providers import ERROR_SHAPES
from tests.conftest import _create_database, _with_db, test_settings

OPERATE_EXECUTIONS = 30_000
OPERATE_DAYS = 3


@pytest.fixture(scope="session", name="operate_database_url")
def operate_database_fixture(servers: tuple[str, str], _databases: list[str], template_database: str) -> str:
    """A database seeded with a few days of traffic and refreshed once (so its error table exists)."""
    from devstack.seed import SeedOptions, seed

    name = _create_database(servers, _databases, template_database)
    url = _with_db(servers[0], name)
    seed(url, SeedOptions(executions=OPERATE_EXECUTIONS, days=OPERATE_DAYS, seed=11), progress=False)
    rollups_refresh.refresh(url)
    return url


@pytest.fixture(name="operate_services")
def operate_services_fixture(operate_database_url: str, redis_url: str, redis_prefix: str) -> Iterator[Services]:
    """Services on the operators' seeded database (read it, do not write to it)."""
    built = build_services(test_settings(operate_database_url, redis_url, redis_prefix))
    yield built
    built.close()


def random_records(rng: random.Random, count: int, start: datetime, span: timedelta) -> list[ExecutionRecord]:
    """Draw ``count`` executions created between ``start`` and ``start + span``."""
    records: list[ExecutionRecord] = []
    categories = list(ERROR_SHAPES)
    for _ in range(count):
        provider = rng.choice(list(KNOWN_MODELS))
        model = rng.choice(KNOWN_MODELS[provider])
        created = start + timedelta(seconds=rng.uniform(0, span.total_seconds()))
        failed = rng.random() < 0.15
        category = rng.choice(categories) if failed else None
        latency = None if rng.random() < 0.03 else int(rng.lognormvariate(7, 0.6))
        status = ExecutionStatus.FAILED if failed else ExecutionStatus.SUCCEEDED
        records.append(
            ExecutionRecord(
                created_at=created,
                user_id=rng.randint(1, 500),
                prompt_id=rng.randint(1, 100),
                provider=provider,
                model=model,
                status=status,
                error_category=category,
                error_code=ERROR_SHAPES[category][1] if category else None,
                error_message=ERROR_SHAPES[category][2] if category else None,
                latency_ms=latency,
                ttfb_ms=None if failed or latency is None else int(latency * rng.uniform(0.1, 0.4)),
                input_tokens=rng.randint(10, 2000),
                output_tokens=0 if failed else rng.randint(1, 800),
                cost_usd=Decimal(f"{rng.uniform(0, 0.05):.6f}"),
                request_id=f"req-{rng.getrandbits(48):x}",
                finished_at=None,
            )
        )
    return records
