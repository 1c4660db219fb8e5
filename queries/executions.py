"""Support's reads of raw executions: search, one execution's detail and neighbours, CSV export.

It searches one user's (or everyone's) executions, reads one execution's detail and the
executions around it, and exports a search as CSV.

Unlike the charts, these read ``prompt_executions`` itself, row by row, so every query is shaped to
an index: a user's executions come from ``ix_prompt_executions_user_id_created_at`` (newest first),
an execution by id from each monthly partition's primary key, and the time window always bounds
``created_at`` so only the partitions it touches are read.

Pagination is by keyset, never OFFSET: a page ends with a ``Cursor`` holding the sort key, the
creation time and the id of its last row, and the next page starts strictly after it. The id makes
the order total, so no row is shown twice or skipped however many executions arrive meanwhile (new
ones land before the first page of a newest-first search, not between pages).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, BinaryIO

import pandas as pd
from pydantic import BaseModel
from sqlalchemy import Connection, text

from core.domain.exceptions import InvalidInput
from core.domain.models import Actor, ErrorCategory, Execution, ExecutionStatus, TimeWindow
from core.executions.export import ExecutionExports, ExportReport

MAX_SEARCH_SPAN = timedelta(days=100)
"""The widest time range an execution search may cover (the platform keeps 90 days at hand)."""
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_ID = 2**63 - 1
MAX_TEXT = 200
"""The longest text a search box accepts; anything longer cannot name a provider, model or user."""
EXPORT_CHUNK_BYTES = 1 << 20
EXPORT_MAX_ROWS = 1_000_000
"""The most rows the CSV query writes whatever the configuration (``KROWOC_EXPORT_MAX_ROWS`` is lower)."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")


class SortKey(StrEnum):
    """What a search is ordered by; the creation time and the id break ties."""

    TIME = "time"
    LATENCY = "latency"
    COST = "cost"


# The SQL of each sort key. Executions without a latency (queued, running) sort as -1 ms.
_SORT_SQL: dict[SortKey, str] = {
    SortKey.TIME: "e.created_at",
    SortKey.LATENCY: "COALESCE(e.latency_ms, -1)",
    SortKey.COST: "e.cost_usd",
}


def parse_id(value: str, *, what: str = "id") -> int:
    """Read a positive whole-number id typed by a person, or say what is wrong with it."""
    cleaned = value.strip()
    if not cleaned:
        raise InvalidInput(f"Enter the {what}: a whole number such as 1234.")
    if len(cleaned) > 20 or not cleaned.isdigit() or not cleaned.isascii():
        raise InvalidInput(f"The {what} must be a whole number such as 1234, not {_quote(cleaned)}.")
    number = int(cleaned)
    if number < 1 or number > MAX_ID:
        raise InvalidInput(f"The {what} must be between 1 and {MAX_ID:,}, not {_quote(cleaned)}.")
    return number


def parse_status(value: str) -> ExecutionStatus:
    """Read an execution status from a link or a box, naming the known ones when it is not one."""
    cleaned = value.strip().lower()
    try:
        return ExecutionStatus(cleaned)
    except ValueError:
        known = ", ".join(s.value for s in ExecutionStatus)
        raise InvalidInput(f"Unknown status {_quote(value.strip())}; use one of {known}.") from None


def parse_category(value: str) -> ErrorCategory:
    """Read an error category from a link or a box, naming the known ones when it is not one."""
    cleaned = value.strip().lower()
    try:
        return ErrorCategory(cleaned)
    except ValueError:
        known = ", ".join(c.value for c in ErrorCategory)
        raise InvalidInput(f"Unknown error category {_quote(value.strip())}; use one of {known}.") from None


def parse_sort(value: str) -> SortKey:
    """Read a sort key (time, latency or cost)."""
    try:
        return SortKey(value.strip().lower())
    except ValueError:
        known = ", ".join(k.value for k in SortKey)
        raise InvalidInput(f"Unknown sort order {_quote(value.strip())}; use one of {known}.") from None


def parse_name(value: str, *, what: str) -> str:
    """Read a provider or model name: letters, digits and . _ : / - only, at most 64 characters."""
    cleaned = value.strip()
    if not _NAME.match(cleaned):
        raise InvalidInput(
            f"The {what} {_quote(cleaned)} is not a {what} name: use letters, digits and . _ : / - "
            "(at most 64 characters), for example gpt-4o."
        )
    return cleaned


