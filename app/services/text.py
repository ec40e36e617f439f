"""User text shown as literal text. Streamlit renders markdown in ``st.markdown``, ``st.caption``,
``st.info`` / ``st.success`` / ``st.warning`` / ``st.error``, widget labels and ``help=`` tooltips: a CSV
column named ``![pix](http://host/x.png)`` would become an image that every participant's browser
fetches, ``**x**`` bold, ``[x](url)`` a link. Every user-provided string (CSV column, task, suite, run
or file name, a value quoted in an error) goes through :func:`literal` before it is interpolated into
such text. Select box and multiselect options are plain text and need nothing. An engine message (an error, a
warning) keeps its own markdown — names in code spans — but goes through :func:`engine_message`, which
takes away what could fetch or link (images, links, HTML) should a quoted name break out of its span.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["literal", "engine_message"]

# Markdown's punctuation (CommonMark lets a backslash escape any of it), Streamlit's `:icon:` / `:color[…]`
# and `$math$`; HTML's three specials become entities, so no `<tag` survives even as source text.
_SPECIAL = re.compile(r"[\\`*_{}\[\]()#+\-.!|~$:^=<>&\"']")
_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    return _ENTITIES.get(char, "\\" + char)


def literal(value: Any) -> str:
    """``value`` as text that Streamlit's markdown shows exactly as it is, on one line (line breaks
    become spaces, so a name cannot start a heading, a list or a code block)."""
    text = " ".join(str(value).splitlines())
    return _SPECIAL.sub(_escape, text)


_FETCHING = re.compile(r"!\[|\]\(|[<>]")
_FETCHING_ESCAPES = {"![": "!\\[", "](": "\\](", "<": "&lt;", ">": "&gt;"}


def engine_message(text: str) -> str:
    """An engine message for a markdown element: its code spans and emphasis kept, but no image
    (``![``), link (``](``) or HTML tag / autolink (``<``) left in it, wherever a quoted user string put one."""
    return _FETCHING.sub(lambda match: _FETCHING_ESCAPES[match.group(0)], " ".join(str(text).splitlines()))
