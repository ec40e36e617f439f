"""Presenter limits (:mod:`mtl_core.workshop.limits`) summarised for the pages (the engine checks them on every submission)."""

from __future__ import annotations

from mtl_core.workshop.limits import LimitError, LimitsFileError, load_limits

__all__ = ["LimitError", "LimitsFileError", "limits_summary"]


def limits_summary() -> tuple[list[str], str | None]:
    """The presenter limits in force, one phrase each (empty: none), and the problem with the
    limits file (None when it reads fine)."""
    try:
        return load_limits().describe(), None
    except LimitsFileError as exc:
        return [], str(exc)