def _quote(value: str) -> str:
    shown = value if len(value) <= 40 else value[:40] + "…"
    return f"“{shown}”"


@dataclass(frozen=True)
class ExecutionFilters:
    """One execution search: a time window and optional equality filters, with its sort order."""

    window: TimeWindow
    user_id: int | None = None
    status: ExecutionStatus | None = None
    category: ErrorCategory | None = None
    provider: str | None = None
    model: str | None = None
    sort: SortKey = SortKey.TIME
    descending: bool = True

    def __post_init__(self) -> None:
        if self.window.span > MAX_SEARCH_SPAN:
            raise InvalidInput(
                f"An execution search may span at most {MAX_SEARCH_SPAN.days} days; this one spans "
                f"{self.window.span.days} days. Pick a shorter range."
            )
        if self.user_id is not None and not 1 <= self.user_id <= MAX_ID:
            raise InvalidInput(f"The user id must be between 1 and {MAX_ID:,}.")
        if self.provider is not None:
            parse_name(self.provider, what="provider")
        if self.model is not None:
            parse_name(self.model, what="model")


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: its last row's sort key, creation time and id."""

    key: int | Decimal | datetime
    created_at: datetime
    id: int

    def encode(self) -> str:
        """Write the cursor as a short opaque token."""
        key: Any = self.key.isoformat() if isinstance(self.key, datetime) else str(self.key)
        raw = json.dumps([key, self.created_at.isoformat(), self.id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str, sort: SortKey) -> Cursor:
        """Read a token written by ``encode`` for the same sort order."""
        try:
            padded = token + "=" * (-len(token) % 4)
            key, created, ident = json.loads(base64.urlsafe_b64decode(padded.encode()))
            at = datetime.fromisoformat(created)
            parsed: int | Decimal | datetime
            if sort is SortKey.TIME:
                parsed = datetime.fromisoformat(key)
            elif sort is SortKey.LATENCY:
                parsed = int(key)
            else:
                parsed = Decimal(key)
            if at.tzinfo is None or not isinstance(ident, int):
                raise ValueError(token)
            return cls(key=parsed, created_at=at, id=ident)
        except (ValueError, TypeError, InvalidOperation, UnicodeDecodeError) as exc:
            raise InvalidInput("The page position is not valid any more; start again from the first page.") from exc


@dataclass(frozen=True)
class ExecutionPage:
    """One page of a search: its rows (at most ``limit``) and the cursor of the next page, if any."""

    rows: pd.DataFrame
    next_cursor: Cursor | None


LIST_COLUMNS = (
    "id, created_at, user_id, prompt_id, provider, model, status, error_category, error_code, "
    "latency_ms, ttfb_ms, input_tokens, output_tokens, cost_usd, score, request_id"
)


def _where(filters: ExecutionFilters, params: dict[str, Any]) -> str:
    clauses = ["e.created_at >= :start", "e.created_at < :end"]
    params["start"], params["end"] = filters.window.start, filters.window.end
    for column in ("user_id", "status", "category", "provider", "model"):
        value = getattr(filters, column)
        if value is not None:
            name = "error_category" if column == "category" else column
            clauses.append(f"e.{name} = :{column}")
            params[column] = value.value if isinstance(value, StrEnum) else value
    return " AND ".join(clauses)


def _order(filters: ExecutionFilters) -> str:
    direction = "DESC" if filters.descending else "ASC"
    keys = [f"{_SORT_SQL[filters.sort]} {direction}"] if filters.sort is not SortKey.TIME else []
    return ", ".join([*keys, f"e.created_at {direction}", f"e.id {direction}"])


def _after(filters: ExecutionFilters, cursor: Cursor, params: dict[str, Any]) -> str:
    op = "<" if filters.descending else ">"
    params["c_at"], params["c_id"] = cursor.created_at, cursor.id
    if filters.sort is SortKey.TIME:
        # The plain bound lets the (user_id, created_at) index start at the cursor.
        bound = "<=" if filters.descending else ">="
        return f" AND e.created_at {bound} :c_at AND (e.created_at, e.id) {op} (:c_at, :c_id)"
    params["c_key"] = cursor.key
    return f" AND ({_SORT_SQL[filters.sort]}, e.created_at, e.id) {op} (:c_key, :c_at, :c_id)"


def search(
    conn: Connection, filters: ExecutionFilters, *, after: Cursor | None = None, limit: int = PAGE_SIZE
) -> ExecutionPage:
    """Return one page of executions matching the filters, in the sort order, after ``after``."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"A page holds between 1 and {MAX_PAGE_SIZE} executions.")
    params: dict[str, Any] = {"limit": limit + 1}
    where = _where(filters, params)
    if after is not None:
        where += _after(filters, after, params)
    columns = ", ".join(f"e.{c.strip()}" for c in LIST_COLUMNS.split(","))
    sql = (
        f"SELECT {columns}, {_SORT_SQL[filters.sort]} AS sort_key FROM prompt_executions e "
        f"WHERE {where} ORDER BY {_order(filters)} LIMIT :limit"
    )
    result = conn.execute(text(sql), params)
    rows = result.all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = Cursor(key=last.sort_key, created_at=last.created_at, id=last.id)
    frame = pd.DataFrame([tuple(r)[:-1] for r in rows], columns=list(result.keys())[:-1])
    return ExecutionPage(rows=frame, next_cursor=next_cursor)


def count_matching(conn: Connection, filters: ExecutionFilters, *, cap: int = EXPORT_MAX_ROWS) -> int:
    """Count the executions a search matches, stopping at ``cap`` + 1."""
    params: dict[str, Any] = {"cap": cap + 1}
    sql = f"SELECT count(*) FROM (SELECT 1 FROM prompt_executions e WHERE {_where(filters, params)} LIMIT :cap) s"
    return int(conn.execute(text(sql), params).scalar_one())


# -- one execution ----------------------------------------------------------------------------


class ExecutionDetail(BaseModel):
    """Everything support sees about one execution, except its payload."""

    execution: Execution
    user_email: str | None
    user_display_name: str | None
    prompt_title: str | None
    prompt_version: int | None
    has_payload: bool


DETAIL = """
SELECT e.*, u.email AS user_email, u.display_name AS user_display_name,
       p.title AS prompt_title, p.version AS prompt_version,
       EXISTS (SELECT 1 FROM execution_payloads x WHERE x.execution_id = e.id) AS has_payload
FROM prompt_executions e
LEFT JOIN users u ON u.id = e.user_id
LEFT JOIN prompts p ON p.id = e.prompt_id
WHERE e.id = :id
"""


def execution_detail(conn: Connection, execution_id: int) -> ExecutionDetail | None:
    """Return one execution with its user and prompt, or None when no execution has that id."""
    row = conn.execute(text(DETAIL), {"id": execution_id}).mappings().first()
    if row is None:
        return None
    return ExecutionDetail(
        execution=Execution.model_validate(dict(row)),
        user_email=row["user_email"],
        user_display_name=row["user_display_name"],
        prompt_title=row["prompt_title"],
        prompt_version=row["prompt_version"],
        has_payload=bool(row["has_payload"]),
    )


AROUND = f"""
SELECT * FROM (
    (SELECT {LIST_COLUMNS} FROM prompt_executions
     WHERE user_id = :user_id AND created_at >= :since AND created_at <= :at
       AND (created_at, id) < (:at, :id)
     ORDER BY created_at DESC, id DESC LIMIT :n)
    UNION ALL
    (SELECT {LIST_COLUMNS} FROM prompt_executions
     WHERE user_id = :user_id AND created_at >= :at AND created_at < :until
       AND (created_at, id) > (:at, :id)
     ORDER BY created_at, id LIMIT :n)
) around ORDER BY created_at, id
"""


def executions_around(
    conn: Connection, execution: Execution, *, n: int = 10, span: timedelta = timedelta(days=1)
) -> pd.DataFrame:
    """Return up to ``n`` of the user's executions just before and ``n`` just after one, oldest first."""
    params = {
        "user_id": execution.user_id,
        "at": execution.created_at,
        "id": execution.id,
        "since": execution.created_at - span,
        "until": execution.created_at + span,
        "n": n,
    }
    result = conn.execute(text(AROUND), params)
    return pd.DataFrame([tuple(r) for r in result], columns=list(result.keys()))


# -- CSV export -------------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "id",
    "created_at",
    "finished_at",
    "user_id",
    "prompt_id",
    "provider",
    "model",
    "status",
    "error_category",
    "error_code",
    "error_message",
    "latency_ms",
    "ttfb_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "score",
    "request_id",
)


