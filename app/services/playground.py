"""The gradient-geometry playground (:mod:`mtl_core.workshop.playground`) for ``views/playground.py``: its state
read from and written to the address, the gradients it draws, and every method applied to them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from mtl_core.workshop import playground as engine_playground
from services.catalog import catalog

__all__ = [
    "PLAYGROUND_DEFAULTS",
    "gradient_methods",
    "default_methods",
    "playground_state",
    "playground_query",
    "playground_vectors",
    "playground",
]

#: Defaults of the playground's state (the keys are its address parameters): dimension ``d``,
#: number of gradients ``n``, and per gradient i its angle ``ai`` (degrees), length ``li`` and, in
#: 3-D, elevation ``ei`` (degrees). The default pair conflicts, and the sum hurts task 1.
PLAYGROUND_DEFAULTS: dict[str, Any] = {
    "d": 2, "n": 2,
    "a1": 10, "l1": 1.0, "e1": 0,
    "a2": 135, "l2": 2.0, "e2": 0,
    "a3": -100, "l3": 1.5, "e3": 30,
}
_PLAYGROUND_RANGES = {"a": (-180, 180, "an angle in degrees from -180 to 180"),
                      "e": (-90, 90, "an elevation in degrees from -90 to 90"),
                      "l": (0.0, 3.0, "a length from 0 to 3")}


def gradient_methods() -> list[dict[str, Any]]:
    """The gradient methods the playground shows (name, description, paper, randomised)."""
    catalog()
    return engine_playground.gradient_methods()


def default_methods() -> list[str]:
    """The methods shown before the user picks others (with ``ew``, always shown)."""
    catalog()
    return engine_playground.default_methods()


def playground_state(query: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The playground state read from address parameters (unknown ones are ignored), and one
    warning per bad value — each bad value falls back to its default. ``methods`` is the list of
    methods to show (``m=pcgrad,mgda``, ``m=all``; :func:`default_methods` when absent)."""
    state = dict(PLAYGROUND_DEFAULTS)
    warnings: list[str] = []
    names = [m["name"] for m in gradient_methods()]
    state["methods"] = default_methods()
    for key, raw in query.items():
        value = raw[0] if isinstance(raw, (list, tuple)) and raw else raw
        text = str(value).strip()
        if key in ("d", "n"):
            if text in ("2", "3"):
                state[key] = int(text)
            else:
                what = "the dimension" if key == "d" else "the number of gradients"
                warnings.append(f"`{key}` in the address must be 2 or 3 ({what}), got {text!r}; using "
                                f"{PLAYGROUND_DEFAULTS[key]}.")
        elif key in PLAYGROUND_DEFAULTS:
            low, high, expected = _PLAYGROUND_RANGES[key[0]]
            try:
                number = float(text)
            except ValueError:
                number = math.nan
            if not math.isfinite(number) or not low <= number <= high:
                warnings.append(f"`{key}` in the address must be {expected}, got {text!r}; using "
                                f"{PLAYGROUND_DEFAULTS[key]}.")
                continue
            state[key] = round(number, 1) if key[0] == "l" else int(round(number))
        elif key == "m":
            chosen = list(names) if text == "all" else [m.strip() for m in text.split(",") if m.strip()]
            unknown = [m for m in chosen if m not in names]
            if unknown:
                warnings.append(f"`m` in the address must list gradient methods ({', '.join(names)}); ignoring "
                                f"{', '.join(repr(m) for m in unknown)}.")
            known = [m for m in chosen if m in names]
            state["methods"] = known or default_methods()
    return state, warnings


def playground_query(state: Mapping[str, Any]) -> dict[str, str]:
    """The address parameters of a playground state (only what matters: n gradients, elevations in
    3-D, the methods when not the default ones, ``all`` for every one), the inverse of
    :func:`playground_state`."""
    query = {"d": str(int(state["d"])), "n": str(int(state["n"]))}
    for i in range(1, int(state["n"]) + 1):
        query[f"a{i}"] = str(int(state[f"a{i}"]))
        query[f"l{i}"] = f"{float(state[f'l{i}']):g}"
        if int(state["d"]) == 3:
            query[f"e{i}"] = str(int(state[f"e{i}"]))
    methods = list(state.get("methods") or [])
    if set(methods) == {m["name"] for m in gradient_methods()}:
        query["m"] = "all"
    elif methods and methods != default_methods():
        query["m"] = ",".join(methods)
    return query


def playground_vectors(state: Mapping[str, Any]) -> list[list[float]]:
    """The gradients of a playground state: (l cos a, l sin a) in 2-D, and in 3-D
    (l cos e cos a, l cos e sin a, l sin e)."""
    vectors = []
    for i in range(1, int(state["n"]) + 1):
        angle, length = math.radians(float(state[f"a{i}"])), float(state[f"l{i}"])
        if int(state["d"]) == 3:
            elevation = math.radians(float(state[f"e{i}"]))
            vectors.append([length * math.cos(elevation) * math.cos(angle),
                            length * math.cos(elevation) * math.sin(angle), length * math.sin(elevation)])
        else:
            vectors.append([length * math.cos(angle), length * math.sin(angle)])
    return [[0.0 if abs(v) < 1e-12 else v for v in vector] for vector in vectors]


def playground(gradients: Sequence[Sequence[float]], methods: Sequence[str] | None = None) -> dict[str, Any]:
    """Every chosen gradient method (and the plain sum, ``ew``) applied to ``gradients``: ``names``
    (g₁ …), ``cosines`` (T × T, None for a zero gradient), ``outputs`` (method → direction, for
    :func:`figures.gradient_arrows`), ``sentences`` (method → what it did, with numbers) and
    ``errors`` (method → why it failed); ``common_descent``: whether some direction lowers every
    loss (:func:`mtl_core.workshop.playground.common_descent_exists`)."""
    catalog()
    outcomes = engine_playground.combine_all(gradients, methods)
    return {
        "names": engine_playground.gradient_names(len(gradients)),
        "cosines": engine_playground.cosine_matrix(gradients),
        "outputs": {m: o.direction for m, o in outcomes.items() if o.direction is not None},
        "dots": {m: o.dots for m, o in outcomes.items() if o.dots is not None},
        "sentences": {m: o.sentence for m, o in outcomes.items()},
        "errors": {m: o.error for m, o in outcomes.items() if o.error},
        "common_descent": engine_playground.common_descent_exists(gradients),
    }
