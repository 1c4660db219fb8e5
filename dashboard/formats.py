"""How figures are written on the pages: counts, shares, durations, money, sizes, TTLs and ages."""

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


def size(amount: float) -> str:
    """Write a byte count in binary units: 512 B, 412.0 MiB, 1.0 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(amount) < 1024 or unit == "TiB":
            return f"{amount:,.0f} {unit}" if unit == "B" else f"{amount:,.1f} {unit}"
        amount /= 1024
    return f"{amount:,.1f} TiB"


def ttl(seconds: float | None) -> str:
    """Write a time to live in the largest sensible unit: 40 s, 12.5 min, 3.2 h."""
    if seconds is None:
        return NOT_AVAILABLE
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def age(seconds: float) -> str:
    """Write how old something is in words a person reads at a glance: 40 s, 12 min, 3 h 5 min, 4 days."""
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{seconds // 60} min"
    if seconds < 48 * 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} days"
