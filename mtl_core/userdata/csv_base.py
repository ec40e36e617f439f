"""What every part of the CSV import shares: :class:`CsvError`, :class:`CsvLimits`, the format
constants and the small helpers for names and sizes in messages (see :mod:`.csv_import`)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import BinaryIO, Literal

from mtl_core.errors import MTLError
from mtl_core.settings import SettingError, settings

SPEC_FORMAT = "mtl_lab.csv_suite/1"
"""The ``format`` field of a saved suite's ``spec.json``."""

NA_TOKENS = frozenset({"", "na", "n/a", "#n/a", "nan", "null", "none", "?"})
"""Cell texts (case-insensitive, surrounding spaces ignored) that mean "missing"."""

_MB = 1_000_000
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")
_DELIMITERS = (",", ";", "\t", "|")
_MAX_NAME_CHARS = 200
_CLASSIFICATION_MAX_DISTINCT = 10
MIN_CLASS_ROWS = 5
"""A class of a classification target with fewer rows than this is *rare*, and the import says so:
the suite is split 60/20/20, so such a class expects less than one row in the validation split and
in the test split, and its metric (and the task's) says little."""
_RARE_SHOWN = 6
_MISSING_CATEGORY = "(missing)"

Kind = Literal["classification", "regression"]
_KINDS = ("classification", "regression")
_MISSING_STRATEGIES = ("drop", "impute")

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO


class CsvError(MTLError, ValueError):
    """A CSV file or an import choice cannot make a suite. ``column`` names the column concerned
    (None when the problem is the whole file or a setting)."""

    def __init__(self, message: str, column: str | None = None) -> None:
        self.column = column
        super().__init__(message)


# --- limits ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvLimits:
    """What a CSV import accepts. :meth:`from_env` reads ``MTL_LAB_MAX_CSV_MB``,
    ``MTL_LAB_MAX_CSV_ROWS`` and ``MTL_LAB_MAX_CSV_COLUMNS``."""

    max_bytes: int = 50 * _MB
    max_rows: int = 1_000_000
    max_columns: int = 1_000
    max_classes: int = 100
    """Classes of one classification target."""
    max_categories: int = 50
    """Distinct values of one categorical (text) feature, each one-hot encoded."""
    max_inputs: int = 2_000
    """Input dimension after encoding."""
    min_rows: int = 10
    """Rows left after missing values are handled (a 60/20/20 split needs a few)."""

    @classmethod
    def from_env(cls) -> CsvLimits:
        """The limits of :mod:`mtl_core.settings`; a bad value is a :class:`CsvError` with its message."""
        current = settings()
        try:
            return cls(max_bytes=int(current.max_csv_mb * _MB), max_rows=current.max_csv_rows,
                       max_columns=current.max_csv_columns)
        except SettingError as exc:
            raise CsvError(str(exc)) from None


def _megabytes(size: float) -> str:
    """A size in MB for messages: ``73.2``, ``50``, ``0.024``."""
    value = size / _MB
    if value == round(value) and value >= 1:
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 1 else f"{value:.2g}"


def _size(size: float) -> str:
    value = size / _MB
    return f"{value:.1f}" if value >= 1 else f"{value:.2g}"


def _clean_name(name: str) -> str:
    """A column name as the header reader keeps it: white-space runs made one space, ends stripped."""
    return " ".join(name.split())
