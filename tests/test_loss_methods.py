"""Loss-weighting methods (and DB-MTL) on a tiny real model, driven by a few-line training loop.

The loop calls the hooks in the order a trainer does: losses → ``loss()`` → backward →
``optimiser.step()`` → ``after_step()``, and ``on_epoch_end()`` after each epoch. For gradient
methods (DB-MTL) it builds G from ``transform_losses`` on the shared parameters and applies
``method(G, ctx)`` as their gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from _asserts import declaring
from torch import nn

from mtl_core.balancing import METHODS, BalancingMethod, StepContext, make_method
from mtl_core.errors import ConfigError

#: Every method whose class declares positive weights (every loss-weighting method, and DB-MTL).
POSITIVE_WEIGHTS = declaring(METHODS, positive_weights=True)
LOSS_METHODS = declaring(METHODS, kind="loss")


# --- a tiny multi-task model and a trainer-like loop ---------------------------------------------
class TinyMTL(nn.Module):
    """Shared two-layer trunk, one linear head per task; MSE per task."""

    def __init__(self, n_tasks: int, n_in: int = 4, hidden: int = 8) -> None:
        super().__init__()
        self.first = nn.Linear(n_in, hidden)
        self.last = nn.Linear(hidden, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, 1) for _ in range(n_tasks))

    def shared(self) -> list[nn.Parameter]:
        return [*self.first.parameters(), *self.last.parameters()]

    def losses(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        features = torch.tanh(self.last(torch.tanh(self.first(x))))
        predictions = torch.cat([head(features) for head in self.heads], dim=1)
        return (predictions - targets).pow(2).mean(dim=0)


def make_data(n_tasks: int, n: int = 64, n_in: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_in, generator=generator)
    mixing = torch.randn(n_in, n_tasks, generator=generator)
    return x, torch.sin(x @ mixing)


def train(
    method: BalancingMethod,
    n_tasks: int,
    *,
    epochs: int = 2,
    steps_per_epoch: int = 3,
    loss_scales: list[float] | None = None,
    lr: float = 0.05,
    observe: Callable[[BalancingMethod, torch.Tensor], None] | None = None,
    seed: int = 0,
) -> list[torch.Tensor | None]:
    """Run a few steps; return ``method.weights`` after every step (reset to None before each)."""
    torch.manual_seed(seed)
    model = TinyMTL(n_tasks)
    x, targets = make_data(n_tasks, seed=seed)
    scales = torch.tensor(loss_scales if loss_scales is not None else [1.0] * n_tasks)
    optimiser = torch.optim.SGD([*model.parameters(), *method.parameters()], lr=lr)
    batch = x.shape[0] // steps_per_epoch
    recorded: list[torch.Tensor | None] = []
    step = 0
    for epoch in range(epochs):
        epoch_losses = []
        for index in range(steps_per_epoch):
            xb, yb = x[index * batch : (index + 1) * batch], targets[index * batch : (index + 1) * batch]

            def recompute(xb: torch.Tensor = xb, yb: torch.Tensor = yb) -> torch.Tensor:
                with torch.no_grad():
                    return model.losses(xb, yb) * scales

            losses = model.losses(xb, yb) * scales
            ctx = StepContext(
                step=step,
                epoch=epoch,
                losses=losses,
                shared_parameters=model.shared(),
                last_shared_parameters=list(model.last.parameters()),
                recompute_losses=recompute,
            )
            method.weights = None
            optimiser.zero_grad()
            if method.kind == "gradient":
                _gradient_step(method, model, losses, ctx)
            else:
                objective = method.loss(losses, ctx)
                assert objective.dim() == 0 and torch.isfinite(objective)
                objective.backward()
            optimiser.step()
            method.after_step(ctx)
            recorded.append(method.weights)
            if observe is not None:
                observe(method, losses.detach())
            epoch_losses.append(losses.detach())
            step += 1
        method.on_epoch_end(epoch, torch.stack(epoch_losses).mean(dim=0))
    for parameter in model.parameters():
        assert torch.isfinite(parameter).all()
    return recorded


def _gradient_step(method: BalancingMethod, model: TinyMTL, losses: torch.Tensor, ctx: StepContext) -> None:
    shared = model.shared()
    transformed = method.transform_losses(losses)
    rows = []
    for task_loss in transformed:
        grads = torch.autograd.grad(task_loss, shared, retain_graph=True)
        rows.append(torch.cat([g.flatten() for g in grads]))
    direction = method(torch.stack(rows), ctx)
    offset = 0
    for parameter in shared:
        parameter.grad = direction[offset : offset + parameter.numel()].view_as(parameter).clone()
        offset += parameter.numel()
    heads = [p for head in model.heads for p in head.parameters()]
    for parameter, grad in zip(heads, torch.autograd.grad(transformed.sum(), heads), strict=True):
        parameter.grad = grad


# --- properties shared by every method -----------------------------------------------------------
@pytest.mark.parametrize("name", POSITIVE_WEIGHTS)
def test_weights_positive_finite_and_recorded_every_step(name: str) -> None:
    method = make_method(name, 3, generator=torch.Generator().manual_seed(1))
    recorded = train(method, 3)
    assert len(recorded) == 6
    for weights in recorded:
        assert weights is not None, "weights must be set on every step"
        assert weights.shape == (3,)
        assert torch.isfinite(weights).all() and (weights > 0).all()


@pytest.mark.parametrize("name", POSITIVE_WEIGHTS)
def test_single_task_is_finite(name: str) -> None:
    recorded = train(make_method(name, 1), 1)
    assert all(w is not None and w.shape == (1,) and torch.isfinite(w).all() and (w > 0).all() for w in recorded)


@pytest.mark.parametrize("name", LOSS_METHODS)
def test_zero_losses_give_finite_objective_and_gradients(name: str) -> None:
    method = make_method(name, 2)
    trunk = nn.Linear(3, 2)
    for step in range(3):
        trunk.zero_grad()
        losses = trunk(torch.randn(5, 3)).mean(dim=0) * 0.0  # exact zeros, still on the graph
        ctx = StepContext(step, 0, losses, list(trunk.parameters()), list(trunk.parameters()), lambda: torch.zeros(2))
        objective = method.loss(losses, ctx)
        objective.backward()
        method.after_step(ctx)
        method.on_epoch_end(step, torch.zeros(2))
        assert torch.isfinite(objective)
        assert all(torch.isfinite(p.grad).all() for p in trunk.parameters())
        assert method.weights is not None and torch.isfinite(method.weights).all() and (method.weights > 0).all()


@pytest.mark.parametrize("name", LOSS_METHODS)
def test_objective_follows_the_losses_dtype(name: str) -> None:
    method = make_method(name, 2)
    trunk = nn.Linear(3, 2).double()
    losses = trunk(torch.randn(4, 3, dtype=torch.float64)).pow(2).mean(dim=0)
    ctx = StepContext(0, 0, losses, list(trunk.parameters()), list(trunk.parameters()), lambda: losses.detach())
    objective = method.loss(losses, ctx)
    assert objective.dtype == torch.float64
    objective.backward()
    method.after_step(ctx)


@pytest.mark.parametrize(
    ("name", "options", "field"),
    [
        ("static", {"weights": [1.0, 2.0, 3.0]}, "method_options.weights"),
        ("static", {"weights": [1.0, -2.0]}, "method_options.weights"),
        ("static", {"weights": [0.0, 0.0]}, "method_options.weights"),
        ("uw", {"init": "big"}, "method_options.init"),
        ("gradnorm", {"alpha": -1.0}, "method_options.alpha"),
        ("gradnorm", {"lr": -0.1}, "method_options.lr"),
        ("dwa", {"temperature": 0.0}, "method_options.temperature"),
        ("famo", {"weight_decay": 5.0}, "method_options.weight_decay"),
        ("db_mtl", {"beta": 1.5}, "method_options.beta"),
        ("rlw", {"temperature": 1.0}, "method_options.temperature"),
    ],
)
def test_option_errors_name_the_field(name: str, options: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as error:
        make_method(name, 2, **options)
    assert error.value.field == field
    assert f"`{field}`" in str(error.value)


@pytest.mark.parametrize("name", POSITIVE_WEIGHTS)
def test_described_for_the_dashboard(name: str) -> None:
    info = METHODS.get(name).describe()
    assert info["name"] == name and info["description"] and info["paper"]
    assert info["kind"] in ("loss", "gradient")


def test_built_in_methods_declare_positive_weights() -> None:
    # A flag dropped by mistake would silently drop the tests above.
    assert {"ew", "static", "uw", "gradnorm", "dwa", "rlw", "famo"} <= set(LOSS_METHODS)
    assert set(LOSS_METHODS) | {"db_mtl"} <= set(POSITIVE_WEIGHTS)


# --- static --------------------------------------------------------------------------------------
def test_static_objective_is_the_weighted_sum() -> None:
    method = make_method("static", 3, weights="2, 0.5, 0")
    losses = torch.tensor([1.5, 4.0, 7.0], requires_grad=True)
    objective = method.loss(losses, StepContext(0, 0, losses, [], []))
    assert objective.item() == pytest.approx(2 * 1.5 + 0.5 * 4.0)
    objective.backward()
    assert torch.equal(losses.grad, torch.tensor([2.0, 0.5, 0.0]))
    assert torch.equal(method.weights, torch.tensor([2.0, 0.5, 0.0]))


def test_static_default_is_all_ones() -> None:
    method = make_method("static", 2)
    losses = torch.tensor([3.0, 5.0])
    assert method.loss(losses, StepContext(0, 0, losses, [], [])).item() == pytest.approx(8.0)
    assert torch.equal(method.weights, torch.ones(2))


# --- UW ------------------------------------------------------------------------------------------
def test_uw_objective_form_at_init() -> None:
    method = make_method("uw", 2, init=0.5)
    losses = torch.tensor([2.0, 3.0])
    objective = method.loss(losses, StepContext(0, 0, losses, [], []))
    expected = sum(0.5 * math.exp(-0.5) * value + 0.25 for value in (2.0, 3.0))
    assert objective.item() == pytest.approx(expected, rel=1e-6)
    assert method.weights == pytest.approx(torch.full((2,), 0.5 * math.exp(-0.5)))


def test_uw_log_variances_reach_the_closed_form_optimum() -> None:
    fixed = torch.tensor([0.5, 2.0, 8.0])
    method = make_method("uw", 3)
    (log_vars,) = method.parameters()
    optimiser = torch.optim.SGD(method.parameters(), lr=0.5)
    for step in range(300):
        optimiser.zero_grad()
        method.loss(fixed, StepContext(step, 0, fixed, [], [])).backward()
        optimiser.step()
    assert log_vars.detach() == pytest.approx(fixed.log(), abs=1e-4)
    assert method.weights == pytest.approx(1 / (2 * fixed), rel=1e-3)


# --- DWA -----------------------------------------------------------------------------------------
def test_dwa_closed_form_weights() -> None:
    method = make_method("dwa", 3, temperature=2.0)
    losses = torch.ones(3)
    ctx = StepContext(0, 0, losses, [], [])
    epoch_means = [torch.tensor([1.0, 2.0, 4.0]), torch.tensor([0.5, 2.0, 3.0]), torch.tensor([0.5, 1.0, 3.0])]

    method.loss(losses, ctx)
    assert torch.equal(method.weights, torch.ones(3))  # epoch 0
    method.on_epoch_end(0, epoch_means[0])
    method.loss(losses, ctx)
    assert torch.equal(method.weights, torch.ones(3))  # epoch 1

    for epoch in (1, 2):
        method.on_epoch_end(epoch, epoch_means[epoch])
        ratios = (epoch_means[epoch] / epoch_means[epoch - 1]).tolist()
        exps = [math.exp(r / 2.0) for r in ratios]
        expected = torch.tensor([3 * e / sum(exps) for e in exps])
        method.loss(losses, ctx)
        assert method.weights == pytest.approx(expected, rel=1e-6)
        assert method.weights.sum().item() == pytest.approx(3.0)
    # the slowest-falling task (ratio 1) outweighs the fastest (ratio 0.5)
    assert method.weights[2] > method.weights[1]


def test_dwa_rejects_wrong_number_of_epoch_means() -> None:
    with pytest.raises(ValueError, match="mean_train_losses"):
        make_method("dwa", 3).on_epoch_end(0, torch.ones(2))


# --- RLW -----------------------------------------------------------------------------------------
def test_rlw_weights_on_scaled_simplex_and_reproducible() -> None:
    def draws(seed: int) -> torch.Tensor:
        method = make_method("rlw", 4, generator=torch.Generator().manual_seed(seed))
        losses = torch.ones(4)
        out = []
        for step in range(5):
            method.loss(losses, StepContext(step, 0, losses, [], []))
            out.append(method.weights)
        return torch.stack(out)

    first, again, other = draws(7), draws(7), draws(8)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert (first > 0).all()
    assert first.sum(dim=1) == pytest.approx(torch.full((5,), 4.0))
    assert not torch.equal(first[0], first[1])  # fresh draw every step


# --- GradNorm ------------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.0, 1.5])
def test_gradnorm_balances_weighted_gradient_norms(alpha: float) -> None:
    method = make_method("gradnorm", 2, alpha=alpha)
    ratios: list[float] = []

    def observe(method: BalancingMethod, losses: torch.Tensor) -> None:
        weighted = method.weights * method.grad_norms
        ratios.append((weighted.max() / weighted.min()).item())

    recorded = train(method, 2, epochs=4, steps_per_epoch=20, loss_scales=[1.0, 100.0], lr=1e-3, observe=observe)
    assert ratios[0] > 20  # the 100× task dominates at the start
    assert ratios[-1] < ratios[0] / 5
    assert max(ratios[-10:]) < min(ratios[:10])
    for weights in recorded:
        assert (weights > 0).all()
        assert weights.sum().item() == pytest.approx(2.0, rel=1e-5)
    assert recorded[-1][0] > recorded[-1][1]  # the small-gradient task gets the larger weight


def test_gradnorm_objective_uses_this_steps_weights() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(3, 2)
    method = make_method("gradnorm", 2)
    for step in range(3):
        losses = layer(torch.randn(6, 3)).pow(2).mean(dim=0) * torch.tensor([1.0, 10.0])
        before = method.current_weights()
        ctx = StepContext(step, 0, losses, list(layer.parameters()), list(layer.parameters()))
        objective = method.loss(losses, ctx)
        assert torch.equal(method.weights, before)
        assert objective.item() == pytest.approx((before * losses).sum().item(), rel=1e-6)
        assert not torch.equal(method.current_weights(), before)  # updated for the next step


# --- FAMO ----------------------------------------------------------------------------------------
def test_famo_objective_gradient_is_a_convex_combination() -> None:
    method = make_method("famo", 3)
    losses = torch.tensor([0.5, 2.0, 4.0], requires_grad=True)
    method.loss(losses, StepContext(0, 0, losses, [], [])).backward()
    z = method.weights
    c = (z / losses.detach()).sum()
    assert losses.grad == pytest.approx(z / (c * losses.detach()), rel=1e-5)
    assert losses.grad.sum().item() == pytest.approx(1.0, rel=1e-5)


def test_famo_stalled_task_gains_weight() -> None:
    method = make_method("famo", 2)
    current = torch.tensor([1.0, 1.0])
    for step in range(30):
        losses = current.clone().requires_grad_(True)
        following = current * torch.tensor([0.9, 1.0])  # task 0 falls 10 % per step, task 1 stalls
        ctx = StepContext(step, 0, losses, [], [], recompute_losses=lambda following=following: following)
        method.loss(losses, ctx).backward()
        method.after_step(ctx)
        current = following
        assert method.weights.sum().item() == pytest.approx(1.0, rel=1e-6)
        assert (method.weights > 0).all()
    final = method.current_weights()
    assert final[1] > 0.6 > final[0]


def test_famo_weights_on_simplex_during_training() -> None:
    recorded = train(make_method("famo", 3), 3, epochs=2, steps_per_epoch=4)
    for weights in recorded:
        assert weights.sum().item() == pytest.approx(1.0, rel=1e-6)
    assert not torch.equal(recorded[0], recorded[-1])  # the logits did move


def test_famo_needs_a_second_forward() -> None:
    method = make_method("famo", 2)
    losses = torch.ones(2, requires_grad=True)
    ctx = StepContext(0, 0, losses, [], [], recompute_losses=None)
    method.loss(losses, ctx)
    with pytest.raises(ValueError, match="recompute_losses"):
        method.after_step(ctx)


# --- DB-MTL --------------------------------------------------------------------------------------
def test_db_mtl_scaled_ema_gradients_have_equal_norms() -> None:
    generator = torch.Generator().manual_seed(3)
    first = torch.randn(3, 6, generator=generator) * torch.tensor([[1.0], [10.0], [0.1]])
    second = torch.randn(3, 6, generator=generator)
    method = make_method("db_mtl", 3, beta=0.9)

    direction = method(first)
    norms = first.norm(dim=1)
    assert method.weights == pytest.approx(norms.max() / norms, rel=1e-5)
    assert direction == pytest.approx((method.weights[:, None] * first).sum(dim=0), rel=1e-5, abs=1e-6)

    direction = method(second)
    ema = 0.9 * first + 0.1 * second
    scaled = method.weights[:, None] * ema
    assert scaled.norm(dim=1) == pytest.approx(torch.full((3,), ema.norm(dim=1).max().item()), rel=1e-5)
    assert direction == pytest.approx(scaled.sum(dim=0), rel=1e-5, abs=1e-6)
    assert torch.isfinite(direction).all() and (method.weights >= 1).all()


def test_db_mtl_zero_gradient_is_safe() -> None:
    grads = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 2.0]])
    method = make_method("db_mtl", 2)
    direction = method(grads)
    assert torch.isfinite(direction).all()
    assert direction == pytest.approx(grads[1])
    assert torch.equal(method.weights, torch.ones(2))


def test_db_mtl_uses_log_losses() -> None:
    method = make_method("db_mtl", 3)
    losses = torch.tensor([0.0, 1.0, 100.0])
    assert method.transform_losses(losses) == pytest.approx(torch.log(losses + 1e-8))

    # log removes a task's loss scale: multiplying a loss by 100 leaves the direction unchanged
    def first_direction(scales: list[float]) -> torch.Tensor:
        torch.manual_seed(0)
        model = TinyMTL(2)
        x, targets = make_data(2)
        transformed = make_method("db_mtl", 2).transform_losses(model.losses(x, targets) * torch.tensor(scales))
        rows = [torch.cat([g.flatten() for g in torch.autograd.grad(t, model.shared(), retain_graph=True)])
                for t in transformed]
        return make_method("db_mtl", 2)(torch.stack(rows))

    assert first_direction([1.0, 100.0]) == pytest.approx(first_direction([1.0, 1.0]), rel=1e-4, abs=1e-6)
