"""Contract tests for every registered sharing strategy, plus strategy-specific properties."""

from __future__ import annotations

from itertools import combinations
from typing import Any

import pytest
import torch
from _asserts import declaring

from mtl_core.errors import ConfigError
from mtl_core.strategies import STRATEGIES, MTLModel, make_model
from mtl_core.strategies.cross_stitch import stitch_init
from mtl_core.suites.base import TaskSpec

INPUT_DIM = 5
N_ROWS = 7
SMALL = {"hidden": 8}

CLS3 = TaskSpec("cls3", "classification", 3, "accuracy", True)
CLS2 = TaskSpec("cls.2", "classification", 2, "accuracy", True)  # a dot: not a valid ModuleDict key
REG1 = TaskSpec("reg1", "regression", 1, "mse", False)
REG2 = TaskSpec("reg2", "regression", 2, "mse", False)

TASK_SETS = {"T1": [CLS3], "T2": [CLS2, REG1], "T4": [CLS3, CLS2, REG1, REG2]}
NAMES = STRATEGIES.names()
#: Strategies whose every parameter belongs to one task (their classes declare it).
NO_SHARED = set(declaring(STRATEGIES, has_shared_parameters=False))

# Every strategy with its defaults, plus variants whose ownership rules differ.
VARIANTS: list[tuple[str, dict[str, Any]]] = [(name, {}) for name in NAMES] + [
    ("hard", {"depth": 1}),
    ("cross_stitch", {"depth": 3, "alpha_self": 0.5}),
    ("mmoe", {"tower_depth": 0, "n_experts": 1}),
    ("ple", {"n_levels": 1}),
    ("ple", {"n_levels": 3, "n_task_experts": 2}),
    ("ple", {"n_levels": 3, "n_task_experts": 0}),
]
VARIANT_IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in o.items()) or 'default'}" for n, o in VARIANTS]


def build(name: str, tasks: list[TaskSpec], seed: int = 0, **options: Any) -> MTLModel:
    torch.manual_seed(seed)
    return make_model(name, INPUT_DIM, tasks, **{**SMALL, **options})


def inputs(seed: int = 1) -> torch.Tensor:
    return torch.randn(N_ROWS, INPUT_DIM, generator=torch.Generator().manual_seed(seed))


def grads_of(model: MTLModel, output: torch.Tensor) -> dict[int, torch.Tensor | None]:
    params = list(model.parameters())
    grads = torch.autograd.grad(output.sum(), params, allow_unused=True, retain_graph=True)
    return {id(p): g for p, g in zip(params, grads, strict=True)}


def is_nonzero(grad: torch.Tensor | None) -> bool:
    return grad is not None and bool(grad.abs().sum() > 0)


def test_all_strategies_registered() -> None:
    assert {"single", "hard", "soft", "cross_stitch", "mmoe", "ple"} <= set(NAMES)
    # What the built-in strategies declare: a flag dropped by mistake would change the tests below.
    assert {"single", "soft"} <= NO_SHARED
    assert "hard" in declaring(STRATEGIES, has_shared_representation=True)
    assert "soft" in declaring(STRATEGIES, has_regularization=True)


@pytest.mark.parametrize("name", NAMES)
def test_describe(name: str) -> None:
    info = STRATEGIES.get(name).describe()
    assert info["name"] == name
    assert len(info["description"]) > 80
    option_names = [o["name"] for o in info["options"]]
    assert {"hidden", "depth"} <= set(option_names)
    assert info["has_shared_representation"] == STRATEGIES.get(name).has_shared_representation
    assert info["has_shared_parameters"] == (name not in NO_SHARED)
    assert STRATEGIES.get(name).__doc__


@pytest.mark.parametrize("task_set", list(TASK_SETS))
@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=VARIANT_IDS)
def test_output_keys_and_shapes(name: str, options: dict[str, Any], task_set: str) -> None:
    tasks = TASK_SETS[task_set]
    out = build(name, tasks, **options)(inputs())
    assert list(out) == [t.name for t in tasks]
    for spec in tasks:
        assert out[spec.name].shape == (N_ROWS, spec.n_outputs)
        assert torch.isfinite(out[spec.name]).all()


