"""Your own data: a CSV file turned into a named task suite.

:func:`inspect_csv` reads a CSV file and describes its columns (type, missing values, the kind of
task each could be); :func:`import_csv` validates the chosen feature and target columns, encodes them
(one-hot categorical features; classification targets as class indices, the class names kept),
handles missing values (rows dropped, or values imputed / labels masked, with counts) and saves the
cleaned numeric dataset under ``$MTL_LAB_HOME/suites/<name>/``:

* ``data.npz``: plain numeric arrays written by numpy and read back with ``allow_pickle=False``;
* ``spec.json``: the columns, the tasks, the class names and the import report.

The saved suite is registered in :data:`mtl_core.suites.SUITES` (see :mod:`mtl_core.suites.user_csv`)
and is usable everywhere a built-in suite is: the trainer, the CLI, the dashboard.

The file is parsed as data only: cells are strings or numbers, never evaluated (a cell ``=1+1`` is
the text ``=1+1``), nothing is unpickled, and nothing is written outside the MTL Lab home folder.
Every problem the file or the choices can cause raises :class:`CsvError` with a message that names
the column or setting, what was expected and what came.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import mmap
import os
import re
import shutil
import tempfile
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np

from mtl_core.errors import MTLError
from mtl_core.runs.store import lab_home
from mtl_core.settings import SettingError, settings

__all__ = [
    "CsvError",
    "CsvLimits",
    "ColumnInfo",
    "CsvPreview",
    "TargetReport",
    "ImportReport",
    "SPEC_FORMAT",
    "NA_TOKENS",
    "MIN_CLASS_ROWS",
    "rare_class_warning",
    "inspect_csv",
    "import_csv",
    "validate_suite_name",
    "user_suites_dir",
    "list_user_suites",
    "remove_user_suite",
    "read_spec",
    "load_suite_arrays",
]

log = logging.getLogger(__name__)

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


# --- reading the file as a stream -------------------------------------------------------------------
#
# The file is never held as one text: it is read in blocks through a reader that counts the bytes
# (refusing the file the moment it passes MTL_LAB_MAX_CSV_MB, or a NUL byte / invalid UTF-8 appears),
# and parsed by pandas in chunks of rows; each chunk is folded into compact per-column arrays (a float64
# number and, for a column with texts, an int16 text code per cell) and dropped, and the row limit is checked after every chunk.

_PREFIX_BYTES = 128 * 1024
"""Bytes looked at before parsing: file signatures, control characters, the delimiter."""
_CHUNK_CELLS = (25_000, 100_000)
"""Cells parsed per chunk, at least and at most: one per 200 bytes of the file in between. A chunk's
object strings and parser buffers (~60 bytes a cell) are memory that does not grow with the file, a
big share of a small file's cost; bigger chunks parse a big file faster (fewer calls per column)."""
_BLOCK_BYTES = 256 * 1024
_MAX_TEXTS = 1_000
"""Distinct texts kept per column. More cannot make a class or category list (whose limits, 100 and
50, are far lower), so beyond them a column only counts as having "more than 1000" distinct values.
Kept low because every column keeps them, numbers included (as typed, for the examples and for a
column whose numbers turn out mixed with texts): at 20 000 they cost ~3 MB per column, more than
the numbers of a 5 MB file."""
_MISSING_CODE = -1
_UNKEPT_CODE = -2  # a present cell whose text was not kept (past _MAX_TEXTS)
_TOO_BIG = "the file is {size} MB; the limit is {limit} MB (set MTL_LAB_MAX_CSV_MB)"


def _too_big(size: str, max_bytes: int) -> CsvError:
    return CsvError(_TOO_BIG.format(size=size, limit=_megabytes(max_bytes)))


def _not_utf8(byte: int, position: int) -> CsvError:
    return CsvError("the file is not CSV text (binary data / not UTF-8): byte "
                    f"0x{byte:02x} at position {position} is not valid UTF-8; save the file as UTF-8 CSV")


class _CheckedReader(io.RawIOBase):
    """A binary stream read through: counts bytes (refusing more than ``max_bytes``), refuses NUL
    bytes and invalid UTF-8 as they come, so a bad or oversized file is refused without being read to
    its end."""

    def __init__(self, raw: BinaryIO, max_bytes: int) -> None:
        super().__init__()
        self._raw = raw
        self._max_bytes = max_bytes
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        block = self._raw.read(min(len(buffer), _BLOCK_BYTES))
        if isinstance(block, str):
            block = block.encode("utf-8")
        if not block:
            try:
                self._decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                raise CsvError("the file is not CSV text (binary data / not UTF-8): it ends inside a "
                               "UTF-8 character; save the file as UTF-8 CSV") from None
            return 0
        start = self.bytes_read
        self.bytes_read += len(block)
        if self.bytes_read > self._max_bytes:
            raise _too_big(f"more than {_size(self._max_bytes)}", self._max_bytes)
        if b"\x00" in block:
            raise CsvError("the file is not CSV text (binary data / not UTF-8): it contains NUL bytes")
        try:
            self._decoder.decode(block)
        except UnicodeDecodeError as exc:
            position = max(start + exc.start, 0)
            raise _not_utf8(block[exc.start] if 0 <= exc.start < len(block) else exc.object[exc.start],
                            position) from None
        buffer[: len(block)] = block
        return len(block)


def _text_stream(handle: BinaryIO, max_bytes: int) -> tuple[io.TextIOWrapper, _CheckedReader]:
    """``handle`` from its start, as checked UTF-8 text (a BOM dropped; line ends kept for the parser)."""
    handle.seek(0)
    checked = _CheckedReader(handle, max_bytes)
    text = io.TextIOWrapper(io.BufferedReader(checked, _BLOCK_BYTES), encoding="utf-8-sig", newline="")
    return text, checked


