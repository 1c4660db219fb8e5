"""Audit log: intents recorded before their effect, and a hash chain that shows any rewrite.

An action whose effect lies outside the database (Redis, Unleash) is first recorded as a
``pending`` intent, and its outcome row names that intent (``intent_id``); an intent left
without an outcome is closed as ``unknown``. Every row carries ``hash``, the SHA-256 of the
previous row's hash and the row's canonical content (``krowoc_audit_canonical``), set by a
trigger under an advisory lock, so concurrent writers keep one chain; the trigger also gives
each row its id while it holds the lock, so the ids follow the chain. The rows already written
are chained in id order.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 14:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_OUTCOMES = "outcome IN ('success', 'denied', 'failed', 'invalid')"
NEW_OUTCOMES = "outcome IN ('success', 'denied', 'failed', 'invalid', 'pending', 'unknown')"

# STABLE, not IMMUTABLE: to_char is STABLE, and only a function declared no less volatile than its
# body is inlined into a query; inlined, verifying recomputes a hash in about 4 µs instead of 30.
CANONICAL = """
CREATE FUNCTION krowoc_audit_canonical(r audit_log) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_array(
        r.id, to_char(r.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), r.actor, r.actor_role, r.action,
        r.target_type, r.target_id, r.before, r.after, r.reason, r.request_id, r.source, r.outcome, r.detail,
        r.intent_id
    )::text
$$;
CREATE FUNCTION krowoc_audit_hash(previous text, r audit_log) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT encode(sha256(convert_to(coalesce(previous, '') || krowoc_audit_canonical(r), 'UTF8')), 'hex')
$$;
"""

CHAIN = """
CREATE FUNCTION krowoc_audit_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    previous text;
BEGIN
    -- One writer at a time extends the chain; the lock ends with the writer's transaction.
    PERFORM pg_advisory_xact_lock(hashtext('krowoc.audit_log.chain'));
    NEW.id := nextval(pg_get_serial_sequence('audit_log', 'id'));
    SELECT hash INTO previous FROM audit_log ORDER BY id DESC LIMIT 1;
    NEW.prev_hash := previous;
    NEW.hash := krowoc_audit_hash(previous, NEW);
    RETURN NEW;
END $$;
CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION krowoc_audit_chain();
"""

BACKFILL = """
DO $$
DECLARE
    r audit_log;
    previous text := NULL;
BEGIN
    FOR r IN SELECT * FROM audit_log ORDER BY id LOOP
        UPDATE audit_log SET prev_hash = previous, hash = krowoc_audit_hash(previous, r) WHERE id = r.id;
        previous := krowoc_audit_hash(previous, r);
    END LOOP;
END $$;
"""


def upgrade() -> None:
    op.drop_constraint(op.f("ck_audit_log_outcome"), "audit_log", type_="check")
    op.create_check_constraint(op.f("ck_audit_log_outcome"), "audit_log", NEW_OUTCOMES)
    op.add_column("audit_log", sa.Column("intent_id", sa.BigInteger(), nullable=True))
    op.add_column("audit_log", sa.Column("prev_hash", sa.String(length=64), nullable=True))
    op.add_column("audit_log", sa.Column("hash", sa.String(length=64), nullable=True))
    op.create_index(
        "ix_audit_log_intent_id", "audit_log", ["intent_id"], postgresql_where=sa.text("intent_id IS NOT NULL")
    )
    op.create_index("ix_audit_log_pending", "audit_log", ["at"], postgresql_where=sa.text("outcome = 'pending'"))
    op.execute(CANONICAL)
    op.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
    op.execute(BACKFILL)
    op.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
    op.execute(CHAIN)


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_log_chain ON audit_log")
    op.execute("DROP FUNCTION krowoc_audit_chain()")
    op.execute("DROP FUNCTION krowoc_audit_hash(text, audit_log)")
    op.execute("DROP FUNCTION krowoc_audit_canonical(audit_log)")
    op.drop_index("ix_audit_log_pending", table_name="audit_log")
    op.drop_index("ix_audit_log_intent_id", table_name="audit_log")
    # The earlier schema knows no intents: an intent and an unknown outcome read as failed there.
    op.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
    op.execute("UPDATE audit_log SET outcome = 'failed' WHERE outcome IN ('pending', 'unknown')")
    op.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
    op.drop_column("audit_log", "hash")
    op.drop_column("audit_log", "prev_hash")
    op.drop_column("audit_log", "intent_id")
    op.drop_constraint(op.f("ck_audit_log_outcome"), "audit_log", type_="check")
    op.create_check_constraint(op.f("ck_audit_log_outcome"), "audit_log", OLD_OUTCOMES)
