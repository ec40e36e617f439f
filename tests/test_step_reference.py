"""The trainer's gradient-method step against a straightforward reference.

The reference is written out by hand on a copy of the model: per-task ``autograd.grad`` on the
shared and the task's own parameters, the method's direction from :func:`mtl_core.balancing.combine`,
then SGD with momentum 0.9 applied by hand. Whatever the trainer does to save copies (``.grad`` as
views of the direction, one vmapped backward, rows written in place), the parameters it produces must
be the same.
"""

from __future__ import annotations

import copy

import pytest
import torch

from mtl_core.balancing import combine
from mtl_core.config import TrainConfig
from mtl_core.training.probes import cosine_matrix, gradient_statistics
from mtl_core.training.trainer import Trainer, task_losses

LR = 0.05
MOMENTUM = 0.9  # the trainer's SGD momentum


def _trainer(n_tasks: int, strategy: str, method: str, mode: str) -> Trainer:
    config = TrainConfig.from_dict({
        "suite": "planted",
        "suite_options": {"n_samples": 200, "dim": 8, "n_tasks": n_tasks, "n_groups": 2},
        "strategy": strategy,
        "strategy_options": {"hidden": 16, "depth": 2},
        "method": method,
        "optimizer": "sgd",
        "lr": LR,
        "batch_size": 64,
        "jacobian_mode": mode,
        "seed": 0,
    })
    return Trainer(config)


def _reference_steps(trainer: Trainer, method: str, batches: list[tuple]) -> list[torch.Tensor]:
    """The parameters (in ``model.parameters()`` order) after SGD steps taken by hand on a copy."""
    model = copy.deepcopy(trainer.model)
    names = trainer.task_names
    shared = model.shared_parameters()
    own = [model.task_parameters(name) for name in names]
    momentum: dict[int, torch.Tensor] = {}
    for x, y, masks in batches:
        losses = task_losses(model(x), y, masks, trainer.tasks)
        rows, grads = [], {}
        for i in range(len(names)):
            task_grads = torch.autograd.grad(losses[i], shared + own[i], retain_graph=True, allow_unused=True)
            task_grads = [torch.zeros_like(p) if g is None else g for p, g in zip(shared + own[i], task_grads, strict=True)]
            rows.append(torch.cat([g.reshape(-1) for g in task_grads[: len(shared)]]))
            grads.update({id(p): g for p, g in zip(own[i], task_grads[len(shared):], strict=True)})
        direction = combine(method, torch.stack(rows))
        offset = 0
        for p in shared:
            grads[id(p)] = direction[offset : offset + p.numel()].reshape(p.shape)
            offset += p.numel()
        with torch.no_grad():
            for p in model.parameters():
                g = grads[id(p)]
                momentum[id(p)] = g.clone() if id(p) not in momentum else MOMENTUM * momentum[id(p)] + g
                p -= LR * momentum[id(p)]
    return [p.detach() for p in model.parameters()]


def _batches(trainer: Trainer, count: int) -> list[tuple]:
    data = trainer.data.train
    out = []
    for k in range(count):
        rows = slice(64 * k, 64 * (k + 1))
        out.append((data.x[rows], {t: v[rows] for t, v in data.y.items()}, {t: v[rows] for t, v in data.masks.items()}))
    return out


@pytest.mark.parametrize("mode", ["loop", "batched", "representation"])
@pytest.mark.parametrize("n_tasks", [2, 4])
def test_upgrad_step_equals_the_reference(n_tasks: int, mode: str) -> None:
    trainer = _trainer(n_tasks, "hard", "upgrad", mode)
    batches = _batches(trainer, 2)  # two steps: the second one reads the momentum of the first
    expected = _reference_steps(trainer, "upgrad", batches)
    for x, y, masks in batches:
        trainer._train_step(x, y, masks, epoch=1)
    for got, want in zip(trainer.model.parameters(), expected, strict=True):
        torch.testing.assert_close(got.detach(), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", ["loop", "batched"])
@pytest.mark.parametrize("strategy", ["mmoe", "cross_stitch", "ple"])
def test_mgda_step_equals_the_reference_on_other_strategies(strategy: str, mode: str) -> None:
    """Towers (MMoE, PLE: one separate backward for own parameters in batched mode) and small heads
    (cross-stitch: folded into the vmapped backward)."""
    trainer = _trainer(3, strategy, "mgda", mode)
    batches = _batches(trainer, 2)
    expected = _reference_steps(trainer, "mgda", batches)
    for x, y, masks in batches:
        trainer._train_step(x, y, masks, epoch=1)
    for got, want in zip(trainer.model.parameters(), expected, strict=True):
        torch.testing.assert_close(got.detach(), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", ["loop", "batched"])
def test_shared_gradients_are_views_of_one_direction(mode: str) -> None:
    """No copy of the direction: every shared ``.grad`` lies in one buffer, at its parameter's offset."""
    trainer = _trainer(3, "hard", "upgrad", mode)
    for group in trainer.optimizer.param_groups:
        group["lr"] = 0.0
    ((x, y, masks),) = _batches(trainer, 1)
    trainer._train_step(x, y, masks, epoch=1)
    grads = [p.grad for p in trainer.shared]
    base = grads[0].untyped_storage().data_ptr()
    assert all(g.untyped_storage().data_ptr() == base for g in grads)
    offsets = [g.storage_offset() for g in grads]
    assert offsets == [sum(p.numel() for p in trainer.shared[:k]) for k in range(len(grads))]


def test_probe_statistics_from_the_gramian_equal_the_direct_formula() -> None:
    """The gradient probe takes cosines and norms from a float32 Gramian (no float64 copy of G)."""
    generator = torch.Generator().manual_seed(0)
    grads = torch.randn(5, 40_000, generator=generator)
    grads[1] = -2.0 * grads[0] + 0.01 * torch.randn(40_000, generator=generator)  # nearly opposite
    grads[3] = 0.0  # a zero row: cosine 0 with the others, 1 with itself
    cos, norms = gradient_statistics(grads)
    wide = grads.double()
    torch.testing.assert_close(cos, cosine_matrix(wide), rtol=0, atol=1e-5)  # float32 GEMM: ~√P·eps
    torch.testing.assert_close(norms, wide.norm(dim=1), rtol=1e-5, atol=0)
    assert cos.dtype == norms.dtype == torch.float64
    grads[2, 7] = float("nan")  # shows as NaN, as the direct formula shows it
    cos, norms = gradient_statistics(grads)
    assert bool(norms[2].isnan()) and bool(cos[2, 0].isnan()) and float(norms[0]) > 0


@pytest.mark.parametrize(("strategy", "n_tasks", "passes"), [("hard", 2, 1), ("mmoe", 4, 2)])
def test_batched_mode_folds_small_heads_into_its_one_backward(
    strategy: str, n_tasks: int, passes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hard sharing's linear heads (34 parameters against 416 shared) ride in the vmapped backward:
    one pass. MMoE's towers and gates (1 284 against 1 664 shared at T = 4) get one separate
    backward, since folding them in would compute T − 1 zero rows of each."""
    trainer = _trainer(n_tasks, strategy, "upgrad", "batched")
    ((x, y, masks),) = _batches(trainer, 1)
    real = torch.autograd.grad
    calls: list[int] = []

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counting)
    trainer._train_step(x, y, masks, epoch=1)
    assert len(calls) == passes
