"""Tuning of the long-running processes (the dashboard server), kept out of the pages.

A dashboard process imports pandas, SQLAlchemy, Plotly and Streamlit and builds its services
once: a few hundred thousand objects that live as long as the process. CPython's cyclic garbage
collector walks all of them on every full collection, which a page's read triggers every few
requests once it has allocated enough rows: at 10 million executions that was a 40-60 ms pause
on one read in six. Freezing the heap once start-up is done moves those objects out of the
collector's reach (``gc.freeze``), so a full collection walks only what the requests made.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect once, then exempt every object alive now from future collections; return how many.

    Call it after the process has imported its modules and built its long-lived services. Calling
    it again later freezes what was added since; objects frozen are never freed by the cyclic
    collector, so it is for what lives as long as the process, not for per-request data.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