EXPORT_TEXT_COLUMNS = frozenset(
    {"provider", "model", "status", "error_category", "error_code", "error_message", "request_id"}
)
"""Columns whose text can come from outside (a provider's error, a client's request id)."""
FORMULA_START = r"^[=+@\t\r-]"
"""How a cell a spreadsheet would run as a formula starts (OWASP's list for CSV injection)."""


def _export_column(column: str) -> str:
    """Select a column for the CSV: a text cell that starts like a formula gets a leading quote, so it stays text."""
    if column not in EXPORT_TEXT_COLUMNS:
        return f"e.{column}"
    value = f"CAST(e.{column} AS text)"  # no "::": the statement's ":name" parameters are rewritten
    return f"CASE WHEN {value} ~ E'{FORMULA_START}' THEN '''' || {value} ELSE {value} END AS {column}"


@dataclass(frozen=True)
class ExportChunk:
    """A piece of the CSV file and how many executions it holds."""

    data: bytes
    rows: int


def export_csv(
    conn: Connection, filters: ExecutionFilters, *, max_rows: int = EXPORT_MAX_ROWS
) -> Iterator[ExportChunk]:
    """Stream a search's executions as CSV (header first) in chunks of about 1 MiB.

    PostgreSQL writes the CSV itself (``COPY ... TO STDOUT``) and the rows are passed on as they
    arrive, so memory stays at one chunk whatever the size of the export. Payloads are never
    exported. ``conn`` must be a psycopg connection's SQLAlchemy wrapper inside a transaction.
    """
    params: dict[str, Any] = {}
    where = _where(filters, params)
    columns = ", ".join(_export_column(c) for c in EXPORT_COLUMNS)
    select = f"SELECT {columns} FROM prompt_executions e WHERE {where} ORDER BY {_order(filters)} LIMIT {int(max_rows)}"
    # COPY takes no server-side parameters: psycopg binds them on the client, quoted.
    statement = re.sub(r":(\w+)", r"%(\1)s", select)
    conn.exec_driver_sql("SET LOCAL TimeZone = 'UTC'")
    driver = conn.connection.driver_connection
    assert driver is not None
    buffer = bytearray()
    rows = -1  # PostgreSQL sends the header as the first message
    with driver.cursor() as cursor, cursor.copy(f"COPY ({statement}) TO STDOUT (FORMAT csv, HEADER)", params) as copy:
        for data in copy:
            buffer += data
            rows += 1
            if len(buffer) >= EXPORT_CHUNK_BYTES:
                yield ExportChunk(bytes(buffer), rows)
                buffer.clear()
                rows = 0
    if buffer:
        yield ExportChunk(bytes(buffer), rows)


def describe(filters: ExecutionFilters) -> dict[str, str]:
    """Return a search's filters as text, for the export's audit row."""
    described = {
        "from": filters.window.start.isoformat(timespec="minutes"),
        "to": filters.window.end.isoformat(timespec="minutes"),
    }
    for name in ("user_id", "status", "category", "provider", "model"):
        value = getattr(filters, name)
        if value is not None:
            described[name] = str(value)
    return described


def export_search(
    exports: ExecutionExports,
    actor: Actor,
    filters: ExecutionFilters,
    sink: BinaryIO,
    on_progress: Callable[[int, int], None],
) -> ExportReport:
    """Export a search as CSV to ``sink`` under the export rules (permission, cap, one at a time, audit)."""
    return exports.export(
        actor,
        filters=describe(filters),
        count=lambda conn, cap: count_matching(conn, filters, cap=cap),
        chunks=lambda conn, cap: ((chunk.data, chunk.rows) for chunk in export_csv(conn, filters, max_rows=cap)),
        sink=sink,
        on_progress=on_progress,
    )
