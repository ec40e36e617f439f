"""Workshop lessons: small, curated experiments with a question for the students and a checked answer.

A lesson is one YAML file of ``mtl_core/assets/lessons/`` (package data: an installed copy has them
too) or of the folder named by ``$MTL_LAB_LESSONS``, named ``NN-some-name.yaml``: ``NN`` orders the
lessons and ``some-name`` is the lesson's id. Fields:

``title``, ``story``, ``question``, ``expect`` (the observation students should make), optional
``look_at`` (where in the dashboard to look), and

``preset`` — what "Run this lesson" queues:

* ``base``: settings shared by every run (a :class:`~mtl_core.config.TrainConfig` mapping; the
  ``*_options`` mappings are merged key by key with the runs' own);
* ``seeds``: the seeds every run is repeated for (default ``[0]``);
* ``runs``: a list of run settings, each with a ``label`` (letters, digits, ``_ . -``) that the
  checks refer to, optionally its own ``seeds``;
* ``study`` (optional): a transfer study (:mod:`mtl_core.studies.study`) — ``config`` (merged over
  ``base``), ``seeds``, ``include_all``, ``tag``, ``metric``, ``probe_interval``, and the
  protocol's ``patience`` and ``max_epochs`` (they replace the config's ``epochs``).

``check`` — what the lesson claims, machine-checkable on the real results: a list of
``{check_name: {parameters}}`` (or one mapping of them), each naming a function registered in
:data:`CHECKS`; every check must hold. :func:`run_lesson_headless` trains the preset in this
process and :func:`evaluate_check` says whether the expected observation holds, and why.

:func:`load_lesson` / :func:`load_lessons` validate a file completely (every run config against the
registries, every check's name, parameters, labels and tasks) and raise :class:`LessonError` with
the file and the field at fault.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from mtl_core.config import TrainConfig, parse_yaml
from mtl_core.errors import ConfigError, MTLError
from mtl_core.settings import settings
from mtl_core.training.events import Callback, ProbeEvent
from mtl_core.workshop.lesson_checks import (
    CHECKS,
    CheckOutcome,
    LessonResults,
    RunResult,
    _as_list,
    mean_pairwise_cosine,
    register_check,
    update_conflicts,
)

__all__ = [
    "LESSONS_ENV",
    "LessonError",
    "Lesson",
    "LessonRun",
    "CheckSpec",
    "RunResult",
    "LessonResults",
    "CheckOutcome",
    "CHECKS",
    "register_check",
    "lessons_dir",
    "packaged_lessons_dir",
    "lesson_files",
    "load_lesson",
    "load_lessons",
    "get_lesson",
    "run_lesson_headless",
    "launch_lesson",
    "evaluate_check",
    "mean_pairwise_cosine",
    "update_conflicts",
]

#: Environment variable naming another lessons folder (default: the lessons shipped in the package).
LESSONS_ENV = "MTL_LAB_LESSONS"
_FILE_NAME = re.compile(r"^(?:(\d+)[-_])?([A-Za-z0-9][A-Za-z0-9_-]*)\.ya?ml$")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TEXT_FIELDS = ("title", "story", "question", "expect")
_KNOWN_FIELDS = (*_TEXT_FIELDS, "look_at", "preset", "check", "order")
_PRESET_FIELDS = ("base", "seeds", "runs", "study")
_STUDY_FIELDS = ("config", "seeds", "include_all", "tag", "metric", "probe_interval", "patience", "max_epochs")
_OPTION_KEYS = ("suite_options", "strategy_options", "method_options")


class LessonError(MTLError, ValueError):
    """A lesson file is invalid: names the file (``source``) and the ``field`` at fault."""

    def __init__(self, source: str, field: str, expected: str, got: object) -> None:
        self.source = source
        self.field = field
        self.expected = expected
        self.got = got
        where = f"{source}: " if source else ""
        super().__init__(f"{where}`{field}` must be {expected}, got {got!r}")


# --- the lesson model -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LessonRun:
    """One run of a lesson's preset: its ``label`` (what checks refer to), seed and validated config."""

    label: str
    seed: int
    config: TrainConfig


@dataclass(frozen=True)
class CheckSpec:
    """One check of a lesson: the registered function's ``name`` and its parameters."""

    name: str
    params: Mapping[str, Any]

    def describe(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.params.items())
        return f"{self.name}({args})"


