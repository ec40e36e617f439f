"""Replacing a small file at once: readers see the old text or the new one, never half of it."""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["replace_text"]


def replace_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to a temporary file beside ``path`` (named for this process and
    thread, so concurrent writers do not share one), then rename it over ``path``; the folder is
    created if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
