"""The audit log as a trail nobody can lose or rewrite: intents before effects, a hash chain, a throttle."""

from __future__ import annotations

import itertools
import json
import threading
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from cli.main import main
from core.adapters.events import stream_key
from core.adapters.telemetry import serve_metrics
from core.audit import ActionLimit, ActionThrottle, ActionThrottled, AuditLog
from core.bootstrap import Services, build_services
from core.cache.keys import Namespace
from core.cache.service import NamespaceInvalidation
from core.domain.actions import AdminAction
from core.domain.exceptions import InvalidInput
from core.domain.models import AuditOutcome, Role
from core.domain.rbac import Permission, PermissionDenied
from tests.support.network import free_port
from tests.support.settings import AUDITOR, actor, settings_for

OPERATOR = actor(Role.OPERATOR)


def _owner_rewrite(services: Services, sql: str) -> None:
    """Do what the table's owner can and the app must not: set the append-only rule aside and change rows."""
    with services.db.write() as conn:
        conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
        conn.execute(text(sql))
        conn.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only"))


def _invalidate(services: Services, reason: str = "stale profiles") -> None:
    services.cache_admin.invalidate_namespace(OPERATOR, NamespaceInvalidation(namespace="user-profile", reason=reason))


def test_every_row_extends_one_chain_and_verify_finds_it_whole(isolated: Services) -> None:
    for number in range(5):
        _invalidate(isolated, f"round {number}")

    verdict = isolated.audit.verify()

    assert verdict.intact and verdict.rows == 10  # an intent and an outcome each
    assert (verdict.head_id, verdict.head_hash) == isolated.audit.head()
    with isolated.db.read() as conn:
        rows = conn.execute(text("SELECT id, prev_hash, hash FROM audit_log ORDER BY id")).all()
    assert rows[0].prev_hash is None
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(rows))
    assert len({row.hash for row in rows}) == len(rows)


