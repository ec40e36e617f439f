"""Reading a CSV file as a stream into compact per-column arrays (the parser behind
:func:`~mtl_core.userdata.csv_import.inspect_csv` and :func:`~mtl_core.userdata.csv_import.import_csv`).

The file is never held as one text and never evaluated: see the section comment below."""

from __future__ import annotations

import codecs
import csv
import io
import mmap
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from mtl_core.userdata.csv_base import (
    _CLASSIFICATION_MAX_DISTINCT,
    _DELIMITERS,
    _MAX_NAME_CHARS,
    NA_TOKENS,
    CsvError,
    CsvLimits,
    Kind,
    Source,
    _clean_name,
    _megabytes,
    _size,
)

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