@dataclass(frozen=True)
class Lesson:
    """A validated lesson (see the module docstring for the file format)."""

    id: str
    order: int
    title: str
    story: str
    question: str
    expect: str
    look_at: str
    runs: tuple[LessonRun, ...]
    study: Any  # mtl_core.studies.study.StudySpec (validated) or None
    checks: tuple[CheckSpec, ...]
    path: Path | None = None

    @property
    def labels(self) -> list[str]:
        """The run labels in preset order (each once)."""
        return list(dict.fromkeys(run.label for run in self.runs))

    def configs(self) -> list[TrainConfig]:
        """The preset's run configs (the study's runs are planned separately)."""
        return [run.config for run in self.runs]

    def study_size(self) -> int:
        """How many runs the preset's study trains (0 without a study); planned once per lesson."""
        return self._study_size

    @functools.cached_property
    def _study_size(self) -> int:
        if self.study is None:
            return 0
        from mtl_core.studies.study import plan_study

        return len(plan_study(self.study))

    def n_runs(self) -> int:
        """Every run "Run this lesson" queues: the preset's runs and the study's."""
        return len(self.runs) + self.study_size()

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the dashboard and the CLI."""
        return {
            "id": self.id,
            "order": self.order,
            "title": self.title,
            "story": self.story,
            "question": self.question,
            "expect": self.expect,
            "look_at": self.look_at,
            "labels": self.labels,
            "runs": [{"label": r.label, "seed": r.seed, "config": r.config.to_dict()} for r in self.runs],
            "study": self.study.to_dict() if self.study is not None else None,
            "checks": [{"name": c.name, "params": dict(c.params)} for c in self.checks],
            "n_runs": self.n_runs(),
            "path": str(self.path) if self.path is not None else None,
        }


# --- loading and validation -----------------------------------------------------------------------------


def lessons_dir() -> Path:
    """The lessons folder: ``$MTL_LAB_LESSONS`` if set, else the lessons shipped in the package."""
    return settings().lessons_dir or packaged_lessons_dir()


def packaged_lessons_dir() -> Path:
    """The workshop lessons shipped with :mod:`mtl_core` (package data: ``mtl_core/assets/lessons``)."""
    # pip installs a package unpacked, so its data folder is a real directory (a Path, not a zip entry).
    return Path(str(resources.files("mtl_core") / "assets" / "lessons"))


def lesson_files(folder: str | os.PathLike[str] | None = None) -> list[Path]:
    """The lesson files of ``folder`` (default :func:`lessons_dir`), in name order."""
    folder = Path(folder) if folder is not None else lessons_dir()
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml")
                  and not p.name.startswith("."))


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if key in _OPTION_KEYS and isinstance(out.get(key), Mapping) and isinstance(value, Mapping):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _require_mapping(value: Any, source: str, field_name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise LessonError(source, field_name, "a mapping", type(value).__name__ if value is not None else None)
    return value


def _check_keys(value: Mapping[str, Any], allowed: Sequence[str], source: str, prefix: str) -> None:
    for key in value:
        if key not in allowed:
            field_name = f"{prefix}.{key}" if prefix else str(key)
            raise LessonError(source, field_name, f"a known field ({', '.join(allowed)})", key)


def _seeds(value: Any, source: str, field_name: str) -> tuple[int, ...]:
    if isinstance(value, bool) or not isinstance(value, (list, tuple)) or not value or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value
    ):
        raise LessonError(source, field_name, "a non-empty list of non-negative integers", value)
    if len(set(value)) != len(value):
        raise LessonError(source, field_name, "distinct seeds", value)
    return tuple(value)


def _config(data: Mapping[str, Any], source: str, field_name: str) -> TrainConfig:
    try:
        return TrainConfig.from_dict(data).validated()
    except ConfigError as exc:
        raise LessonError(source, f"{field_name}.{exc.field}", exc.expected, exc.got) from None


def _runs(preset: Mapping[str, Any], lesson_id: str, source: str) -> tuple[LessonRun, ...]:
    base = _require_mapping(preset.get("base", {}) or {}, source, "preset.base")
    default_seeds = _seeds(preset.get("seeds", [0]), source, "preset.seeds")
    entries = preset.get("runs", []) or []
    if not isinstance(entries, list):
        raise LessonError(source, "preset.runs", "a list of run settings", type(entries).__name__)
    runs = []
    labels_seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"preset.runs[{index}]"
        entry = dict(_require_mapping(entry, source, where))
        label = entry.pop("label", None)
        if not isinstance(label, str) or not _LABEL.match(label):
            raise LessonError(source, f"{where}.label", "a label of letters, digits, _ . - (e.g. related)", label)
        if label in labels_seen:
            raise LessonError(source, f"{where}.label", "a label not used by another run", label)
        labels_seen.add(label)
        seeds = _seeds(entry.pop("seeds"), source, f"{where}.seeds") if "seeds" in entry else default_seeds
        if "seed" in entry or "seed" in base:
            raise LessonError(source, f"{where}.seed", "absent (use `seeds`)", entry.get("seed", base.get("seed")))
        merged = _merge(base, entry)
        for seed in seeds:
            merged_seed = {**merged, "seed": seed, "name": f"lesson {lesson_id}: {label} · seed {seed}"}
            runs.append(LessonRun(label, seed, _config(merged_seed, source, where)))
    return tuple(runs)


def _study(preset: Mapping[str, Any], source: str) -> Any:
    if preset.get("study") is None:
        return None
    from mtl_core.studies.study import StudySpec

    data = _require_mapping(preset["study"], source, "preset.study")
    _check_keys(data, _STUDY_FIELDS, source, "preset.study")
    base = _require_mapping(preset.get("base", {}) or {}, source, "preset.base")
    config_data = _merge(base, _require_mapping(data.get("config", {}) or {}, source, "preset.study.config"))
    config = _config(config_data, source, "preset.study.config")
    seeds = _seeds(data.get("seeds", [0, 1, 2]), source, "preset.study.seeds")
    options: dict[str, Any] = {}
    for key in ("include_all", "tag"):
        if key in data:
            if not isinstance(data[key], bool):
                raise LessonError(source, f"preset.study.{key}", "true or false", data[key])
            options[key] = data[key]
    if "metric" in data:
        options["metric"] = data["metric"]
    for key in ("probe_interval", "patience", "max_epochs"):
        if key in data:
            options[key] = data[key]
    try:
        return StudySpec(config, seeds=seeds, **options).validated()
    except ConfigError as exc:
        raise LessonError(source, f"preset.study.{exc.field}", exc.expected, exc.got) from None


def _check_specs(value: Any, source: str) -> tuple[CheckSpec, ...]:
    if isinstance(value, Mapping):
        items = [(str(name), params, f"check.{name}") for name, params in value.items()]
    elif isinstance(value, list):
        items = []
        for index, entry in enumerate(value):
            if not isinstance(entry, Mapping) or len(entry) != 1:
                raise LessonError(source, f"check[{index}]", "a mapping with one check name, e.g. "
                                  "{metric_better: {task: t1, labels: [mtl], than: single}}", entry)
            ((name, params),) = entry.items()
            items.append((str(name), params, f"check[{index}]"))
    else:
        raise LessonError(source, "check", "a list of {check_name: {parameters}}", value)
    if not items:
        raise LessonError(source, "check", "at least one check", value)
    specs = []
    for name, params, where in items:
        if name not in CHECKS:
            raise LessonError(source, where, f"a known check ({', '.join(sorted(CHECKS))})", name)
        params = {} if params is None else params
        if not isinstance(params, Mapping):
            raise LessonError(source, f"{where}.{name}", "a mapping of parameters", params)
        signature = inspect.signature(CHECKS[name].function)
        allowed = [p for p in list(signature.parameters)[1:]]
        for key in params:
            if key not in allowed:
                raise LessonError(source, f"{where}.{name}.{key}", f"a parameter of {name} ({', '.join(allowed)})", key)
        for key in allowed:
            if signature.parameters[key].default is inspect.Parameter.empty and key not in params:
                raise LessonError(source, f"{where}.{name}.{key}", "given (a required parameter)", None)
        specs.append(CheckSpec(name, dict(params)))
    return tuple(specs)


def _run_tasks(runs: Sequence[LessonRun]) -> dict[str, set[str]]:
    """label → the task names its runs train (from the suites' task specs; no data is built)."""
    from mtl_core.suites import make_suite

    out: dict[str, set[str]] = {}
    for run in runs:
        config = run.config
        if config.tasks is not None:
            names = set(config.tasks)
        else:
            names = {t.name for t in make_suite(config.suite, **dict(config.suite_options)).task_specs()}
        out.setdefault(run.label, set()).update(names)
    return out


def _validate_check_references(checks: Sequence[CheckSpec], runs: Sequence[LessonRun], study: Any,
                               source: str) -> None:
    labels = list(dict.fromkeys(run.label for run in runs))
    tasks = _run_tasks(runs)
    for index, spec in enumerate(checks):
        registered = CHECKS[spec.name]
        where = f"check[{index}].{spec.name}"
        referenced: list[str] = []
        for key in registered.label_params:
            if key not in spec.params or spec.params[key] is None:
                continue
            value = spec.params[key]
            values = _as_list(value) if isinstance(value, (str, list, tuple)) else [value]
            for label in values:
                if label not in labels:
                    raise LessonError(source, f"{where}.{key}", f"a run label of the preset ({', '.join(labels)})", label)
            referenced.extend(values)
        for key in registered.task_params:
            if spec.params.get(key) is None:
                continue  # an optional task parameter left out (a required one was checked before)
            task = spec.params.get(key)
            for label in referenced:
                if task not in tasks[label]:
                    raise LessonError(source, f"{where}.{key}",
                                      f"a task of the runs labelled {label} ({', '.join(sorted(tasks[label]))})", task)
        if registered.needs_study and study is None:
            raise LessonError(source, where, "used with a preset that has a `study`", None)


def load_lesson(path: str | os.PathLike[str]) -> Lesson:
    """Read and fully validate one lesson file; raises :class:`LessonError` naming the file and field."""
    path = Path(path)
    source = path.name
    match = _FILE_NAME.match(path.name)
    if match is None:
        raise LessonError(source, "file name", "NN-lesson-id.yaml (letters, digits, - and _)", path.name)
    lesson_id = match.group(2)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LessonError(source, "file", "a readable UTF-8 text file", exc.__class__.__name__) from None
    data, problem = parse_yaml(text)
    if problem is not None:
        raise LessonError(source, "file", "valid YAML", problem)
    data = _require_mapping(data, source, "(top level)")
    _check_keys(data, _KNOWN_FIELDS, source, "")
    texts = {}
    for key in _TEXT_FIELDS:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise LessonError(source, key, "a non-empty text", value)
        texts[key] = value.strip()
    look_at = data.get("look_at", "") or ""
    if not isinstance(look_at, str):
        raise LessonError(source, "look_at", "a text", look_at)
    order = data.get("order", int(match.group(1)) if match.group(1) else 1000)
    if isinstance(order, bool) or not isinstance(order, int):
        raise LessonError(source, "order", "an integer", order)
    preset = _require_mapping(data.get("preset"), source, "preset")
    _check_keys(preset, _PRESET_FIELDS, source, "preset")
    runs = _runs(preset, lesson_id, source)
    study = _study(preset, source)
    if not runs and study is None:
        raise LessonError(source, "preset", "at least one run or a study", dict(preset))
    checks = _check_specs(data.get("check"), source)
    _validate_check_references(checks, runs, study, source)
    return Lesson(
        id=lesson_id, order=order, title=texts["title"], story=texts["story"], question=texts["question"],
        expect=texts["expect"], look_at=look_at.strip(), runs=runs, study=study, checks=checks, path=path,
    )


def load_lessons(folder: str | os.PathLike[str] | None = None) -> list[Lesson]:
    """Every lesson of ``folder`` (default :func:`lessons_dir`), in order; the first invalid file
    raises :class:`LessonError`, as do two files with the same id."""
    lessons = [load_lesson(path) for path in lesson_files(folder)]
    seen: dict[str, Path | None] = {}
    for lesson in lessons:
        if lesson.id in seen:
            raise LessonError(lesson.path.name if lesson.path else lesson.id, "file name",
                              f"a lesson id not used by {seen[lesson.id].name if seen[lesson.id] else 'another file'}",
                              lesson.id)
        seen[lesson.id] = lesson.path
    return sorted(lessons, key=lambda lesson: (lesson.order, lesson.id))


def get_lesson(lesson_id: str, folder: str | os.PathLike[str] | None = None) -> Lesson:
    """The lesson ``lesson_id`` of ``folder``; raises :class:`LessonError` when there is none."""
    for path in lesson_files(folder):
        match = _FILE_NAME.match(path.name)
        if match is not None and match.group(2) == lesson_id:
            return load_lesson(path)
    known = [m.group(2) for p in lesson_files(folder) if (m := _FILE_NAME.match(p.name))]
    raise LessonError("", "lesson", f"one of {', '.join(known) or 'no lessons'}", lesson_id)


# --- running and checking ---------------------------------------------------------------------------------


class _ProbeRecorder(Callback):
    def __init__(self) -> None:
        self.probes: dict[str, list[Any]] = {}
        self.epochs: dict[str, list[int]] = {}

    def on_probe(self, event: ProbeEvent) -> None:
        self.probes.setdefault(event.kind, []).append(event.value)
        self.epochs.setdefault(event.kind, []).append(event.epoch)


def run_lesson_headless(
    lesson: Lesson, progress: Callable[[int, int], None] | None = None
) -> LessonResults:
    """Train the lesson's preset in this process, one run after the other, then its study (if
    any, with :class:`~mtl_core.runs.executors.SerialExecutor`: recorded in the run store of
    ``$MTL_LAB_HOME``); returns every run's record and probes.

    ``progress(done, total)`` counts the preset's runs and the study's. ``cpu_seconds`` is the
    process CPU time spent (the measure of a lesson's cost on a shared machine).
    """
    from mtl_core.training.trainer import train

    study_runs = lesson.study_size()
    total = len(lesson.runs) + study_runs
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    if progress is not None:
        progress(0, total)
    results = []
    for index, run in enumerate(lesson.runs):
        recorder = _ProbeRecorder()
        record = train(run.config, [recorder])
        results.append(RunResult(run.label, run.seed, record, recorder.probes, probe_epochs=recorder.epochs))
        if progress is not None:
            progress(index + 1, total)
    study = None
    if lesson.study is not None:
        from mtl_core.runs.executors import SerialExecutor
        from mtl_core.studies.study import new_study_id, run_study

        offset = len(lesson.runs)

        def study_progress(done: int, _total: int) -> None:
            if progress is not None:
                progress(offset + done, total)

        study = run_study(lesson.study, SerialExecutor(), progress=study_progress,
                          group_id=new_study_id(f"lesson-{lesson.id}"))
    return LessonResults(lesson.id, results, study, cpu_seconds=time.process_time() - cpu_start,
                         wall_seconds=time.perf_counter() - wall_start)


def launch_lesson(
    lesson: Lesson,
    store: Any,
    owner: str | None = None,
    *,
    executor: Any = None,
    start: bool = True,
) -> dict[str, Any]:
    """Queue a lesson's preset for ``owner`` in ``store`` (a :class:`~mtl_core.runs.store.RunStore`) to
    train in the background: its runs as one group (:func:`mtl_core.studies.records.submit_runs`) and its
    study, if it has one, as a study record (:func:`mtl_core.studies.records.launch_study`). The presenter
    limits are checked over all of them before anything is queued (:class:`~mtl_core.workshop.limits.LimitError`).

    Returns ``group_id`` (of the runs), ``run_ids`` (in the order of ``lesson.runs``) and
    ``study_id`` (None without a study)."""
    from mtl_core.studies.records import launch_study, submit_runs
    from mtl_core.studies.study import plan_study
    from mtl_core.workshop.limits import check_limits

    configs = [run.config for run in lesson.runs]
    planned = plan_study(lesson.study) if lesson.study is not None else []
    check_limits(configs + [run.config for run in planned], owner, store=store, home=store.home)
    stamp, token = time.strftime("%Y%m%d-%H%M%S"), uuid.uuid4().hex[:6]
    group_id = f"lesson-{lesson.id}-{stamp}-{token}"
    run_ids = submit_runs(configs, store, owner=owner, group_id=group_id, executor=executor, start=start) if configs else []
    study_id = None
    if lesson.study is not None:
        study_id = launch_study(lesson.study, store, owner, study_id=f"study-{stamp}-{token}", lesson=lesson.id,
                                executor=executor, start=start)
    return {"group_id": group_id, "run_ids": run_ids, "study_id": study_id}


def evaluate_check(lesson: Lesson, results: LessonResults) -> tuple[bool, str]:
    """Whether every check of ``lesson`` holds on ``results``, and one line per check with the
    measured numbers (``✓`` / ``✗``). A check that cannot be computed (missing runs or probes)
    counts as failed, with the reason."""
    lines = []
    passed_all = True
    for spec in lesson.checks:
        try:
            outcome = CHECKS[spec.name].function(results, **dict(spec.params))
        except MTLError as exc:
            outcome = CheckOutcome(False, f"cannot be checked: {exc}")
        passed_all = passed_all and outcome.passed
        # The sentence names what it measured; the check's identifier is for lesson files, not readers.
        lines.append(f"{'✓' if outcome.passed else '✗'} {outcome.explanation}")
    return passed_all, "\n".join(lines)