def test_concurrent_writers_keep_one_chain_in_id_order(isolated: Services) -> None:
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for number in range(15):
                isolated.audit.record(
                    actor=actor(Role.SUPPORT, f"w{worker}@krowoc.test"),
                    action=AdminAction.USER_CHANGE_TIER,
                    target_type="user",
                    target_id=f"{worker}-{number}",
                    outcome=AuditOutcome.SUCCESS,
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    verdict = isolated.audit.verify()
    assert verdict.intact and verdict.rows == 90


@pytest.mark.parametrize(
    ("rewrite", "why"),
    [
        ("UPDATE audit_log SET reason = 'nothing to see' WHERE id = {target}", "content does not match"),
        ("DELETE FROM audit_log WHERE id = {target}", "does not name the hash of the row before"),
    ],
)
def test_an_owners_rewrite_is_named_by_verify_and_the_command_line(
    cli_env: tuple[str, str], redis_url: str, rewrite: str, why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url, prefix = cli_env
    services = build_services(settings_for(url, redis_url, prefix))
    try:
        for number in range(4):
            _invalidate(services, f"round {number}")
        head_before = services.audit.head()
        ids = [r.id for r in services.audit.search(AUDITOR, limit=100)][::-1]
        target = ids[3]
        _owner_rewrite(services, rewrite.format(target=target))

        verdict = services.audit.verify()
        # An update breaks the row itself; a deletion breaks the row after the hole.
        broken = target if "UPDATE" in rewrite else ids[4]
        assert verdict.first_break is not None and verdict.first_break.id == broken and why in verdict.first_break.why
        assert services.audit.verify(since_id=ids[5]).intact  # the rows after it still chain to each other
    finally:
        services.close()

    assert main(["audit", "verify"]) == 1
    assert f"changed at row {broken}" in capsys.readouterr().err
    assert head_before is not None


def test_an_action_outside_the_database_records_its_intent_first(isolated: Services) -> None:
    seen_during: list[list[str]] = []
    original = isolated.cache.bump_namespace

    def bump_and_look(namespace: Namespace) -> int:
        with isolated.db.read() as conn:
            seen_during.append(list(conn.execute(text("SELECT outcome FROM audit_log ORDER BY id")).scalars()))
        return original(namespace)

    isolated.cache.bump_namespace = bump_and_look  # type: ignore[method-assign]
    _invalidate(isolated)

    assert seen_during == [["pending"]]  # committed, and visible to anyone, before Redis was touched
    outcome, intent = isolated.audit.latest(AUDITOR, limit=2)
    assert (intent.outcome, outcome.outcome, outcome.intent_id) == ("pending", "success", intent.id)


def test_an_intent_left_without_outcome_is_closed_as_unknown_once(isolated: Services) -> None:
    intent_id = isolated.audit.record(
        actor=OPERATOR,
        action=AdminAction.CACHE_INVALIDATE_TIER,
        target_type="cache_tier",
        target_id="user",
        outcome=AuditOutcome.PENDING,
        reason="the process died after this",
    )
    assert isolated.audit.reap() == 0  # too fresh: the action may still be running
    later = datetime.now(UTC) + timedelta(minutes=6)

    assert isolated.audit.reap(now=later) == 1
    assert isolated.audit.reap(now=later) == 0
    [unknown] = isolated.audit.search(AUDITOR, outcome=AuditOutcome.UNKNOWN)
    assert (unknown.intent_id, unknown.actor, unknown.action) == (intent_id, OPERATOR.id, "cache.invalidate_tier")
    assert "may or may not have happened" in (unknown.detail or "")
    assert isolated.audit.unresolved()[0] == 1
    assert isolated.audit.verify().intact


def test_the_upkeep_publishes_the_chains_head_as_metrics_and_on_the_stream(isolated: Services) -> None:
    from prometheus_client import REGISTRY

    _invalidate(isolated)
    report = isolated.audit_upkeep.run_once()

    head = isolated.audit.head()
    assert head is not None and (report.head_id, report.head_hash) == head
    assert REGISTRY.get_sample_value("krowoc_audit_chain_head_id") == head[0]
    assert REGISTRY.get_sample_value("krowoc_audit_chain_head_hash48") == int(head[1][:12], 16)
    entries = isolated.redis.xrange(stream_key(isolated.settings.redis_key_prefix))
    lines = [json.loads(fields[b"payload"]) for _, fields in entries if fields[b"kind"] == b"audit.head"]
    assert lines[-1] == {"id": head[0], "hash": head[1]}


@pytest.mark.parametrize("reason", ["spam\x00", "line\x1b[31mred", "bell\x07", "sep\u2028arator"])
def test_a_reason_with_a_control_character_is_refused_before_anything_happens(isolated: Services, reason: str) -> None:
    versions = isolated.cache.current_versions()

    with pytest.raises(InvalidInput, match="control character"):
        _invalidate(isolated, reason)

    assert isolated.cache.current_versions() == versions  # Redis untouched
    [record] = isolated.audit.latest(AUDITOR)
    assert record.outcome == AuditOutcome.INVALID and record.intent_id is None
    assert record.reason is not None and ("\\x" in record.reason or "\\u" in record.reason)


def test_a_denied_attempt_with_a_nul_in_its_reason_is_still_recorded(isolated: Services) -> None:
    with pytest.raises(PermissionDenied):
        isolated.cache_admin.invalidate_namespace(
            actor(Role.VIEWER), NamespaceInvalidation(namespace="user-profile", reason="x\x00y")
        )

    [record] = isolated.audit.latest(AUDITOR)
    assert (record.outcome, record.reason) == (AuditOutcome.DENIED, "x\\x00y")


def test_text_too_long_for_its_column_is_cut_not_refused_by_the_database(isolated: Services) -> None:
    isolated.audit.record(
        actor=actor(Role.PRODUCT, "p" * 200),
        action=AdminAction.FLAG_TOGGLE,
        target_type="feature_flag",
        target_id="f" * 300,
        outcome=AuditOutcome.INVALID,
        reason="r" * 10_000,
        detail="d" * 10_000,
    )
    [record] = isolated.audit.latest(AUDITOR)
    # Each column holds its size: 200 characters for the target, 2,000 for the detail.
    assert record.target_id == "f" * 199 + "…" and record.actor == "p" * 200
    assert len(record.detail or "") == 2000 and len(record.reason or "") == 4000


def test_the_throttle_refuses_a_burst_and_records_the_refusal(
    make_database: Callable[..., str], redis_url: str, prefix: str
) -> None:
    services = build_services(
        settings_for(
            make_database(),
            redis_url,
            prefix,
            action_limits={"cache.invalidate_namespace": "6/2"},
        )
    )
    try:
        _invalidate(services, "one")
        _invalidate(services, "two")
        with pytest.raises(ActionThrottled, match="wait"):
            _invalidate(services, "three")
        # Another person's allowance is their own.
        services.cache_admin.invalidate_namespace(
            actor(Role.ADMIN), NamespaceInvalidation(namespace="user-profile", reason="mine")
        )
    finally:
        services.close()
    outcomes = [(r.actor, r.outcome) for r in services.audit.search(AUDITOR, action="cache.invalidate_namespace")]
    assert outcomes.count((OPERATOR.id, AuditOutcome.DENIED)) == 1
    assert outcomes.count((OPERATOR.id, AuditOutcome.SUCCESS)) == 2


def test_limits_are_parsed_and_bad_ones_refused() -> None:
    assert ActionLimit.parse("30/10") == ActionLimit(per_minute=30, burst=10)
    for bad in ("30", "x/1", "0/5", "5/0"):
        with pytest.raises(InvalidInput):
            ActionLimit.parse(bad)


def test_with_redis_down_the_throttle_lets_actions_through(isolated: Services) -> None:
    from core.adapters.redis import make_redis

    dead = make_redis("redis://127.0.0.1:1/0")
    log = AuditLog(isolated.db, throttle=ActionThrottle(dead, "x:", limits={}))
    with log.action(
        OPERATOR,
        AdminAction.CACHE_INVALIDATE_TIER,
        permission=Permission.INVALIDATE_CACHE,
        target_type="cache_tier",
        target_id="user",
        reason="redis is down",
    ):
        pass
    assert log.throttle is not None and log.throttle.redis_errors == 1
    dead.close()


def test_every_audit_row_counts_in_the_metrics_prometheus_scrapes(isolated: Services) -> None:
    def count(outcome: str) -> float:
        value = REGISTRY.get_sample_value(
            "krowoc_admin_actions_total", {"action": "cache.invalidate_namespace", "outcome": outcome}
        )
        return value or 0.0

    before = {outcome: count(outcome) for outcome in ("success", "pending", "denied")}
    _invalidate(isolated, "metrics 1")
    with pytest.raises(PermissionDenied):
        isolated.cache_admin.invalidate_namespace(
            actor(Role.VIEWER), NamespaceInvalidation(namespace="user-profile", reason="no")
        )
    assert {outcome: count(outcome) - before[outcome] for outcome in before} == {
        "success": 1,
        "pending": 1,
        "denied": 1,
    }
    port = free_port()
    assert serve_metrics(port)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'krowoc_admin_actions_total{action="cache.invalidate_namespace",outcome="success"}' in body
    assert not serve_metrics(port)  # taken: logged, not raised
