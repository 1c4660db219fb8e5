"""Text that platform users or outside systems wrote, shown as text: never as markdown, HTML or a link.

Display names, emails, prompt titles, error messages, flag descriptions, audit reasons, cache
keys and the values of a link's parameters can hold anything. Streamlit renders markdown in
``st.markdown``, captions, alerts, subheaders and labels (links, images, ``:material/...:`` icons,
``:red[...]`` colours, ``$...$`` maths, bare URLs turned into links), and Plotly renders a few HTML
tags in chart labels (``<a href>``, ``<b>``). Every such text goes through one of these two
functions on its way to the page; tables (``st.dataframe``), ``st.text``, ``st.code`` and
``st.json`` show text as it is and need neither.
"""

from __future__ import annotations

import html
import re

_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
"""Every ASCII punctuation character: CommonMark lets a backslash make any of them literal."""
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")


def md(value: object) -> str:
    """Return ``value`` as markdown that shows exactly its text: every punctuation mark escaped, on one line.

    Escaping ``:`` and ``.`` also keeps a bare ``http://`` or ``www.`` from becoming a link, and
    Streamlit's ``:icon:`` and ``:colour[...]`` directives from being recognised.
    """
    return _PUNCTUATION.sub(r"\\\1", _LINE_BREAKS.sub(" ", str(value)))


def chart(value: object) -> str:
    """Return ``value`` for a Plotly label, hover text or title: its HTML tags shown as text, not applied."""
    return html.escape(str(value), quote=False)
