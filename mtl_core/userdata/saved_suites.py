"""Saved user suites on disk: names, the ``$MTL_LAB_HOME/suites/<name>/`` folders, writing
``data.npz`` + ``spec.json`` atomically, reading and checking them back, listing and removing them
(for :mod:`.csv_import` and :mod:`mtl_core.suites.user_csv`)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mtl_core.runs.store import lab_home
from mtl_core.userdata.csv_base import _KINDS, _NAME_PATTERN, SPEC_FORMAT, CsvError
from mtl_core.userdata.csv_read import _Column

# The logger keeps the name it had before this module was split out of csv_import.
log = logging.getLogger("mtl_core.userdata.csv_import")


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
