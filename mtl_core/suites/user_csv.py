"""User suites: datasets imported from CSV files (:func:`mtl_core.userdata.csv_import.import_csv`).

Each folder ``$MTL_LAB_HOME/suites/<name>/`` holding a valid ``spec.json`` and ``data.npz`` becomes a
:class:`CsvSuite` subclass registered in :data:`~mtl_core.suites.SUITES` under ``<name>``.
:func:`refresh_user_suites` (re)scans the folder: the registry calls it when it is first read (never
at import; the built-in suites are registered by then, so a built-in name always wins),
:func:`~mtl_core.userdata.csv_import.import_csv` and
:func:`~mtl_core.userdata.csv_import.remove_user_suite` call it after they change the folder, and a lookup of an
unknown suite name calls it too, so a long-lived process (a worker, the dashboard) sees suites saved
by another process. A broken folder is skipped with a logged warning; it never breaks the import of
``mtl_core``.

``build(seed)``: a 60/20/20 split by seed, stratified by the first classification target; missing
numbers imputed with the training mean; inputs and regression targets standardised with training
statistics; a missing label leaves its row unlabelled for that task (its mask is False).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from mtl_core.suites import SUITES
from mtl_core.suites._generators import (
    classification_task,
    make_generator,
    make_split,
    regression_task,
    stratified_split,
)
from mtl_core.suites.base import Split, Suite, SuiteData, TaskSpec

__all__ = ["CsvSuite", "refresh_user_suites", "user_suite_names"]

log = logging.getLogger(__name__)

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")
_lock = threading.RLock()
#: name → (class, signature of its spec) of the user suites this module registered.
_registered: dict[str, tuple[type[CsvSuite], str]] = {}
#: Whether the user suites were scanned once in this process (by the discovery hook or by a caller).
_scanned = False


class CsvSuite(Suite):
    """A suite built from a saved CSV import; subclasses are made by :func:`refresh_user_suites`."""

    user_defined: ClassVar[bool] = True
    directory: ClassVar[Path]
    spec: ClassVar[dict[str, Any]]

    def task_specs(self) -> list[TaskSpec]:
        return _task_specs(self.spec)

    def build(self, seed: int) -> SuiteData:
        from mtl_core.userdata.csv_import import CsvError, read_spec

        spec = read_spec(self.directory)
        if _task_specs(spec) != _task_specs(self.spec):
            refresh_user_suites()  # so that the next run of this process sees the new version
            raise CsvError(f"user suite `{self.name}` changed on disk since it was loaded; run again to use the "
                           "new version")
        x, labels, regression = _tensors(str(self.directory), _file_key(self.directory / "data.npz"), _spec_key(spec))
        return _build(spec, x, labels, regression, seed)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        out = super().describe()
        out.update(
            user=True,
            source_file=cls.spec.get("source_file"),
            created_at=cls.spec.get("created_at"),
            n_rows=cls.spec.get("n_rows"),
            features=list(cls.spec.get("features") or []),
            n_inputs=len(cls.spec["inputs"]),
            missing=cls.spec.get("missing"),
            directory=str(cls.directory),
        )
        return out


def _task_specs(spec: dict[str, Any]) -> list[TaskSpec]:
    tasks = []
    for target in spec["targets"]:
        description = str(target.get("description") or "")
        if target["kind"] == "classification":
            tasks.append(classification_task(target["name"], int(target["n_outputs"]), description))
        else:
            tasks.append(regression_task(target["name"], 1, description))
    return tasks


def _file_key(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (0, 0)
    return (stat.st_mtime_ns, stat.st_size)


def _spec_key(spec: dict[str, Any]) -> str:
    import json

    return json.dumps(spec, sort_keys=True)


@lru_cache(maxsize=4)
def _tensors(directory: str, file_key: tuple[int, int], spec_text: str
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The saved arrays as float64 inputs, class-index targets and regression targets (cached per
    file version)."""
    import json

    from mtl_core.userdata.csv_import import load_suite_arrays

    del file_key  # part of the cache key only
    spec = json.loads(spec_text)
    arrays = load_suite_arrays(directory, spec)
    x = torch.from_numpy(np.array(arrays["x"], dtype=np.float64))
    labels, regression = {}, {}
    for index, target in enumerate(spec["targets"]):
        values = torch.from_numpy(np.array(arrays[f"y{index}"]))
        (labels if target["kind"] == "classification" else regression)[target["name"]] = values
    return x, labels, regression


def _standardise(values: torch.Tensor, train_rows: torch.Tensor, labelled: torch.Tensor
                 ) -> tuple[torch.Tensor, float, float]:
    """Centre and scale with the labelled training rows (mean 0 / std 1 when there are too few)."""
    known = values[train_rows][labelled[train_rows]]
    mean = float(known.mean()) if known.numel() else 0.0
    std = float(known.std()) if known.numel() > 1 else 1.0
    if not std > 0:
        std = 1.0
    return torch.where(labelled, (values - mean) / std, torch.zeros_like(values)), mean, std


