"""Presenter limits (:mod:`mtl_core.workshop.limits`): summarised for the pages, read and set by the
presenter (the engine checks them on every submission). What a page shows never names the limits
file's path: participants read it too (the engine's refusals leave it out as well)."""

from __future__ import annotations

from mtl_core.workshop.access import AccessError, Actor
from mtl_core.workshop.limits import LIMITS_ENV, LimitError, LimitsFileError, load_limits, save_limits

__all__ = ["LIMIT_LABELS", "LimitError", "LimitsFileError", "current_limits", "file_problem", "limits_summary",
           "set_limits"]

#: The presenter's limits and how the sidebar names them.
LIMIT_LABELS = {
    "max_epochs": "Max epochs per run",
    "max_concurrent_runs_per_session": "Max queued or running runs per participant",
    "max_tasks": "Max tasks per run",
    "max_samples": "Max training rows per run",
}


def limits_summary() -> tuple[list[str], str | None]:
    """The presenter limits in force, one phrase each (empty: none), and the problem with the
    limits file (None when it reads fine)."""
    try:
        return load_limits().describe(), None
    except LimitsFileError as exc:
        return [], file_problem(exc)


def file_problem(exc: LimitsFileError) -> str:
    """What a page says about a limits file that cannot be used: the field and the value, not the
    file's path (nor ``$MTL_LAB_LIMITS``'s value, which is one)."""
    if exc.field == LIMITS_ENV:
        return f"`{LIMITS_ENV}` names no file on the server."
    return f"`{exc.field}` must be {exc.expected}, got {exc.got!r}."


def current_limits() -> dict[str, int | None]:
    """Each limit's cap in force (None = no cap); no caps when the limits file cannot be read."""
    try:
        limits = load_limits()
    except LimitsFileError:
        return dict.fromkeys(LIMIT_LABELS)
    return {key: getattr(limits, key) for key in LIMIT_LABELS}


def set_limits(values: dict[str, int | None], actor: Actor) -> list[str]:
    """Write the caps (None = no cap) for every participant; only the presenter may
    (:class:`AccessError` otherwise). Returns the caps now in force, one phrase each."""
    if not actor.manages_all:
        raise AccessError("Only the presenter can set the limits.")
    return save_limits(values).describe()