@pytest.mark.parametrize("task_set", list(TASK_SETS))
@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=VARIANT_IDS)
def test_parameter_partition(name: str, options: dict[str, Any], task_set: str) -> None:
    model = build(name, TASK_SETS[task_set], **options)
    all_ids = [id(p) for p in model.parameters()]
    shared_ids = [id(p) for p in model.shared_parameters()]
    owned = {t: [id(p) for p in model.task_parameters(t)] for t in model.task_names}
    for t in model.task_names:
        assert owned[t], f"task {t} owns no parameter (its head at least)"
        assert not set(owned[t]) & set(shared_ids)
    for t, u in combinations(model.task_names, 2):
        assert not set(owned[t]) & set(owned[u])
    assert sorted(shared_ids + [i for ids in owned.values() for i in ids]) == sorted(all_ids)
    last = [id(p) for p in model.last_shared_parameters()]
    if name in NO_SHARED:
        assert shared_ids == [] and last == []
    else:
        assert shared_ids and last
        assert set(last) <= set(shared_ids)


@pytest.mark.parametrize("task_set", ["T2", "T4"])
@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=VARIANT_IDS)
def test_ownership_by_gradients(name: str, options: dict[str, Any], task_set: str) -> None:
    model = build(name, TASK_SETS[task_set], **options)
    out = model(inputs())
    grads = {u: grads_of(model, out[u]) for u in model.task_names}
    for u in model.task_names:
        # Task u's own parameters do feed its output …
        assert any(is_nonzero(grads[u][id(p)]) for p in model.task_parameters(u))
        # … and no other task's output depends on them.
        for t in model.task_names:
            if t != u:
                for p in model.task_parameters(t):
                    assert not is_nonzero(grads[u][id(p)]), f"{u}'s output reaches a parameter owned by {t}"
    # Shared means shared: every shared tensor feeds at least two tasks, and some feed all.
    shared = model.shared_parameters()
    for p in shared:
        assert sum(is_nonzero(grads[u][id(p)]) for u in model.task_names) >= 2
    if name not in NO_SHARED:
        assert any(all(is_nonzero(grads[u][id(p)]) for u in model.task_names) for p in shared)
        for p in model.last_shared_parameters():
            assert all(is_nonzero(grads[u][id(p)]) for u in model.task_names)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_init(name: str) -> None:
    tasks = TASK_SETS["T4"]
    first, again, other = build(name, tasks, seed=3), build(name, tasks, seed=3), build(name, tasks, seed=4)
    a, b, c = first.state_dict(), again.state_dict(), other.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    x = inputs()
    assert all(torch.equal(first(x)[t], again(x)[t]) for t in first.task_names)


@pytest.mark.parametrize("name", NAMES)
def test_dtype_and_device_follow_the_module(name: str) -> None:
    model = build(name, TASK_SETS["T2"]).to(torch.float64)
    out = model(inputs().double())
    assert all(v.dtype == torch.float64 for v in out.values())
    reg = model.regularization()
    assert reg is None or reg.dtype == torch.float64
    # The meta device computes shapes only: any tensor made on a fixed device would clash here.
    meta = build(name, TASK_SETS["T4"]).to("meta")
    out = meta(torch.empty(N_ROWS, INPUT_DIM, device="meta"))
    assert all(v.device.type == "meta" and v.shape[0] == N_ROWS for v in out.values())
    reg = meta.regularization()
    assert reg is None or reg.device.type == "meta"


