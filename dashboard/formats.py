"""How figures are written on the pages: counts, shares, durations and money."""

from __future__ import annotations

from decimal import Decimal

NOT_AVAILABLE = "—"


def count(value: int) -> str:
    """Write a count with thousands separators: 12,345."""
    return f"{value:,}"


def share(value: float | None) -> str:
    """Write a share (0..1) as a percentage with two decimals: 1.23 %."""
    return NOT_AVAILABLE if value is None else f"{value * 100:.2f} %"


def duration_ms(value: float | None) -> str:
    """Write a duration: milliseconds below ten seconds (840 ms, 2,140 ms), else seconds (12.4 s)."""
    if value is None:
        return NOT_AVAILABLE
    return f"{value:,.0f} ms" if value < 10_000 else f"{value / 1000:,.1f} s"


def usd(value: Decimal | float | None) -> str:
    """Write an amount of US dollars: $1,234.56, or four decimals below one dollar ($0.0042)."""
    if value is None:
        return NOT_AVAILABLE
    amount = float(value)
    return f"${amount:,.2f}" if abs(amount) >= 1 else f"${amount:,.4f}"
