"""Random executions to write, for the operators' views (errors, latency, rollups) and their refresher."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal

from core.domain.catalog import KNOWN_MODELS
from core.domain.models import ExecutionStatus
from core.executions.records import ExecutionRecord
from devstack.simulator.providers import ERROR_SHAPES


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