def _open_source(source: Source, max_bytes: int) -> tuple[BinaryIO, str | None, int | None, bool]:
    """A seekable binary stream of the file, its file name when known, its size when known without
    reading it, and whether the caller must close the stream. Sizes known in advance are checked here;
    the others while the file is read."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) > max_bytes:
            raise _too_big(_size(len(source)), max_bytes)
        return io.BytesIO(source), None, len(source), True  # bytes: shared with the stream, not copied
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        try:
            if path.is_dir():
                raise CsvError(f"`{path}` is a folder, not a CSV file")
            size = path.stat().st_size
            if size > max_bytes:
                raise _too_big(_size(size), max_bytes)
            return open(path, "rb"), path.name, size, True  # noqa: SIM115 (closed by _load)
        except FileNotFoundError:
            raise CsvError(f"no such file: `{path}`") from None
        except OSError as exc:
            raise CsvError(f"`{path}` cannot be read: {exc.strerror or exc}") from None
    if hasattr(source, "read"):
        size = getattr(source, "size", None)
        if isinstance(size, int) and size > max_bytes:
            raise _too_big(_size(size), max_bytes)
        name = getattr(source, "name", None)
        filename = Path(name).name if isinstance(name, str) and name else None
        try:
            if getattr(source, "seekable", lambda: False)():
                source.seek(0)  # an upload read before (e.g. by inspect_csv) is read again from its start
                return source, filename, size if isinstance(size, int) else None, False
            data = source.read(max_bytes + 1)  # a pipe: kept, as it cannot be read twice
        except (OSError, ValueError) as exc:
            raise CsvError(f"the uploaded file cannot be read: {exc}") from None
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not isinstance(data, (bytes, bytearray)):
            raise CsvError(f"the uploaded file must give bytes, got {type(data).__name__}")
        if len(data) > max_bytes:
            raise _too_big(f"more than {_size(max_bytes)}", max_bytes)
        return io.BytesIO(data), filename, len(data), True
    raise CsvError(f"`source` must be a file path, bytes or a binary file object, got {type(source).__name__}")


_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook?); save it as CSV first"),
    (b"\xd0\xcf\x11\xe0", "an old Excel/Office document; save it as CSV first"),
    (b"\x1f\x8b", "gzip-compressed; decompress it first"),
    (b"BZh", "bzip2-compressed; decompress it first"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\x93NUMPY", "a numpy array file"),
)


def _check_prefix(prefix: bytes, complete: bool) -> str:
    """The start of the file as text, or :class:`CsvError` when it is empty, binary or not UTF-8.
    ``complete``: the prefix is the whole file."""
    if complete and not prefix.strip():
        raise CsvError("the file is empty")
    for magic, what in _SIGNATURES:
        if prefix.startswith(magic):
            raise CsvError(f"the file is not CSV text: it is {what}")
    if prefix[:1] == b"\x80" and prefix[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise CsvError("the file is not CSV text: it looks like a Python pickle (MTL Lab never loads pickles)")
    if prefix.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CsvError("the file is not CSV text (binary data / not UTF-8): it is UTF-16 text; save it as UTF-8 CSV")
    if b"\x00" in prefix:
        raise CsvError("the file is not CSV text (binary data / not UTF-8): it contains NUL bytes")
    try:
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(prefix, final=complete)
    except UnicodeDecodeError as exc:
        raise _not_utf8(prefix[exc.start], exc.start) from None
    sample = text[:100_000]
    controls = sum(1 for char in sample if ord(char) < 32 and char not in "\t\n\r\x0b\x0c")
    if controls > max(2, len(sample) // 100):
        raise CsvError("the file is not CSV text (binary data / not UTF-8): it is full of control characters")
    if complete and not text.strip():
        raise CsvError("the file is empty")
    return text


def _guess_delimiter(text: str) -> str:
    """The most frequent of , ; tab | on the first line (comma when none)."""
    first = text.lstrip("\r\n").split("\n", 1)[0]
    counts = {d: first.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: (counts[d], d == ","))
    return best if counts[best] > 0 else ","


# --- parsing -------------------------------------------------------------------------------------


@dataclass
class _Column:
    """One column of the file, compactly: each cell's number (NaN where missing or not a finite
    number) and, for a column with texts, the code of each cell's stripped text in ``texts`` (-1
    missing; -2 a text not kept, past :data:`_MAX_TEXTS` distinct ones). Codes follow first
    appearance, so ``texts[:5]`` are the first five distinct values. A column of numbers only (or of
    missing cells only) keeps no codes: a cell is missing exactly where its number is NaN."""

    name: str
    position: int  # 1-based
    named: bool
    codes: np.ndarray | None  # int16; None when no present cell is a text
    numbers: np.ndarray  # float64
    texts: list[str]
    first_text: tuple[int, str] | None  # (1-based data row, text) of the first present non-number
    head: list[str]

    @property
    def missing(self) -> np.ndarray:
        if self.codes is None:
            return np.isnan(self.numbers)
        return self.codes == _MISSING_CODE

    @property
    def n_missing(self) -> int:
        return int(self.missing.sum())

    @property
    def present(self) -> np.ndarray:
        return ~self.missing

    @property
    def texts_overflow(self) -> bool:
        """More than :data:`_MAX_TEXTS` distinct texts: only the first were kept."""
        return (self.codes is not None and len(self.texts) >= _MAX_TEXTS
                and bool((self.codes == _UNKEPT_CODE).any()))

    def first_non_numeric(self) -> tuple[int, str] | None:
        """(1-based data row, text) of the first present cell that is not a finite number."""
        return self.first_text

    @property
    def numeric(self) -> bool:
        return self.first_text is None and bool(self.present.any())

    def distinct_texts(self, rows: np.ndarray) -> tuple[list[str], np.ndarray]:
        """The sorted distinct texts of the present cells among ``rows`` and each row's index into
        them (-1 missing). :class:`CsvError` is left to the caller when the texts overflowed."""
        codes = self.codes[rows] if self.codes is not None else np.full(rows.size, _MISSING_CODE, dtype=np.int16)
        used = np.unique(codes[codes >= 0])
        ordered = sorted(used.tolist(), key=lambda code: self.texts[code])
        lookup = np.full(len(self.texts) + 1, -1, dtype=np.int64)  # the last slot: missing
        lookup[ordered] = np.arange(len(ordered))
        indices = lookup[np.where(codes >= 0, codes, len(self.texts))]
        return [self.texts[code] for code in ordered], indices

    def release(self) -> None:
        """Drop the per-cell arrays once the import has encoded the column (they are most of its memory)."""
        self.numbers = np.zeros(0, dtype=np.float64)
        self.codes = None


class _ColumnBuilder:
    """Folds the chunks of one column into a :class:`_Column`, written into arrays with room for
    ``capacity`` rows (copied into bigger ones if more come).

    Each chunk's cells are factorised as they came (a C hash of the raw strings); numbers, stripped
    texts and missing tokens are then worked out once per distinct value, not once per cell.

    Text codes are kept from the start when ``with_codes`` or when the first chunk has a text in the
    column; a column of numbers only never needs them. When a column's first text comes in a later
    chunk, the codes of its earlier cells are lost: ``late_text`` is set and :func:`_parse` reads the
    column again with ``with_codes`` (rare: a column of numbers with a stray text after the first
    chunk)."""

    def __init__(self, name: str, position: int, named: bool, capacity: int, with_codes: bool = False) -> None:
        self.name, self.position, self.named = name, position, named
        self.codes: np.ndarray | None = _lazy_zeros(capacity, np.int16) if with_codes else None
        self.numbers = _lazy_zeros(capacity, np.float64)
        self.late_text = False
        self.texts: list[str] = []
        self._index: Any = None  # a pandas Index over self.texts, rebuilt when it grows
        self.first_text: tuple[int, str] | None = None
        self.head: list[str] = []
        self.rows = 0

    def add(self, raw: np.ndarray) -> None:
        """Fold in one chunk: ``raw`` is an object array of the cells' texts."""
        import pandas as pd

        cell_codes, uniques = pd.factorize(raw, use_na_sentinel=False)  # uniques in order of first appearance
        numbers = np.array(pd.to_numeric(pd.Series(uniques, dtype=object), errors="coerce").to_numpy(
            dtype="float64", na_value=np.nan), dtype=np.float64)  # writable
        numbers[~np.isfinite(numbers)] = np.nan
        stripped = ["" if value is None else str(value).strip() for value in uniques]
        missing = np.isnan(numbers)
        not_number = np.flatnonzero(missing)
        missing[not_number] = [stripped[u].lower() in NA_TOKENS for u in not_number]
        texts_at = not_number[~missing[not_number]]
        if self.first_text is None and texts_at.size:
            first = int(texts_at[0])  # the first distinct text is the first in the chunk
            self.first_text = (self.rows + int(np.argmax(cell_codes == first)) + 1, stripped[first])
        if len(self.head) < 20:
            self.head.extend(stripped[code] for code in cell_codes[: 20 - len(self.head)])
        end = self.rows + len(raw)
        if end > self.numbers.size:
            self._grow(max(end, self.numbers.size + self.numbers.size // 4, 4096))
        distinct_codes = self._codes(stripped, missing)  # also keeps the column's first distinct texts
        if self.codes is None and texts_at.size:
            if self.rows == 0:
                self.codes = _lazy_zeros(self.numbers.size, np.int16)
            else:
                self.late_text = True
        if self.codes is not None:
            self.codes[self.rows: end] = distinct_codes[cell_codes]
        self.numbers[self.rows: end] = numbers[cell_codes]
        self.rows = end

    def _grow(self, capacity: int) -> None:
        # only when the file has more rows than estimated: a copy, one array at a time
        for name in ("codes", "numbers"):
            old = getattr(self, name)
            if old is None:
                continue
            new = _lazy_zeros(capacity, old.dtype)
            new[: self.rows] = old[: self.rows]
            setattr(self, name, new)
            del old

    def _codes(self, stripped: list[str], missing: np.ndarray) -> np.ndarray:
        """The code of each distinct raw value of a chunk (``stripped``: their stripped texts)."""
        import pandas as pd

        codes = np.full(len(stripped), _MISSING_CODE, dtype=np.int16)
        present = np.flatnonzero(~missing)
        if not present.size:
            return codes
        text_codes, chunk_texts = pd.factorize(np.array([stripped[u] for u in present], dtype=object))
        # an object Index: a plain array would be inferred as pandas' string dtype, backed by pyarrow when it is
        # installed, whose memory pool keeps ~10 MB once used
        known = (self._index.get_indexer(pd.Index(chunk_texts, dtype=object)) if self._index is not None
                 else np.full(len(chunk_texts), -1, dtype=np.int64))
        mapped = np.where(known >= 0, known, _UNKEPT_CODE).astype(np.int64)
        new = np.flatnonzero(known < 0)
        room = _MAX_TEXTS - len(self.texts)
        if new.size and room > 0:
            taken = new[:room]
            mapped[taken] = np.arange(len(self.texts), len(self.texts) + taken.size)
            self.texts.extend(str(text) for text in chunk_texts[taken])
            self._index = pd.Index(self.texts, dtype=object)
        codes[present] = mapped[text_codes].astype(np.int16)
        return codes

    def build(self) -> _Column:
        """The column, its arrays cut to the rows read (views: the room never written takes no memory)."""
        if self.late_text:
            raise RuntimeError(f"column `{self.name}` must be read again with its text codes")
        codes = None if self.first_text is None or self.codes is None else self.codes[: self.rows]
        column = _Column(self.name, self.position, self.named, codes, self.numbers[: self.rows], self.texts,
                         self.first_text, self.head)  # numbers only (codes None): missing ⇔ NaN
        self.codes, self.numbers = None, np.zeros(0)
        return column


@dataclass
class _Table:
    columns: list[_Column]
    n_rows: int
    delimiter: str
    filename: str | None
    size_bytes: int

    def column(self, name: str) -> _Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


def _parser_message(exc: Exception, n_header: int) -> str:
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if fields:
        return (f"the rows do not match the header: line {fields.group(2)} has {fields.group(3)} fields; "
                f"the header has {n_header}")
    quote = re.search(r"EOF inside string starting (?:at|with) (?:row|line) (\d+)", text)
    if quote:
        return f"a quoted field is never closed: the quote opened on row {int(quote.group(1)) + 1} has no closing \""
    return f"the file could not be parsed as CSV: {text}"


def _read_header(handle: BinaryIO, max_bytes: int, delimiter: str) -> list[str]:
    """The first non-blank record, read with the csv module (before pandas could rename anything);
    only the lines it spans are read."""
    text, _ = _text_stream(handle, max_bytes)
    reader = csv.reader(text, delimiter=delimiter, strict=False)
    try:
        for record in reader:
            if record:
                return record
    except csv.Error as exc:
        raise CsvError(f"the header line could not be read as CSV: {exc}") from None
    except UnicodeDecodeError as exc:  # the checked reader raises first; this is a safety net
        raise CsvError(f"the file is not CSV text (binary data / not UTF-8): {exc.reason}") from None
    finally:
        text.detach()
    raise CsvError("the file is empty")


def _header_names(raw: Sequence[str], limits: CsvLimits) -> tuple[list[str], list[bool]]:
    """Unique column names, with runs of white space (line breaks and tabs included) made one space
    and the ends stripped; unnamed columns become ``column_<k>``."""
    if len(raw) > limits.max_columns:
        raise CsvError(f"the file has {len(raw)} columns; the limit is {limits.max_columns} "
                       "(set MTL_LAB_MAX_CSV_COLUMNS)")
    names = [_clean_name(name) for name in raw]
    for position, name in enumerate(names, start=1):
        if len(name) > _MAX_NAME_CHARS:
            raise CsvError(f"column names must be at most {_MAX_NAME_CHARS} characters; column {position}'s "
                           f"name has {len(name)} (is the first line a header?)")
    counts = Counter(name for name in names if name)
    for name, count in counts.items():
        if count > 1:
            times = "twice" if count == 2 else f"{count} times"
            raise CsvError(f"column names must be unique; `{name}` appears {times}", column=name)
    named = [bool(name) for name in names]
    taken = set(names)
    for index, name in enumerate(names):
        if not name:
            candidate = f"column_{index + 1}"
            while candidate in taken:
                candidate += "_"
            names[index] = candidate
            taken.add(candidate)
    return names, named


def _parse(handle: BinaryIO, filename: str | None, size: int | None, limits: CsvLimits,
           delimiter: str | None) -> _Table:
    """Parse the seekable binary ``handle`` in chunks, checking every limit as the rows come."""
    handle.seek(0)
    prefix = handle.read(_PREFIX_BYTES + 1)
    if isinstance(prefix, str):
        prefix = prefix.encode("utf-8")
    complete = len(prefix) <= _PREFIX_BYTES
    text = _check_prefix(prefix[:_PREFIX_BYTES], complete)
    if delimiter is None:
        delimiter = _guess_delimiter(text)
    elif len(delimiter) != 1 or delimiter in "\"\r\n":
        raise CsvError(f"`delimiter` must be one character (not a quote or a line break), got {delimiter!r}")
    names, named = _header_names(_read_header(handle, limits.max_bytes, delimiter), limits)
    size = size if size is not None else handle.seek(0, io.SEEK_END)
    capacity = _expected_rows(prefix[:_PREFIX_BYTES], complete, size, limits.max_rows)
    builders = [_ColumnBuilder(name, index + 1, named[index], capacity) for index, name in enumerate(names)]
    chunk_cells = min(max(size // 200, _CHUNK_CELLS[0]), _CHUNK_CELLS[1])
    n_rows = _read_rows(handle, limits, delimiter, builders, chunk_cells)
    if n_rows <= 0:
        raise CsvError("the file has a header but no data rows")
    late = [index for index, builder in enumerate(builders) if builder.late_text]
    if late:  # read those columns again, keeping their text codes from the first row
        for index in late:
            builders[index] = _ColumnBuilder(names[index], index + 1, named[index], capacity, with_codes=True)
        _read_rows(handle, limits, delimiter, [builders[index] for index in late], chunk_cells, positions=late)
    return _Table([b.build() for b in builders], n_rows, delimiter, filename, size)


def _expected_rows(prefix: bytes, complete: bool, size: int, max_rows: int) -> int:
    """Room for the data rows, from the line length of the file's start with a quarter to spare
    (at most ``max_rows + 1``, the most a chunk reads before the row limit refuses the file)."""
    lines = prefix.count(b"\n")
    if complete or not lines:
        return max(lines + 2, 16)
    return min(max_rows + 1, int(size / (len(prefix) / lines) * 1.25) + 1024)


def _lazy_zeros(count: int, dtype: Any) -> np.ndarray:
    """A zero-filled array whose pages take memory only once written (an anonymous memory map), so
    a column's room for rows yet to come costs nothing until they come, and growing never zero-fills."""
    itemsize = np.dtype(dtype).itemsize
    return np.frombuffer(mmap.mmap(-1, max(count, 1) * itemsize), dtype=dtype, count=count)


def _read_rows(handle: BinaryIO, limits: CsvLimits, delimiter: str, builders: list[_ColumnBuilder],
               chunk_cells: int, positions: list[int] | None = None) -> int:
    """Feed the data rows to ``builders`` chunk by chunk; the number of data rows. The header is the
    first row of the first chunk; a chunk holds at most ``max_rows + 1`` data rows, so a file over the
    row limit is refused after reading at most that many. ``positions`` (0-based, ascending): read only
    those columns, one builder each, of a file read once already."""
    import pandas as pd

    width = len(builders)
    chunk_rows = max(1_000, chunk_cells // width)
    chunk_rows = min(chunk_rows, limits.max_rows + 2)
    text, _ = _text_stream(handle, limits.max_bytes)
    n_rows = 0
    try:
        chunks = pd.read_csv(
            text, sep=delimiter, header=None, dtype=object, na_filter=False, keep_default_na=False,
            engine="c", skip_blank_lines=True, quotechar='"', doublequote=True, on_bad_lines="error",
            chunksize=chunk_rows, usecols=positions,
        )
        with chunks:
            first = True
            for frame in chunks:
                if frame.shape[1] != width:
                    raise CsvError(f"the rows do not match the header: the header has {width} fields, "
                                   f"the rows have up to {frame.shape[1]}")
                if first:
                    frame, first = frame.iloc[1:], False
                n_rows += len(frame)
                if n_rows > limits.max_rows:
                    raise CsvError(f"the file has more than {limits.max_rows} rows; the limit is {limits.max_rows} "
                                   "(set MTL_LAB_MAX_CSV_ROWS)")
                for index, builder in enumerate(builders):
                    builder.add(frame.iloc[:, index].to_numpy(dtype=object))
                del frame
    except CsvError:
        raise
    except pd.errors.EmptyDataError:
        raise CsvError("the file is empty") from None
    except UnicodeDecodeError as exc:  # the checked reader raises first; this is a safety net
        raise CsvError(f"the file is not CSV text (binary data / not UTF-8): {exc.reason}") from None
    except (pd.errors.ParserError, ValueError, OverflowError, csv.Error, UnicodeError, IndexError) as exc:
        raise CsvError(_parser_message(exc, width)) from None
    finally:
        text.detach()
    return n_rows


def _load(source: Source, limits: CsvLimits, delimiter: str | None) -> _Table:
    handle, filename, size, owned = _open_source(source, limits.max_bytes)
    try:
        return _parse(handle, filename, size, limits, delimiter)
    except OSError as exc:
        raise CsvError(f"the file cannot be read: {exc.strerror or exc}") from None
    finally:
        if owned:
            handle.close()


# --- inspection ----------------------------------------------------------------------------------


def _is_integer_valued(values: np.ndarray) -> bool:
    return bool(np.all(values == np.round(values)))


def _suggest_kind(column: _Column) -> Kind | None:
    """The task a column could be, or None (no values, or a single value)."""
    present = column.present
    if not present.any():
        return None
    if column.numeric:
        values = column.numbers[present]
        distinct = np.unique(values)
        if distinct.size < 2:
            return None
        if distinct.size <= _CLASSIFICATION_MAX_DISTINCT and _is_integer_valued(distinct):
            return "classification"
        return "regression"
    if len(column.texts) < 2:
        return None
    numbers = column.numbers[present]
    numeric = numbers[~np.isnan(numbers)]
    if numeric.size >= 0.8 * numbers.size and np.unique(numeric).size > _CLASSIFICATION_MAX_DISTINCT:
        return "regression"  # numbers with a few stray texts: a regression target with typos, most likely
    return "classification"


@dataclass(frozen=True)
class ColumnInfo:
    """One column as :func:`inspect_csv` sees it. ``dtype`` is ``number``, ``text`` or ``empty``;
    ``suggested_kind`` is the task it would make as a target (None: it cannot be one)."""

    name: str
    position: int
    dtype: str
    n_missing: int
    n_distinct: int
    suggested_kind: str | None
    examples: tuple[str, ...]
    named: bool = True
    class_warning: str | None = None
    """What :func:`rare_class_warning` says about this column as a classification target (None: nothing
    to say, or it cannot be one)."""


@dataclass(frozen=True)
class CsvPreview:
    """What :func:`inspect_csv` found: the columns, the first rows and the file's facts."""

    columns: tuple[ColumnInfo, ...]
    n_rows: int
    delimiter: str
    size_bytes: int
    filename: str | None
    head: tuple[tuple[str, ...], ...]
    warnings: tuple[str, ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def dtypes(self) -> dict[str, str]:
        return {c.name: c.dtype for c in self.columns}

    @property
    def missing(self) -> dict[str, int]:
        return {c.name: c.n_missing for c in self.columns}

    @property
    def suggested_kinds(self) -> dict[str, str | None]:
        return {c.name: c.suggested_kind for c in self.columns}

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["columns"] = [asdict(c) for c in self.columns]
        out["head"] = [list(row) for row in self.head]
        out["warnings"] = list(self.warnings)
        for column in out["columns"]:
            column["examples"] = list(column["examples"])
        return out


def _column_info(column: _Column, max_classes: int = 100) -> ColumnInfo:
    present = column.present
    class_counts: dict[str, int] | None = None  # rows per class, when the column could be a classification target
    if not present.any():
        dtype = "empty"
        distinct = 0
    elif column.numeric:
        dtype = "number"
        values, counts = np.unique(column.numbers[present], return_counts=True)
        distinct = int(values.size)
        if 2 <= distinct <= max_classes:
            class_counts = {_number_name(v): int(c) for v, c in zip(values, counts)}
    else:
        dtype = "text"
        distinct = len(column.texts)
        if column.codes is not None and not column.texts_overflow and 2 <= distinct <= max_classes:
            counts = np.bincount(column.codes[column.codes >= 0].astype(np.int64), minlength=distinct)
            class_counts = {text: int(c) for text, c in zip(column.texts, counts) if c}
    examples = [text[:60] for text in column.texts[:5]]
    class_warning = rare_class_warning(column.name, class_counts, column.numeric) if class_counts else None
    return ColumnInfo(column.name, column.position, dtype, column.n_missing, distinct, _suggest_kind(column),
                      tuple(examples), column.named, class_warning)


def rare_class_warning(target: str, counts: Mapping[str, int], numeric: bool) -> str | None:
    """A sentence about the classes of classification target ``target`` (``counts``: rows per class,
    in class order) that have fewer than :data:`MIN_CLASS_ROWS` rows, naming them with their counts and
    what to do (a column of numbers: choose regression; text: merge the rare classes); None when there
    are none."""
    rare = sorted(((name, count) for name, count in counts.items() if count < MIN_CLASS_ROWS),
                  key=lambda item: item[1])  # stable: classes of one count stay in class order
    if not rare:
        return None
    shown = ", ".join(f"{name} ({count} row{'' if count == 1 else 's'})" for name, count in rare[:_RARE_SHOWN])
    more = f" and {len(rare) - _RARE_SHOWN} more" if len(rare) > _RARE_SHOWN else ""
    which = ("all with" if len(rare) == len(counts)
             else f"{len(rare)} of them with")
    advice = ("Its values are numbers: choose regression for it, or merge rare values into their neighbours "
              "in the file." if numeric else "Merge the rare classes in the file, or leave the column out.")
    return (f"As a classification target, `{target}` has {len(counts)} classes on {sum(counts.values())} rows, "
            f"{which} fewer than {MIN_CLASS_ROWS} rows: {shown}{more}. With a 60/20/20 split a class that rare "
            f"may be missing from the validation or test rows. {advice}")


def inspect_csv(
    source: Source,
    max_bytes: int | None = None,
    *,
    limits: CsvLimits | None = None,
    delimiter: str | None = None,
    head_rows: int = 5,
) -> CsvPreview:
    """Read a CSV file (a path, its bytes, or a binary file object such as an upload) and describe
    its columns: type guess, missing counts, distinct values, the task kind each would make.

    Raises :class:`CsvError` for a file that cannot be a dataset (too big, empty, not CSV text,
    duplicate column names, ragged rows, too many rows or columns).
    """
    limits = limits or CsvLimits.from_env()
    if max_bytes is not None:
        limits = _replace_limits(limits, max_bytes=max_bytes)
    table = _load(source, limits, delimiter)
    head = tuple(tuple(c.head[i] for c in table.columns) for i in range(min(head_rows, table.n_rows, 20)))
    warnings = tuple(
        f"column {c.position} has no name; it is called `{c.name}` here" for c in table.columns if not c.named
    ) + tuple(f"column `{c.name}` has more than {_MAX_TEXTS} distinct values; only the first {_MAX_TEXTS} "
              "were counted" for c in table.columns if not c.numeric and c.texts_overflow)
    return CsvPreview(
        columns=tuple(_column_info(c, limits.max_classes) for c in table.columns),
        n_rows=table.n_rows,
        delimiter=table.delimiter,
        size_bytes=table.size_bytes,
        filename=table.filename,
        head=head,
        warnings=warnings,
    )


def _replace_limits(limits: CsvLimits, **changes: Any) -> CsvLimits:
    values = asdict(limits)
    values.update(changes)
    for key, value in changes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise CsvError(f"`{key}` must be a positive integer, got {value!r}")
    return CsvLimits(**values)


# --- import --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetReport:
    """One target column → one task."""

    name: str
    kind: str
    n_outputs: int
    detected_kind: str | None
    classes: tuple[str, ...] | None = None
    n_unlabelled: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["classes"] = list(self.classes) if self.classes is not None else None
        return out


@dataclass(frozen=True)
class ImportReport:
    """What :func:`import_csv` did: rows read and used, missing cells per column and what happened
    to them, the encoded inputs, the tasks, and where the suite was saved."""

    name: str
    directory: str
    source_file: str | None
    description: str
    n_rows_read: int
    n_rows_used: int
    n_rows_dropped: int
    missing: str
    missing_counts: dict[str, int]
    imputed: dict[str, int]
    features: tuple[str, ...]
    inputs: tuple[str, ...]
    targets: tuple[TargetReport, ...]
    stratify: str | None
    warnings: tuple[str, ...] = ()

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.targets]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "directory": self.directory,
            "source_file": self.source_file,
            "description": self.description,
            "n_rows_read": self.n_rows_read,
            "n_rows_used": self.n_rows_used,
            "n_rows_dropped": self.n_rows_dropped,
            "missing": self.missing,
            "missing_counts": dict(self.missing_counts),
            "imputed": dict(self.imputed),
            "features": list(self.features),
            "inputs": list(self.inputs),
            "targets": [t.to_dict() for t in self.targets],
            "stratify": self.stratify,
            "warnings": list(self.warnings),
        }

    def lines(self) -> list[str]:
        """A human-readable summary, one fact per line."""
        out = [
            f"suite `{self.name}` saved in {self.directory}",
            f"rows: {self.n_rows_read} read, {self.n_rows_used} used, {self.n_rows_dropped} dropped",
            f"features: {len(self.features)} columns → {len(self.inputs)} inputs",
        ]
        counted = {k: v for k, v in self.missing_counts.items() if v}
        if counted:
            missing = ", ".join(f"{k}: {v}" for k, v in counted.items())
            out.append(f"missing values ({self.missing}): {missing}")
        if any(self.imputed.values()):
            out.append("imputed: " + ", ".join(f"{k}: {v}" for k, v in self.imputed.items() if v))
        for target in self.targets:
            detail = f"{target.n_outputs} classes" if target.kind == "classification" else "standardised"
            unlabelled = f", {target.n_unlabelled} rows unlabelled" if target.n_unlabelled else ""
            out.append(f"task {target.name}: {target.kind} ({detail}{unlabelled})")
        out.extend(f"warning: {w}" for w in self.warnings)
        return out


def _number_name(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def _encode_classification(column: _Column, rows: np.ndarray, limits: CsvLimits, dropped_note: str
                           ) -> tuple[np.ndarray, list[str]]:
    """Class indices (-1 where missing) for ``rows``, and the class names in index order."""
    present = column.present[rows]
    if column.numeric:
        values = column.numbers[rows]
        distinct = np.unique(values[present])
        classes = [_number_name(v) for v in distinct]
        labels = np.full(rows.size, -1, dtype=np.int64)
        labels[present] = np.searchsorted(distinct, values[present])
    else:
        if column.texts_overflow:
            raise CsvError(f"classification target `{column.name}` has more than {_MAX_TEXTS} classes; at most "
                           f"{limits.max_classes} are allowed (is it a regression target? choose regression for it)",
                           column=column.name)
        classes, labels = column.distinct_texts(rows)
    if len(classes) < 2:
        if not classes:
            raise CsvError(f"target `{column.name}` has no values{dropped_note}", column=column.name)
        raise CsvError(f"target `{column.name}` has one class ({classes[0]!r}){dropped_note}; a classification "
                       "target needs at least 2", column=column.name)
    if len(classes) > limits.max_classes:
        raise CsvError(f"classification target `{column.name}` has {len(classes)} classes; at most "
                       f"{limits.max_classes} are allowed (is it a regression target? choose regression for it)",
                       column=column.name)
    return labels, classes


def _encode_regression(column: _Column, rows: np.ndarray, dropped_note: str) -> np.ndarray:
    bad = column.first_non_numeric()
    if bad is not None:
        row, text = bad
        raise CsvError(f"regression target `{column.name}` must be numeric; row {row} has {text!r}",
                       column=column.name)
    values = column.numbers[rows]
    present = values[~np.isnan(values)]
    if present.size == 0:
        raise CsvError(f"target `{column.name}` has no values{dropped_note}", column=column.name)
    if np.unique(present).size < 2:
        raise CsvError(f"regression target `{column.name}` has the same value ({_number_name(present[0])}) in "
                       f"every row{dropped_note}; it cannot be learned", column=column.name)
    return values


def _encode_feature(column: _Column, rows: np.ndarray, limits: CsvLimits, impute: bool
                    ) -> tuple[list[str], np.ndarray | None, list[str]]:
    """The names of the input columns a feature encodes to, each row's category index for a text
    feature (None for a numeric one, whose numbers are copied as they are: NaN = missing, imputed
    at build time), and warnings."""
    present = column.present[rows]
    warnings: list[str] = []
    if column.numeric:
        if np.unique(column.numbers[rows][present]).size < 2:
            warnings.append(f"feature `{column.name}` has a single value; it carries no information")
        return [column.name], None, warnings
    categories, indices = column.distinct_texts(rows)
    if len(categories) > limits.max_categories or column.texts_overflow:
        hint = ""
        share = float(np.mean(~np.isnan(column.numbers[column.present]))) if column.present.any() else 0.0
        bad = column.first_non_numeric()
        if share >= 0.5 and bad is not None:
            hint = f"; most values are numbers but row {bad[0]} has {bad[1]!r}"
        counted = f"more than {_MAX_TEXTS}" if column.texts_overflow else str(len(categories))
        raise CsvError(f"categorical feature `{column.name}` has {counted} distinct values; at most "
                       f"{limits.max_categories} are allowed (leave it out of the features{hint})", column=column.name)
    if len(categories) < 2:
        warnings.append(f"feature `{column.name}` has a single value; it carries no information")
    names = [f"{column.name}={c}" for c in categories]
    if impute and (~present).any():
        names.append(f"{column.name}={_MISSING_CATEGORY}")
    return names, np.where(indices >= 0, indices, len(categories)).astype(np.int32), warnings


def _split_names(value: str | Sequence[str] | None, what: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [_clean_name(part) for part in value.split(",") if part.strip()]
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise CsvError(f"`{what}` must be a list of column names, got {value!r}")
    return [_clean_name(v) for v in value]


def _clean_name(name: str) -> str:
    """A column name as the header reader keeps it: white-space runs made one space, ends stripped."""
    return " ".join(name.split())


def _check_selection(table: _Table, targets: list[str], features: list[str] | None,
                     kinds: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """The target and feature columns, checked; and warnings."""
    known = table.names
    shown = ", ".join(known[:20]) + (", …" if len(known) > 20 else "")
    if len(targets) < 2:
        raise CsvError(f"`targets` must name at least 2 columns (each target is a task), got {targets!r}")
    for what, names in (("target", targets), ("feature", features or [])):
        for name in names:
            if name not in known:
                raise CsvError(f"{what} `{name}` is not a column of the file (columns: {shown})", column=name)
        repeated = [n for n, c in Counter(names).items() if c > 1]
        if repeated:
            raise CsvError(f"{what} `{repeated[0]}` is listed twice", column=repeated[0])
    for name in targets:
        if "," in name:
            raise CsvError(f"target `{name}` cannot be a task name: it contains a comma; rename the column",
                           column=name)
    for name, kind in kinds.items():
        if name not in targets:
            raise CsvError(f"`kinds` names `{name}`, which is not a target (targets: {', '.join(targets)})",
                           column=name)
        if kind not in _KINDS:
            raise CsvError(f"the kind of target `{name}` must be classification or regression, got {kind!r}",
                           column=name)
    warnings = []
    if features is None:
        features = [c.name for c in table.columns if c.name not in targets and c.named]
        warnings = [f"column {c.position} has no name; it was left out of the features (call it `{c.name}` "
                    "in the features to use it)" for c in table.columns if not c.named and c.name not in targets]
    else:
        both = [name for name in features if name in targets]
        if both:
            raise CsvError(f"column `{both[0]}` cannot be both a feature and a target", column=both[0])
    if not features:
        raise CsvError("no feature columns: every column is a target (a suite needs at least one input column)")
    return features, warnings


def import_csv(
    source: Source,
    name: str,
    targets: str | Sequence[str],
    features: str | Sequence[str] | None = None,
    kinds: Mapping[str, str] | None = None,
    missing: str = "drop",
    limits: CsvLimits | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    replace: bool = False,
    delimiter: str | None = None,
    filename: str | None = None,
    owner: str | None = None,
) -> ImportReport:
    """Turn a CSV file into the task suite ``name`` saved under ``$MTL_LAB_HOME/suites/<name>/``.

    ``targets`` (a list, or comma-separated text) are the columns to predict, one task each, at least
    two; ``features`` the input columns (default: every other named column). A target's kind
    (classification or regression) is detected from its values — text, or at most 10 distinct
    integers, is classification — and ``kinds`` overrides it. Text features are one-hot encoded;
    classification targets become class indices with the class names kept.

    ``missing="drop"`` drops every row with a missing value in a used column; ``"impute"`` keeps
    them: a missing number is replaced at build time by the training-split mean, a missing category
    gets its own ``(missing)`` category, and a missing target leaves that row unlabelled for that task
    (rows with no target at all are dropped). The report counts every case.

    ``owner`` (a participant's owner id, :mod:`mtl_core.workshop.access`) is recorded in ``spec.json``;
    on a workshop server only they or the presenter may remove the suite.

    ``replace`` overwrites an existing user suite of that name. The suite is registered at once
    (usable in this process). Raises :class:`CsvError` for anything that prevents a suite.
    """
    limits = limits or CsvLimits.from_env()
    name, target_names, feature_names, kinds = _import_choices(name, targets, features, kinds, missing)
    destination = _destination(name, home, replace)

    table = _load(source, limits, delimiter)
    source_file = filename or table.filename
    feature_names, warnings = _check_selection(table, target_names, feature_names, kinds)
    used = [table.column(n) for n in feature_names + target_names]
    _check_not_empty(table, used, target_names)
    missing_counts = {c.name: c.n_missing for c in used}
    for column in (c for c in table.columns if c.name not in missing_counts):
        column.release()  # a column left out: its memory back before the encoding needs some
    impute = missing == "impute"
    rows = _kept_rows(table, used, target_names, impute, limits)
    n_dropped = table.n_rows - rows.size
    dropped_note = f" (after dropping {n_dropped} rows with missing values)" if n_dropped else ""

    arrays, target_reports = _encode_targets(table, target_names, kinds, rows, limits, dropped_note, warnings)
    arrays["x"], inputs, imputed = _encode_features(table, feature_names, rows, limits, impute, warnings)

    stratify = next((t.name for t in target_reports if t.kind == "classification"), None)
    report = ImportReport(
        name=name,
        directory=str(destination),
        source_file=source_file,
        description=_describe(source_file, rows.size, n_dropped, feature_names, inputs, target_reports, stratify,
                              missing),
        n_rows_read=table.n_rows,
        n_rows_used=int(rows.size),
        n_rows_dropped=int(n_dropped),
        missing=missing,
        missing_counts=missing_counts,
        imputed=imputed,
        features=tuple(feature_names),
        inputs=tuple(inputs),
        targets=tuple(target_reports),
        stratify=stratify,
        warnings=tuple(warnings),
    )
    _save(destination, {**_spec(report), **({"owner": owner} if owner else {})}, arrays, replace)
    from mtl_core.suites.user_csv import refresh_user_suites

    refresh_user_suites(home)
    return report


def _import_choices(name: str, targets: str | Sequence[str], features: str | Sequence[str] | None,
                    kinds: Mapping[str, str] | None, missing: str
                    ) -> tuple[str, list[str], list[str] | None, dict[str, str]]:
    """The suite name, the target and feature names and the kinds of :func:`import_csv`, checked
    before the file is read."""
    name = validate_suite_name(name)
    if missing not in _MISSING_STRATEGIES:
        raise CsvError(f"`missing` must be drop or impute, got {missing!r}")
    if kinds is not None and not isinstance(kinds, Mapping):
        raise CsvError(f"`kinds` must map target names to classification or regression, got {kinds!r}")
    return (name, _split_names(targets, "targets") or [], _split_names(features, "features"),
            {_clean_name(str(k)): v for k, v in (kinds or {}).items()})


def _check_not_empty(table: _Table, used: Sequence[_Column], target_names: Sequence[str]) -> None:
    """Raise :class:`CsvError` for a chosen column without a single value."""
    for column in used:
        if not column.present.any():
            role = "target" if column.name in target_names else "feature"
            raise CsvError(f"{role} `{column.name}` has no values (all {table.n_rows} rows are missing)",
                           column=column.name)


def _kept_rows(table: _Table, used: Sequence[_Column], target_names: Sequence[str], impute: bool,
               limits: CsvLimits) -> np.ndarray:
    """The indices of the rows the suite keeps: with ``impute``, every row with at least one label;
    otherwise every row without a missing value in a used column. Too few rows raise :class:`CsvError`."""
    if impute:
        keep = np.zeros(table.n_rows, dtype=bool)
        for target in target_names:
            keep |= table.column(target).present
    else:
        keep = np.ones(table.n_rows, dtype=bool)
        for column in used:
            keep &= column.present
    rows = np.flatnonzero(keep)
    if rows.size >= limits.min_rows:
        return rows
    if rows.size < table.n_rows:
        hint = " (try imputing missing values)" if not impute else ""
        raise CsvError(f"after dropping rows with missing values, {rows.size} of {table.n_rows} rows remain; "
                       f"a suite needs at least {limits.min_rows}{hint}")
    rows_text = "1 data row" if table.n_rows == 1 else f"{table.n_rows} data rows"
    raise CsvError(f"the file has {rows_text}; a suite needs at least {limits.min_rows}")


def _encode_targets(table: _Table, target_names: Sequence[str], kinds: Mapping[str, str], rows: np.ndarray,
                    limits: CsvLimits, dropped_note: str, warnings: list[str]
                    ) -> tuple[dict[str, np.ndarray | _InputMatrix], list[TargetReport]]:
    """Arrays ``y0``, ``y1``, … (class indices, −1 unlabelled; or floats, NaN unlabelled) and a report per
    target. A target's kind is ``kinds[target]``, else the detected one, else what its values allow.
    Classes with fewer than :data:`MIN_CLASS_ROWS` labelled rows are noted in ``warnings``.
    Each target column is released once encoded."""
    arrays: dict[str, np.ndarray | _InputMatrix] = {}
    reports = []
    for index, target in enumerate(target_names):
        column = table.column(target)
        detected = _suggest_kind(column)
        kind = kinds.get(target) or detected or ("regression" if column.numeric else "classification")
        if kind == "classification":
            labels, classes = _encode_classification(column, rows, limits, dropped_note)
            arrays[f"y{index}"] = labels
            counts = np.bincount(labels[labels >= 0], minlength=len(classes))
            rare = rare_class_warning(target, dict(zip(classes, counts.tolist())), column.numeric)
            if rare is not None:
                warnings.append(rare)
            reports.append(TargetReport(target, "classification", len(classes), detected, tuple(classes),
                                        int((labels < 0).sum())))
        else:
            values = _encode_regression(column, rows, dropped_note)
            arrays[f"y{index}"] = values.astype(np.float64)
            reports.append(TargetReport(target, "regression", 1, detected, None, int(np.isnan(values).sum())))
        column.release()
    return arrays, reports


def _encode_features(table: _Table, feature_names: Sequence[str], rows: np.ndarray, limits: CsvLimits,
                     impute: bool, warnings: list[str]) -> tuple[_InputMatrix, list[str], dict[str, int]]:
    """The input matrix (written when the suite is saved), the names of its columns and the imputed
    count per feature (with ``impute``); notes about the encoding are appended to ``warnings``."""
    plans: list[tuple[_Column, np.ndarray | None, int]] = []
    inputs: list[str] = []
    imputed: dict[str, int] = {}
    for feature in feature_names:
        column = table.column(feature)
        names, indices, notes = _encode_feature(column, rows, limits, impute)
        plans.append((column, indices, len(names)))
        inputs.extend(names)
        warnings.extend(notes)
        if impute:
            imputed[feature] = int(column.missing[rows].sum())
        if len(inputs) > limits.max_inputs:
            raise CsvError(f"the features encode to more than {limits.max_inputs} inputs (one per number, one per "
                           f"category of a text column); `{feature}` went over: leave some columns out",
                           column=feature)
    return _InputMatrix(plans, rows, len(inputs)), inputs, imputed


class _InputMatrix:
    """The input matrix (rows × inputs, float64) as a recipe: each feature's column of the file,
    copied as numbers or one-hot encoded from category indices. :func:`_save` writes it a block of
    rows at a time, so the matrix never sits in memory beside the file's columns."""

    def __init__(self, plans: list[tuple[_Column, np.ndarray | None, int]], rows: np.ndarray, width: int) -> None:
        self._plans, self._rows = plans, rows
        self.shape = (int(rows.size), width)

    def blocks(self, cells: int = 100_000) -> Iterator[np.ndarray]:
        """The matrix, in C order, a block of about ``cells`` cells at a time."""
        step = max(1, cells // max(1, self.shape[1]))
        for first in range(0, self.shape[0], step):
            rows = self._rows[first: first + step]
            block = np.zeros((rows.size, self.shape[1]), dtype=np.float64)
            start = 0
            for column, indices, width in self._plans:
                if indices is None:
                    block[:, start] = column.numbers[rows]
                else:
                    block[np.arange(rows.size), start + indices[first: first + step]] = 1.0
                start += width
            yield block


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray | _InputMatrix]) -> None:
    """What :func:`numpy.savez_compressed` writes, with an :class:`_InputMatrix` streamed block by block."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key, array in arrays.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as stream:
                if isinstance(array, _InputMatrix):
                    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float64)), "fortran_order": False,
                              "shape": array.shape}
                    np.lib.format.write_array_header_1_0(stream, header)
                    for block in array.blocks():
                        stream.write(memoryview(block).cast("B"))
                else:
                    np.lib.format.write_array(stream, np.asanyarray(array), allow_pickle=False)


def _spec(report: ImportReport) -> dict[str, Any]:
    """The ``spec.json`` of the suite ``report`` describes."""
    return {
        "format": SPEC_FORMAT,
        "name": report.name,
        "description": report.description,
        "source_file": report.source_file,
        "created_at": time.time(),
        "n_rows": report.n_rows_used,
        "features": list(report.features),
        "inputs": list(report.inputs),
        "targets": [
            {"name": t.name, "kind": t.kind, "n_outputs": t.n_outputs,
             "classes": list(t.classes) if t.classes is not None else None,
             "description": _task_description(t, report.source_file)}
            for t in report.targets
        ],
        "stratify": report.stratify,
        "missing": report.missing,
        "report": {k: v for k, v in report.to_dict().items() if k != "directory"},
    }


def _describe(source_file: str | None, n_rows: int, n_dropped: int, features: Sequence[str], inputs: Sequence[str],
              targets: Sequence[TargetReport], stratify: str | None, missing: str) -> str:
    tasks = ", ".join(
        f"{t.name} ({t.kind}{', ' + str(t.n_outputs) + ' classes' if t.kind == 'classification' else ''})"
        for t in targets
    )
    where = f"the file {source_file}" if source_file else "an uploaded CSV file"  # shown literally: no markdown
    dropped = (f" ({n_dropped} row{'s' if n_dropped != 1 else ''} with missing values dropped)"
               if n_dropped and missing == "drop" else "")
    if missing == "impute":
        dropped = " (missing numbers imputed with training means, missing labels masked)"
    split = f"stratified by {stratify}" if stratify else "at random"
    return (f"Your data: {where}, {n_rows} rows{dropped}. From {len(features)} feature columns ({len(inputs)} inputs "
            f"after one-hot encoding, standardised with training statistics) it predicts: {tasks}. Regression targets "
            f"are standardised. Split 60/20/20 by seed, {split}.")


def _task_description(target: TargetReport, source_file: str | None) -> str:
    where = f" of {source_file}" if source_file else ""
    if target.kind == "classification" and target.classes is not None:
        shown = ", ".join(target.classes[:8]) + (", …" if len(target.classes) > 8 else "")
        return f"Column `{target.name}`{where}: {target.n_outputs} classes ({shown})."
    return f"Column `{target.name}`{where}, standardised with training statistics."


# --- where suites live -----------------------------------------------------------------------------


def user_suites_dir(home: str | os.PathLike[str] | None = None) -> Path:
    """``<MTL Lab home>/suites``: one folder per user suite."""
    return lab_home(home) / "suites"


def validate_suite_name(name: object) -> str:
    """``name`` if it is a safe suite name (1–40 letters, digits, ``_``, ``-``; not a built-in
    suite's), else :class:`CsvError`. Such a name cannot leave the suites folder."""
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise CsvError(f"`name` must be 1–40 letters, digits, `_` or `-`, starting with a letter or digit, got {name!r}")
    built_in = _built_in_names()
    clash = next((b for b in built_in if b.lower() == name.lower()), None)
    if clash is not None:
        raise CsvError(f"`name` must not be a built-in suite's name, got {name!r} (built-in: {clash})")
    return name


def _built_in_names() -> list[str]:
    from mtl_core.suites import SUITES

    return [n for n, cls in SUITES.items() if not getattr(cls, "user_defined", False)]


def _destination(name: str, home: str | os.PathLike[str] | None, replace: bool) -> Path:
    root = lab_home(home)
    suites = user_suites_dir(home)
    destination = suites / name
    try:
        resolved_root = root.resolve()
        if suites.exists() and not suites.resolve().is_relative_to(resolved_root):
            raise CsvError(f"{suites} points outside the MTL Lab home {root}; nothing was written")
        if destination.exists() and not destination.resolve().is_relative_to(resolved_root):
            raise CsvError(f"{destination} points outside the MTL Lab home {root}; nothing was written")
    except OSError as exc:
        raise CsvError(f"the MTL Lab home {root} cannot be used: {exc.strerror or exc}") from None
    clash = next((n for n in _existing_names(suites) if n.lower() == name.lower()), None)
    if clash is not None and clash != name:
        raise CsvError(f"a suite named `{clash}` already exists (names differing only in case clash); "
                       "choose another name")
    if clash is not None and not replace:
        raise CsvError(f"a suite named `{clash}` already exists; choose another name or replace it (--replace)")
    return destination


def _existing_names(suites: Path) -> list[str]:
    try:
        return [p.name for p in suites.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        return []


def _save(destination: Path, spec: dict[str, Any], arrays: Mapping[str, np.ndarray | _InputMatrix],
          replace: bool) -> None:
    suites = destination.parent
    staging: Path | None = None
    try:
        suites.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".import-{destination.name}-", dir=suites))
        _write_npz(staging / "data.npz", arrays)
        (staging / "spec.json").write_text(json.dumps(spec, indent=2, allow_nan=False), encoding="utf-8")
        if destination.exists():
            if not replace:
                raise CsvError(f"a suite named `{destination.name}` already exists; choose another name or "
                               "replace it (--replace)")
            retired = suites / f".old-{destination.name}-{uuid.uuid4().hex[:8]}"
            destination.rename(retired)
            staging.rename(destination)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(destination)
        staging = None
    except OSError as exc:
        raise CsvError(f"the suite cannot be saved in {suites}: {exc.strerror or exc}") from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


# --- reading saved suites ----------------------------------------------------------------------------


def read_spec(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked ``spec.json`` of a saved suite, or :class:`CsvError` naming what is wrong."""
    path = Path(directory) / "spec.json"
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CsvError(f"{path} does not exist") from None
    except (OSError, UnicodeError, ValueError) as exc:
        raise CsvError(f"{path} is unreadable: {exc}") from None
    problem = _spec_problem(spec, Path(directory).name)
    if problem:
        raise CsvError(f"{path} is not a valid suite spec: {problem}")
    return spec


def _spec_problem(spec: Any, folder: str) -> str | None:
    if not isinstance(spec, dict):
        return "it is not a JSON object"
    if spec.get("format") != SPEC_FORMAT:
        return f"`format` must be {SPEC_FORMAT!r}, got {spec.get('format')!r}"
    if spec.get("name") != folder or not _NAME_PATTERN.fullmatch(str(folder)):
        return f"`name` must be the folder's name {folder!r}, got {spec.get('name')!r}"
    inputs = spec.get("inputs")
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        return "`inputs` must be a non-empty list of names"
    n_rows = spec.get("n_rows")
    if isinstance(n_rows, bool) or not isinstance(n_rows, int) or n_rows < 1:
        return f"`n_rows` must be a positive integer, got {n_rows!r}"
    targets = spec.get("targets")
    if not isinstance(targets, list) or not targets:
        return "`targets` must be a non-empty list"
    names = set()
    for index, target in enumerate(targets):
        if not isinstance(target, dict) or not isinstance(target.get("name"), str) or not target["name"]:
            return f"`targets[{index}]` must have a name"
        if target["name"] in names:
            return f"target `{target['name']}` appears twice"
        names.add(target["name"])
        if target.get("kind") not in _KINDS:
            return f"`targets[{index}].kind` must be classification or regression, got {target.get('kind')!r}"
        classes = target.get("classes")
        n_outputs = target.get("n_outputs")
        if target["kind"] == "classification":
            if not isinstance(classes, list) or len(classes) < 2 or n_outputs != len(classes):
                return f"`targets[{index}]` must list at least 2 classes, as many as `n_outputs`"
        elif n_outputs != 1:
            return f"`targets[{index}].n_outputs` must be 1 for regression, got {n_outputs!r}"
    stratify = spec.get("stratify")
    if stratify is not None and stratify not in names:
        return f"`stratify` must be a target, got {stratify!r}"
    if not isinstance(spec.get("description", ""), str):
        return "`description` must be text"
    return None


def load_suite_arrays(directory: str | os.PathLike[str], spec: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The arrays of ``data.npz`` (read without pickle), checked against ``spec``."""
    path = Path(directory) / "data.npz"
    name = spec.get("name")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise CsvError(f"user suite `{name}` has no data file {path}; import the CSV again") from None
    except (OSError, ValueError, EOFError, KeyError) as exc:
        raise CsvError(f"user suite `{name}`: {path} is unreadable ({exc}); import the CSV again") from None
    n_rows, n_inputs = spec["n_rows"], len(spec["inputs"])
    x = arrays.get("x")
    if x is None or x.dtype != np.float64 or x.shape != (n_rows, n_inputs):
        raise CsvError(f"user suite `{name}`: {path} does not match its spec (inputs); import the CSV again")
    for index, target in enumerate(spec["targets"]):
        y = arrays.get(f"y{index}")
        expected = np.int64 if target["kind"] == "classification" else np.float64
        if y is None or y.dtype != expected or y.shape != (n_rows,):
            raise CsvError(f"user suite `{name}`: {path} does not match its spec (target `{target['name']}`); "
                           "import the CSV again")
        if target["kind"] == "classification" and y.size and (y.min() < -1 or y.max() >= target["n_outputs"]):
            raise CsvError(f"user suite `{name}`: target `{target['name']}` has class indices out of range")
    return arrays


def list_user_suites(home: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """The saved user suites (valid ones), as their specs plus ``directory``; sorted by name."""
    out = []
    for directory in sorted(_suite_dirs(user_suites_dir(home))):
        try:
            spec = read_spec(directory)
        except CsvError as exc:
            log.warning("skipping user suite in %s: %s", directory, exc)
            continue
        out.append({**spec, "directory": str(directory)})
    return out


def _suite_dirs(suites: Path) -> list[Path]:
    try:
        return [p for p in suites.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        return []


def remove_user_suite(name: str, home: str | os.PathLike[str] | None = None) -> Path:
    """Delete the user suite ``name`` (its folder) and unregister it; returns the removed folder."""
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise CsvError(f"`name` must be 1–40 letters, digits, `_` or `-`, starting with a letter or digit, got {name!r}")
    if name in _built_in_names():
        raise CsvError(f"`{name}` is a built-in suite; only suites imported from CSV files can be removed")
    suites = user_suites_dir(home)
    directory = suites / name
    if not directory.is_dir():
        existing = ", ".join(sorted(_existing_names(suites))) or "none"
        raise CsvError(f"no user suite named `{name}` (user suites: {existing})")
    try:
        retired = suites / f".old-{name}-{uuid.uuid4().hex[:8]}"
        directory.rename(retired)
        shutil.rmtree(retired)
    except OSError as exc:
        raise CsvError(f"user suite `{name}` cannot be removed: {exc.strerror or exc}") from None
    from mtl_core.suites.user_csv import refresh_user_suites

    refresh_user_suites(home)
    return directory