@pytest.mark.parametrize("name", NAMES)
def test_width_validation(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        build(name, TASK_SETS["T2"], hidden=0)
    assert info.value.field == "strategy_options.hidden"
    with pytest.raises(ConfigError) as info:
        build(name, TASK_SETS["T2"], depth=0)
    assert info.value.field == "strategy_options.depth"
    with pytest.raises(ConfigError) as info:
        build(name, TASK_SETS["T2"], widht=3)
    assert info.value.field == "strategy_options.widht"
    # CLI values arrive as strings and are coerced.
    assert build(name, TASK_SETS["T2"], hidden="5").settings["hidden"] == 5


@pytest.mark.parametrize(
    ("name", "option", "value"),
    [
        ("soft", "lam", -0.1),
        ("cross_stitch", "alpha_self", 1.5),
        ("mmoe", "n_experts", 0),
        ("mmoe", "tower_depth", -1),
        ("ple", "n_levels", 0),
        ("ple", "n_shared_experts", 0),
        ("ple", "n_task_experts", -1),
    ],
)
def test_specific_option_validation(name: str, option: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        build(name, TASK_SETS["T2"], **{option: value})
    assert info.value.field == f"strategy_options.{option}"


@pytest.mark.parametrize("name", NAMES)
def test_task_and_input_validation(name: str) -> None:
    with pytest.raises(ConfigError, match="tasks"):
        build(name, [])
    with pytest.raises(ConfigError, match="distinct"):
        build(name, [REG1, REG1])
    with pytest.raises(ValueError, match="n_outputs"):
        build(name, [TaskSpec("bad", "regression", 0, "mse", False)])
    model = build(name, TASK_SETS["T2"])
    with pytest.raises(ValueError, match="`x` must be"):
        model(torch.randn(3, INPUT_DIM + 1))
    with pytest.raises(ValueError, match="`task` must be one of"):
        model.task_modules("nope")


@pytest.mark.parametrize("name", NAMES)
def test_regularization_only_where_declared(name: str) -> None:
    reg = build(name, TASK_SETS["T2"]).regularization()
    assert (reg is None) == (not STRATEGIES.get(name).has_regularization)


@pytest.mark.parametrize("name", NAMES)
def test_encode_decode(name: str) -> None:
    model = build(name, TASK_SETS["T4"])
    x = inputs()
    if not model.has_shared_representation:
        with pytest.raises(NotImplementedError):
            model.encode(x)
        return
    z = model.encode(x)
    assert z.shape == (N_ROWS, SMALL["hidden"])
    decoded, direct = model.decode(z), model(x)
    assert all(torch.equal(decoded[t], direct[t]) for t in model.task_names)
    # The heads read only z: the whole trunk is shared and the last trunk layer is W.
    trunk = {id(p) for p in model.trunk.parameters()}  # type: ignore[attr-defined]
    assert {id(p) for p in model.shared_parameters()} == trunk
    assert [id(p) for p in model.last_shared_parameters()] == [id(p) for p in model.trunk[-2].parameters()]  # type: ignore[attr-defined]


# --- soft sharing -------------------------------------------------------------------------------
def test_soft_regularization_zero_when_towers_equal() -> None:
    model = build("soft", TASK_SETS["T4"])
    assert model.regularization().item() > 0
    with torch.no_grad():
        for tower in model.towers[1:]:
            tower.load_state_dict(model.towers[0].state_dict())
    assert model.regularization().item() == 0.0
    with torch.no_grad():
        model.towers[2][0].bias[0] += 0.5
    # Task 2 now differs from the 3 others by 0.5 in one entry: 3 pairs · 0.25 · λ.
    assert model.regularization().item() == pytest.approx(3 * 0.25 * 1e-3, rel=1e-5)


def test_soft_regularization_formula_and_scaling() -> None:
    tasks = TASK_SETS["T4"]
    base = build("soft", tasks, lam=1e-3)
    expected = sum(
        (p - q).pow(2).sum()
        for i, j in combinations(range(len(tasks)), 2)
        for p, q in zip(base.towers[i].parameters(), base.towers[j].parameters(), strict=True)
    )
    assert torch.allclose(base.regularization(), 1e-3 * expected)
    scaled = build("soft", tasks, lam=0.5)
    assert torch.allclose(scaled.regularization(), 500 * base.regularization())
    assert build("soft", tasks, lam=0).regularization().item() == 0.0
    assert build("soft", [REG1]).regularization().item() == 0.0
    # The tie pulls towers together: its gradient reaches every tower, not the heads.
    reg = base.regularization()
    grads = torch.autograd.grad(reg, list(base.parameters()), allow_unused=True)
    by_id = {id(p): g for p, g in zip(base.parameters(), grads, strict=True)}
    assert all(is_nonzero(by_id[id(p)]) for p in base.towers.parameters())
    assert not any(is_nonzero(by_id[id(p)]) for p in base.heads.parameters())


# --- cross-stitch -------------------------------------------------------------------------------
@pytest.mark.parametrize("task_set", list(TASK_SETS))
def test_cross_stitch_init(task_set: str) -> None:
    tasks = TASK_SETS[task_set]
    n = len(tasks)
    model = build("cross_stitch", tasks, depth=3)
    assert len(model.stitches) == 3
    for alpha in model.stitches:
        assert alpha.shape == (n, n)
        if n == 1:
            assert alpha.item() == 1.0
            continue
        assert torch.allclose(alpha.diagonal(), torch.full((n,), 0.9))
        off = alpha[~torch.eye(n, dtype=torch.bool)]
        assert torch.allclose(off, torch.full_like(off, 0.1 / (n - 1)))
        assert torch.allclose(alpha.sum(1), torch.ones(n))
    custom = build("cross_stitch", tasks, alpha_self=0.6).stitches[0]
    assert torch.allclose(custom, stitch_init(n, 0.6))


def test_cross_stitch_identity_stitch_gives_independent_columns() -> None:
    model = build("cross_stitch", TASK_SETS["T2"], alpha_self=1.0)
    out = model(inputs())
    grads = grads_of(model, out["reg1"])
    # With α = I, task reg1 does not reach column 0 (task cls.2's column).
    assert not any(is_nonzero(grads[id(p)]) for p in model.columns[0].parameters())
    assert all(is_nonzero(grads[id(p)]) for p in model.columns[1].parameters())


# --- MMoE and PLE gates -------------------------------------------------------------------------
@pytest.mark.parametrize("task_set", list(TASK_SETS))
def test_mmoe_gates(task_set: str) -> None:
    model = build("mmoe", TASK_SETS[task_set], n_experts=3)
    x = inputs()
    model(x)
    assert list(model.last_gates) == model.task_names
    for t, gate in model.last_gates.items():
        assert gate.shape == (N_ROWS, 3) and not gate.requires_grad
        assert (gate >= 0).all() and torch.allclose(gate.sum(1), torch.ones(N_ROWS))
        assert model.gate_labels(t) == ["expert 1", "expert 2", "expert 3"]
    fresh = model.gate_weights(inputs(seed=5))
    assert all(torch.allclose(fresh[t].sum(1), torch.ones(N_ROWS)) for t in fresh)
    assert all(torch.equal(model.gate_weights(x)[t], model.last_gates[t]) for t in fresh)


@pytest.mark.parametrize("task_set", list(TASK_SETS))
def test_ple_gates(task_set: str) -> None:
    tasks = TASK_SETS[task_set]
    model = build("ple", tasks, n_levels=3, n_task_experts=2, n_shared_experts=3)
    model(inputs())
    assert len(model.last_level_gates) == 3 and len(model.last_shared_gates) == 2
    assert model.last_gates is model.last_level_gates[-1]
    for level in model.last_level_gates:
        for t, gate in level.items():
            assert gate.shape == (N_ROWS, 5) and not gate.requires_grad
            assert torch.allclose(gate.sum(1), torch.ones(N_ROWS))
            assert len(model.gate_labels(t)) == 5
    for gate in model.last_shared_gates:
        assert gate.shape == (N_ROWS, 2 * len(tasks) + 3)
        assert torch.allclose(gate.sum(1), torch.ones(N_ROWS))
    assert len(model.shared_gate_labels()) == 2 * len(tasks) + 3


def test_ple_ownership_by_level() -> None:
    model = build("ple", TASK_SETS["T2"], n_levels=3)
    owned = {id(p) for p in model.task_parameters("reg1")}
    first, middle, last = model.levels
    # Task experts feed the shared gate below the last level; the last level's are the task's own.
    assert not owned & {id(p) for p in first.task_experts[1].parameters()}
    assert not owned & {id(p) for p in middle.task_experts[1].parameters()}
    assert {id(p) for p in last.task_experts[1].parameters()} <= owned
    # The first level's task gate feeds middle-level task experts, which feed the shared gate.
    assert not owned & {id(p) for p in first.task_gates[1].parameters()}
    assert {id(p) for p in middle.task_gates[1].parameters()} <= owned
    assert first.shared_gate is not None and middle.shared_gate is not None and last.shared_gate is None