def _split_rows(spec: dict[str, Any], labels: dict[str, torch.Tensor], n_rows: int, seed: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    strata = labels[spec["stratify"]] if spec.get("stratify") else torch.zeros(n_rows, dtype=torch.int64)
    train, val, test = stratified_split(strata, make_generator(seed))
    if val.numel() == 0 or test.numel() == 0:  # classes too small to stratify: split at random
        train, val, test = stratified_split(torch.zeros(n_rows, dtype=torch.int64), make_generator(seed))
    return train, val, test


def _build(spec: dict[str, Any], x: torch.Tensor, labels: dict[str, torch.Tensor],
           regression: dict[str, torch.Tensor], seed: int) -> SuiteData:
    n_rows = int(x.shape[0])
    train, val, test = _split_rows(spec, labels, n_rows, seed)
    missing = torch.isnan(x)
    if bool(missing.any()):
        means = torch.nanmean(x[train], dim=0)
        means = torch.where(torch.isnan(means), torch.zeros_like(means), means)
        x = torch.where(missing, means.expand_as(x), x)
    mean = x[train].mean(0)
    std = x[train].std(0) if train.numel() > 1 else torch.ones_like(mean)
    std = torch.where(std > 0, std, torch.ones_like(std))
    x = (x - mean) / std

    targets: dict[str, torch.Tensor] = {}
    masks: dict[str, torch.Tensor] = {}
    scales: dict[str, dict[str, float]] = {}
    train_rows = torch.zeros(n_rows, dtype=torch.bool)
    train_rows[train] = True
    for target in spec["targets"]:
        name = target["name"]
        if target["kind"] == "classification":
            masks[name] = labels[name] >= 0
            targets[name] = labels[name].clamp(min=0)
        else:
            masks[name] = ~torch.isnan(regression[name])
            values, mu, sigma = _standardise(regression[name], train_rows, masks[name])
            targets[name] = values.unsqueeze(1)
            scales[name] = {"mean": mu, "std": sigma}

    def split(rows: torch.Tensor) -> Split:
        return make_split(x[rows], {n: v[rows] for n, v in targets.items()}, {n: m[rows] for n, m in masks.items()})

    return SuiteData(
        tasks=_task_specs(spec),
        train=split(train),
        val=split(val),
        test=split(test),
        info={
            "source": "csv",
            "source_file": spec.get("source_file"),
            "n_rows": n_rows,
            "features": list(spec.get("features") or []),
            "inputs": list(spec["inputs"]),
            "classes": {t["name"]: list(t["classes"]) for t in spec["targets"] if t["kind"] == "classification"},
            "target_scales": scales,
            "missing": spec.get("missing"),
            "stratify": spec.get("stratify"),
        },
    )


def _make_class(name: str, directory: Path, spec: dict[str, Any]) -> type[CsvSuite]:
    attributes = {
        "name": name,
        "description": str(spec.get("description") or f"Your data: user suite {name}."),
        "directory": directory,
        "spec": spec,
        "__doc__": f"User suite `{name}` (imported from a CSV file).",
        "__module__": __name__,
    }
    return type(f"CsvSuite_{name.replace('-', '_')}", (CsvSuite,), attributes)


def _scan(suites_dir: Path) -> dict[str, tuple[Path, dict[str, Any], str]]:
    from mtl_core.userdata.csv_import import CsvError, read_spec

    found: dict[str, tuple[Path, dict[str, Any], str]] = {}
    try:
        children = sorted(p for p in suites_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return found
    for directory in children:
        try:
            spec = read_spec(directory)
        except CsvError as exc:
            log.warning("skipping user suite folder %s: %s", directory, exc)
            continue
        except Exception as exc:  # a broken folder must never break importing mtl_core
            log.warning("skipping user suite folder %s: %s: %s", directory, type(exc).__name__, exc)
            continue
        signature = hashlib.sha256(f"{directory.resolve()}|{_spec_key(spec)}".encode()).hexdigest()
        found[directory.name] = (directory, spec, signature)
    return found


def refresh_user_suites(home: str | os.PathLike[str] | None = None) -> list[str]:
    """Make :data:`SUITES` hold exactly the valid user suites of ``home`` (default: ``$MTL_LAB_HOME``
    or ``~/.mtl_lab``): register new ones, re-register changed ones, unregister vanished ones.
    Returns the names of the registered user suites."""
    from mtl_core.userdata.csv_import import user_suites_dir

    global _scanned
    with _lock:
        _scanned = True
        try:
            suites_dir = user_suites_dir(home)
        except Exception as exc:  # e.g. no home folder at all: no user suites, no crash
            log.warning("no user suites: the MTL Lab home cannot be found (%s)", exc)
            found = {}
        else:
            found = _scan(suites_dir)
        for name, (cls, signature) in list(_registered.items()):
            if name not in found or found[name][2] != signature:
                if name in SUITES and SUITES.get(name) is cls:
                    SUITES.unregister(name)
                del _registered[name]
        for name, (directory, spec, signature) in found.items():
            if name in _registered:
                continue
            if name in SUITES:
                log.warning("skipping user suite %s: a built-in suite has that name", name)
                continue
            cls = _make_class(name, directory, spec)
            SUITES.register(name)(cls)
            _registered[name] = (cls, signature)
        return sorted(_registered)


def user_suite_names() -> list[str]:
    """The names of the user suites registered now (scanning them first if nothing did yet)."""
    _discover()
    with _lock:
        return sorted(_registered)


def _on_lookup_miss(name: str) -> None:
    """A suite name nobody registered: maybe another process saved it since this one scanned."""
    from mtl_core.userdata.csv_import import user_suites_dir

    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
        return
    try:
        if (user_suites_dir() / name / "spec.json").is_file():
            refresh_user_suites()
    except Exception as exc:  # a lookup must fail with its own clear error, not this one
        log.warning("could not rescan the user suites: %s", exc)


def _discover() -> None:
    """The first read of :data:`SUITES` in this process scans the user suites of ``$MTL_LAB_HOME``;
    later changes come through :func:`refresh_user_suites` and lookup misses."""
    if not _scanned:
        with _lock:
            if not _scanned:
                refresh_user_suites()


SUITES.add_lookup_hook(_on_lookup_miss)
SUITES.add_discovery_hook(_discover)
