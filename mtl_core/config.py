"""The run configuration: one frozen dataclass, validated in one place, round-trips to JSON/YAML."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtl_core.errors import ConfigError

__all__ = ["TrainConfig", "load_config_file", "parse_yaml", "OPTIMIZERS", "JACOBIAN_MODES", "TAG_LOOKAHEADS"]

OPTIMIZERS = ("adam", "adamw", "sgd")
JACOBIAN_MODES = ("auto", "loop", "batched", "representation")
TAG_LOOKAHEADS = ("sgd", "optimizer")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. ``tasks=None`` means all of the suite's tasks.

    Build it with :meth:`from_dict` (or the constructor) and call :meth:`validated` to check every
    field against the registries; both the CLI and the dashboard go through it.
    """

    suite: str = "planted"
    tasks: tuple[str, ...] | None = None
    suite_options: Mapping[str, Any] = field(default_factory=dict)
    strategy: str = "hard"
    strategy_options: Mapping[str, Any] = field(default_factory=dict)
    method: str = "ew"
    method_options: Mapping[str, Any] = field(default_factory=dict)
    #: The number of epochs, or the maximum number when ``patience`` is set.
    epochs: int = 10
    #: Early stopping: stop when the sum of the tasks' validation losses has not improved for this
    #: many consecutive epochs (None = off: train all ``epochs``).
    patience: int | None = None
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "cpu"
    #: Gradient probes every N steps (0 = off); the same default in the CLI, the Train page and
    #: studies (benchmarks/probes.py measures the cost: 10 keeps it ≤ 15 % of an `ew` run).
    probe_interval: int = 5
    tag: bool = False
    #: TAG lookahead every N steps when ``tag`` is on (5 keeps a run ≤ 1.5× its time without TAG).
    tag_interval: int = 5
    #: TAG's lookahead step: ``sgd`` = θ − η∇Lᵢ with the run's learning rate η (Fifty et al.'s
    #: formula); ``optimizer`` = one step of the run's own optimiser with its state (Adam's momentum
    #: then dominates the step and hides most of the task-specific signal; benchmarks/validity.py).
    tag_lookahead: str = "sgd"
    jacobian_mode: str = "auto"
    name: str | None = None
    #: Set on the copy :meth:`validated` returns, so that checking it again is free: a run's config
    #: is checked once where it enters (page, CLI, lesson, study plan) and once where it is read
    #: back from the store. Not a setting: not in ``to_dict``, not compared; ``replace`` clears it.
    _checked: bool = field(default=False, init=False, repr=False, compare=False)

    # --- (de)serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        del out["_checked"]
        out["tasks"] = list(self.tasks) if self.tasks is not None else None
        for key in ("suite_options", "strategy_options", "method_options"):
            out[key] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(out[key]).items()}
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        if not isinstance(data, Mapping):
            raise ConfigError("config", "a mapping of settings", type(data).__name__)
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(unknown[0], f"a known setting ({', '.join(sorted(known))})", unknown[0])
        values = dict(data)
        tasks = values.get("tasks")
        if isinstance(tasks, str):
            values["tasks"] = tuple(t.strip() for t in tasks.split(",") if t.strip())
        elif tasks is not None:
            if not isinstance(tasks, (list, tuple)) or not all(isinstance(t, str) for t in tasks):
                raise ConfigError("tasks", "a list of task names", tasks)
            values["tasks"] = tuple(tasks)
        for key in ("suite_options", "strategy_options", "method_options"):
            if key in values:
                if values[key] is None:
                    values[key] = {}
                if not isinstance(values[key], Mapping):
                    raise ConfigError(key, "a mapping of option names to values", values[key])
                values[key] = dict(values[key])
        return cls(**values)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    # --- validation ------------------------------------------------------------------------------
    def validated(self) -> TrainConfig:
        """Return a copy with every field checked and options resolved (defaults filled in).

        Raises :class:`ConfigError` naming the first bad field. A config this method returned is
        returned as it is (it was checked when it was made, and it is frozen).
        """
        if self._checked:
            return self
        checked = self._check()
        object.__setattr__(checked, "_checked", True)
        return checked

    def _check(self) -> TrainConfig:
        from mtl_core.balancing import METHODS
        from mtl_core.strategies import STRATEGIES
        from mtl_core.suites import SUITES

        _check_str(self.suite, "suite")
        suite_cls = SUITES.get(self.suite, "suite")
        suite = suite_cls(**dict(self.suite_options))
        available = [t.name for t in suite.task_specs()]
        tasks = self.tasks
        if tasks is not None:
            if len(tasks) == 0:
                raise ConfigError("tasks", f"at least one of {', '.join(available)}", [])
            for task in tasks:
                if task not in available:
                    raise ConfigError("tasks", f"task names from {', '.join(available)}", task)
            if len(set(tasks)) != len(tasks):
                raise ConfigError("tasks", "distinct task names", list(tasks))
        strategy_cls = STRATEGIES.get(self.strategy, "strategy")
        method_cls = METHODS.get(self.method, "method")
        from mtl_core.options import resolve_options

        strategy_options = resolve_options(strategy_cls.options, self.strategy_options, "strategy_options")
        method_options = resolve_options(method_cls.options, self.method_options, "method_options")
        _check_int(self.epochs, "epochs", 1, 100_000)
        if self.patience is not None and (
            isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1
        ):
            raise ConfigError("patience", "null (off) or an integer ≥ 1", self.patience)
        _check_int(self.batch_size, "batch_size", 1, 1_000_000)
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError("optimizer", f"one of {', '.join(OPTIMIZERS)}", self.optimizer)
        _check_float(self.lr, "lr", 0.0, 10.0, open_low=True)
        _check_float(self.weight_decay, "weight_decay", 0.0, 1.0)
        _check_int(self.seed, "seed", 0, 2**31 - 1)
        if not isinstance(self.device, str) or not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ConfigError("device", "cpu or cuda (or cuda:N)", self.device)
        _check_int(self.probe_interval, "probe_interval", 0, 1_000_000)
        _check_int(self.tag_interval, "tag_interval", 1, 1_000_000)
        if self.tag_lookahead not in TAG_LOOKAHEADS:
            raise ConfigError("tag_lookahead", f"one of {', '.join(TAG_LOOKAHEADS)}", self.tag_lookahead)
        if not isinstance(self.tag, bool):
            raise ConfigError("tag", "true or false", self.tag)
        if self.jacobian_mode not in JACOBIAN_MODES:
            raise ConfigError("jacobian_mode", f"one of {', '.join(JACOBIAN_MODES)}", self.jacobian_mode)
        if self.name is not None and not isinstance(self.name, str):
            raise ConfigError("name", "a string or null", self.name)
        n_tasks = len(tasks) if tasks is not None else len(available)
        if method_cls.level == "representation" and not strategy_cls.has_shared_representation:
            with_repr = sorted(n for n, c in STRATEGIES.items() if c.has_shared_representation)
            raise ConfigError(
                "strategy",
                f"a strategy with one shared representation ({', '.join(with_repr)}) for method "
                f"{self.method!r}",
                self.strategy,
            )
        if self.tag and not strategy_cls.has_shared_representation:
            raise ConfigError("strategy", "hard (TAG affinity needs a hard-sharing run)", self.strategy)
        del n_tasks
        return dataclasses.replace(
            self,
            suite_options=dict(suite.settings),
            strategy_options=strategy_options,
            method_options=method_options,
        )


def _check_str(value: Any, name: str) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigError(name, "a non-empty string", value)


def _check_int(value: Any, name: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(name, f"an integer in [{low}, {high}]", value)


def _check_float(value: Any, name: str, low: float, high: float, open_low: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = (value > low if open_low else value >= low) and value <= high
    if not ok:
        bracket = "(" if open_low else "["
        raise ConfigError(name, f"a number in {bracket}{low}, {high}]", value)


def parse_yaml(text: str) -> tuple[Any, str | None]:
    """Parse YAML (or JSON) text as data only (``yaml.safe_load``: no objects are built). Returns
    ``(data, None)``, or ``(None, "a syntax error at line L, column C")`` for the caller's message."""
    import yaml

    try:
        return yaml.safe_load(text), None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return None, f"a syntax error{where}"


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into a dict (not yet validated)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config", "an existing file", str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("config", "a readable UTF-8 text file", f"{path} ({exc.__class__.__name__})") from None
    data, problem = parse_yaml(text)
    if problem is not None:
        raise ConfigError("config", "valid YAML or JSON", f"{problem} in {path}")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("config", "a mapping of settings at the top level", type(data).__name__)
    return data
