"""Short labels for runs shown together, built from the settings that differ between them.

A page that shows several runs (a lesson's side-by-side, the Compare table, the run links) labels
each run with what tells it apart from the others, not with a fixed ``method · seed``: two runs of
lesson 1 that differ in ``p_in`` and in the sharing strategy read ``hard · p_in 0.9 · seed 1`` and
``single · p_in 0 · seed 1``. Pure functions over run configs (``TrainConfig.to_dict()`` dicts, as
the run store keeps them); no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["SETTING_ORDER", "differing_settings", "run_labels", "setting_labels", "setting_text"]

#: The settings a label may name, in the order it names them; option dicts are expanded in place
#: (``suite_options.p_in`` right after ``suite``). The seed comes last and is handled apart.
SETTING_ORDER: tuple[str, ...] = (
    "strategy", "strategy_options", "method", "method_options", "suite", "suite_options", "tasks",
    "epochs", "patience", "lr", "batch_size", "optimizer", "weight_decay", "probe_interval", "tag",
    "tag_interval", "tag_lookahead", "jacobian_mode",
)
_OPTION_GROUPS = ("suite_options", "strategy_options", "method_options")
#: Settings that do not change what a run measures, or are not settings at all.
_IGNORED = {"name", "device", "seed"}
_NAMES = {"lr": "lr", "batch_size": "batch", "weight_decay": "wd", "probe_interval": "probe every",
          "tag_interval": "TAG every", "tag_lookahead": "TAG step", "jacobian_mode": "jacobian"}
#: Settings shown by their value alone (``hard``, ``pcgrad``), not ``name value``.
_BARE = {"suite", "strategy", "method", "optimizer"}
_SEPARATOR = " · "


def _value_text(value: Any) -> str:
    """A setting's value, short and exact: floats in their shortest form that reads back the same."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
            return str(int(value))
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(_value_text(v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_value_text(v)}" for k, v in sorted(value.items()))
    return str(value)


def _flatten(config: Mapping[str, Any]) -> dict[str, str]:
    """Setting path (``lr``, ``suite_options.p_in``) → its value as text; missing settings absent."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        if key in _IGNORED or value is None:
            continue
        if key in _OPTION_GROUPS and isinstance(value, Mapping):
            for option, option_value in value.items():
                if option_value is not None:
                    flat[f"{key}.{option}"] = _value_text(option_value)
        elif key == "tasks" and isinstance(value, (list, tuple)) and not value:
            continue  # no list = the suite's tasks, the same as not naming them
        else:
            flat[key] = _value_text(value)
    return flat


def _rank(path: str) -> tuple[int, str]:
    head, _, option = path.partition(".")
    position = SETTING_ORDER.index(head) if head in SETTING_ORDER else len(SETTING_ORDER)
    return position, option or path


def setting_text(path: str, value: str) -> str:
    """One part of a label: ``hard``, ``p_in 0.9``, ``lr 0.003``, ``tasks t1, t2``, ``TAG on``."""
    head, _, option = path.partition(".")
    if option:
        return f"{option} {value}"
    if head in _BARE:
        return value
    if head == "tag":
        return f"TAG {value}"
    return f"{_NAMES.get(head, head)} {value}"


def _check(configs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    if isinstance(configs, (str, bytes, Mapping)) or not isinstance(configs, Sequence):
        raise TypeError(f"`configs` must be a list of run configs (dicts), got {type(configs).__name__}")
    for index, config in enumerate(configs):
        if not isinstance(config, Mapping):
            raise TypeError(f"`configs[{index}]` must be a run config (a dict), got {type(config).__name__}")
    return list(configs)


def differing_settings(configs: Sequence[Mapping[str, Any]], always: Sequence[str] = ()) -> list[str]:
    """The setting paths a label needs to tell ``configs`` apart (the seed aside), in label order.

    A setting is kept when it splits runs that the settings kept before it leave together; one that
    merely follows from those (lesson 1's ``probe_interval`` 0 of every ``single`` run, a method
    option that comes with its method) adds nothing and is left out. ``always`` names top-level
    settings (``suite``, ``strategy``, ``method``) kept even when every run shares them.
    """
    flats = [_flatten(config) for config in _check(configs)]
    paths = sorted({path for flat in flats for path in flat}, key=_rank)
    kept: list[str] = []
    for path in paths:
        head = path.partition(".")[0]
        if head in always:
            kept.append(path)
            continue
        together: dict[tuple[str | None, ...], set[str | None]] = {}
        for flat in flats:
            together.setdefault(tuple(flat.get(k) for k in kept), set()).add(flat.get(path))
        if any(len(values) > 1 for values in together.values()):
            kept.append(path)
    return kept


def _label(flat: Mapping[str, str], paths: Sequence[str]) -> str:
    label = _SEPARATOR.join(setting_text(path, flat[path]) for path in paths if path in flat)
    # A run that only lacks an option the others set (its default) still gets a name.
    return label or _SEPARATOR.join(flat[path] for path in ("strategy", "method") if path in flat)


def setting_labels(configs: Sequence[Mapping[str, Any]], always: Sequence[str] = ()) -> list[str]:
    """One label per config naming its *setting*: the settings that differ between ``configs``
    (:func:`differing_settings`), without the seed, so that runs differing only in their seed share
    a label and runs with different settings never do. When nothing but the seed differs (or a
    lone run), the label is ``strategy · method``."""
    configs = _check(configs)
    flats = [_flatten(config) for config in configs]
    paths = differing_settings(configs, always)
    return [_label(flat, paths) for flat in flats]


def run_labels(configs: Sequence[Mapping[str, Any]], always: Sequence[str] = ()) -> list[str]:
    """One label per config: its :func:`setting_labels` label, then ``seed N`` when the seeds
    differ (or ``"seed"`` is in ``always``): ``hard · p_in 0.9 · seed 1``; a lone run reads
    ``hard · ew``."""
    configs = _check(configs)
    bases = setting_labels(configs, always)
    seeds = [config.get("seed") for config in configs]
    if "seed" not in always and len({_value_text(s) for s in seeds}) < 2:
        return bases
    return [_SEPARATOR.join(part for part in (base, f"seed {_value_text(seed if seed is not None else 0)}") if part)
            for base, seed in zip(bases, seeds, strict=True)]
