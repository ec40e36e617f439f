"""TAG inter-task affinity, measured during a hard-sharing run.

Fifty, C., Amid, E., Zhao, Z., Yu, T., Anil, R., Finn, C. (2021). "Efficiently Identifying Task
Groupings for Multi-Task Learning". NeurIPS 2021.

At a lookahead step, for each task i the shared parameters take one step with task i's gradient
only, giving ``θ'ₛ|i``: by default the paper's ``θₛ − η∇Lᵢ`` with the run's learning rate η
(``tag_lookahead: sgd``), or one step of the run's own optimiser with its state
(``tag_lookahead: optimizer``; with Adam the momentum, 90 % of the step, is the same for every
task and the task-specific part is lost in the noise: on ``planted`` it recovered the planted
groups from one run in 2 of 6 seeds against 5 of 6 for ``sgd``). Every task's loss is then
evaluated on the *same* batch:

    Z_{i→j} = 1 − Lⱼ(θ'ₛ|i) / Lⱼ(θₛ)

(positive: a step for task i lowers task j's loss). Row i is the *source* task, column j the
*target*. One training run yields the whole T × T matrix; it is averaged over the lookahead steps
of each epoch. Task heads are not moved, as in the paper.

How the ``optimizer`` lookahead leaves no trace: for the trainer's optimisers (Adam, AdamW, SGD with momentum)
the T lookahead parameter sets are computed in **closed form** from the optimiser's hyper-parameters
and its state for the shared parameters (Adam's moments and step count, SGD's momentum buffer, as
``torch.optim`` updates them), as new tensors: neither the parameters, their ``.grad`` nor the
optimiser state are written. Any other optimiser class gets a *shadow* copy (same class, group
hyper-parameters and a deep copy of the state) that steps the parameters, which are then restored
bit for bit. The T losses are evaluated with one vectorised forward pass (``torch.func.vmap`` over
``functional_call``, falling back to T passes), under a forked RNG so that dropout draws leave the
run's random stream alone.

Cost per lookahead step: the update and T forward passes, plus — for loss-weighting methods, which
never form the per-task gradients — the per-task Jacobian that the trainer computes on probe steps.

The probe registers itself as ``PROBE_FACTORIES["tag"]``: it is on when ``config.tag`` is true, with
a lookahead every ``config.tag_interval`` steps when the config has that field, else every
:data:`DEFAULT_TAG_INTERVAL` steps (chosen with ``benchmarks/probes.py`` to keep a TAG run within
1.5 × the time of the same run without it).

Records: ``affinity`` (the epoch's mean matrix, emitted at the end of each epoch; ``extra`` holds the
number of lookahead steps averaged and the interval) and ``affinity_step`` (one lookahead step's
matrix).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.func import functional_call, vmap

from mtl_core.training.events import ProbeEvent
from mtl_core.training.probes import PROBE_FACTORIES, Probe, ProbeContext

__all__ = [
    "TagProbe",
    "DEFAULT_TAG_INTERVAL",
    "lookahead_parameters",
    "sgd_lookahead_parameters",
    "LOOKAHEADS",
    "lookahead_losses",
    "affinity_matrix",
    "raw_gradient_scale",
]

#: Lookahead every this many steps unless the config says otherwise (see benchmarks/probes.py).
DEFAULT_TAG_INTERVAL = 5

LossFunction = Callable[[dict[str, torch.Tensor]], torch.Tensor]


# --- the lookahead update ---------------------------------------------------------------------------


def _group_of(optimizer: torch.optim.Optimizer, param: torch.nn.Parameter) -> dict[str, Any]:
    for group in optimizer.param_groups:
        if any(p is param for p in group["params"]):
            return group
    raise ValueError("`shared` must only hold parameters that `optimizer` updates")


def _scalar(value: Any) -> float:
    return float(value.item()) if isinstance(value, torch.Tensor) else float(value)


def _adam_lookahead(param: torch.Tensor, grads: torch.Tensor, group: dict[str, Any], state: dict[str, Any]) -> torch.Tensor:
    """``torch.optim.Adam`` / ``AdamW``'s step of ``param`` for each row of ``grads`` (T × shape)."""
    lr, eps, weight_decay = _scalar(group["lr"]), _scalar(group["eps"]), _scalar(group["weight_decay"])
    beta1, beta2 = (_scalar(b) for b in group["betas"])
    theta = param.detach().unsqueeze(0)
    grads = -grads if group.get("maximize", False) else grads
    if weight_decay != 0:
        if group.get("decoupled_weight_decay", False):
            theta = theta * (1 - lr * weight_decay)
        else:
            grads = grads + weight_decay * theta
    zeros = torch.zeros_like(param)
    step = (_scalar(state["step"]) if "step" in state else 0.0) + 1
    exp_avg = state.get("exp_avg", zeros).unsqueeze(0).lerp(grads, 1 - beta1)
    exp_avg_sq = (state.get("exp_avg_sq", zeros).unsqueeze(0) * beta2).addcmul(grads, grads, value=1 - beta2)
    if group.get("amsgrad", False):
        exp_avg_sq = torch.maximum(state.get("max_exp_avg_sq", zeros).unsqueeze(0), exp_avg_sq)
    step_size = lr / (1 - beta1**step)
    denom = exp_avg_sq.sqrt() / (1 - beta2**step) ** 0.5 + eps
    return theta.addcdiv(exp_avg, denom, value=-step_size)


def _sgd_lookahead(param: torch.Tensor, grads: torch.Tensor, group: dict[str, Any], state: dict[str, Any]) -> torch.Tensor:
    """``torch.optim.SGD``'s step (momentum, dampening, Nesterov, weight decay) for each row of ``grads``."""
    lr, momentum, weight_decay = _scalar(group["lr"]), _scalar(group["momentum"]), _scalar(group["weight_decay"])
    theta = param.detach().unsqueeze(0)
    grads = -grads if group.get("maximize", False) else grads
    if weight_decay != 0:
        grads = grads + weight_decay * theta
    if momentum != 0:
        buffer = state.get("momentum_buffer")
        if buffer is None:
            buffer = grads
        else:
            buffer = buffer.unsqueeze(0) * momentum + (1 - _scalar(group["dampening"])) * grads
        grads = grads + momentum * buffer if group.get("nesterov", False) else buffer
    return theta.add(grads, alpha=-lr)


_CLOSED_FORMS: dict[type, Callable[[torch.Tensor, torch.Tensor, dict[str, Any], dict[str, Any]], torch.Tensor]] = {
    torch.optim.Adam: _adam_lookahead,
    torch.optim.AdamW: _adam_lookahead,
    torch.optim.SGD: _sgd_lookahead,
}


def _copy_state(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v.clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v) for k, v in state.items()}


@torch.no_grad()
def _shadow_lookahead(
    optimizer: torch.optim.Optimizer, shared: list[torch.nn.Parameter], rows: list[torch.Tensor]
) -> list[torch.Tensor]:
    """Any optimiser class: a shadow optimiser of the same class and group hyper-parameters over
    ``shared``, given a copy of the run optimiser's state for them, steps once per task; the
    parameters and their ``.grad`` are restored afterwards."""
    groups = []
    for group in optimizer.param_groups:
        members = [p for p in group["params"] if any(p is q for q in shared)]
        if members:
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": members})
    shadow = type(optimizer)(groups)
    saved_values = [p.detach().clone() for p in shared]
    saved_grads = [p.grad for p in shared]
    saved_state = {id(p): _copy_state(optimizer.state[p]) for p in shared if p in optimizer.state}
    results: list[list[torch.Tensor]] = [[] for _ in shared]
    try:
        for i in range(rows[0].shape[0]):
            shadow.state.clear()
            for p, row in zip(shared, rows):
                if id(p) in saved_state:
                    shadow.state[p] = _copy_state(saved_state[id(p)])
                p.grad = row[i].clone()
            shadow.step()
            for k, (p, value) in enumerate(zip(shared, saved_values)):
                results[k].append(p.detach().clone())
                p.copy_(value)
    finally:
        for p, value, grad in zip(shared, saved_values, saved_grads):
            p.copy_(value)
            p.grad = grad
    return [torch.stack(values) for values in results]


@torch.no_grad()
def lookahead_parameters(
    optimizer: torch.optim.Optimizer, shared: Sequence[torch.nn.Parameter], grads: torch.Tensor
) -> list[torch.Tensor]:
    """``θ'ₛ|i`` for every task i: one step of ``optimizer`` (its class, hyper-parameters and
    current state) on the ``shared`` parameters with gradient ``grads[i]`` (row i of the T × P
    matrix, flattened in the order of ``shared``).

    Returns one tensor per shared parameter, of shape ``(T, *p.shape)``. Nothing is modified:
    parameters, ``.grad`` and the optimiser state are as they were.
    """
    shared = list(shared)
    if not shared:
        raise ValueError("`shared` must hold at least one parameter")
    n_params = sum(p.numel() for p in shared)
    if grads.dim() != 2 or grads.shape[1] != n_params:
        raise ValueError(f"`grads` must be a (tasks × {n_params}) matrix, got shape {tuple(grads.shape)}")
    rows: list[torch.Tensor] = []
    offset = 0
    for p in shared:
        rows.append(grads[:, offset : offset + p.numel()].reshape(grads.shape[0], *p.shape).to(p))
        offset += p.numel()
    closed_form = _CLOSED_FORMS.get(type(optimizer))
    if closed_form is None:
        return _shadow_lookahead(optimizer, shared, rows)
    return [closed_form(p, row, _group_of(optimizer, p), optimizer.state.get(p, {})) for p, row in zip(shared, rows)]


@torch.no_grad()
def sgd_lookahead_parameters(
    optimizer: torch.optim.Optimizer, shared: Sequence[torch.nn.Parameter], grads: torch.Tensor
) -> list[torch.Tensor]:
    """``θ'ₛ|i = θₛ − η ∇Lᵢ`` for every task i (Fifty et al. 2021, Eq. 1), with ``η`` the learning
    rate of each parameter's group in ``optimizer`` and ``∇Lᵢ`` row i of ``grads`` (T × P, in the
    order of ``shared``). The optimiser's state (momentum, second moments) is not used: the step
    is task i's own. Returns one ``(T, *p.shape)`` tensor per shared parameter; nothing is modified."""
    shared = list(shared)
    n_params = sum(p.numel() for p in shared)
    if grads.dim() != 2 or grads.shape[1] != n_params:
        raise ValueError(f"`grads` must be a (tasks × {n_params}) matrix, got shape {tuple(grads.shape)}")
    out, offset = [], 0
    for p in shared:
        rows = grads[:, offset : offset + p.numel()].reshape(grads.shape[0], *p.shape).to(p)
        out.append(p.detach().unsqueeze(0) - _scalar(_group_of(optimizer, p)["lr"]) * rows)
        offset += p.numel()
    return out


#: TAG lookahead rules by name (``TrainConfig.tag_lookahead``).
LOOKAHEADS = {"sgd": sgd_lookahead_parameters, "optimizer": lookahead_parameters}


# --- the losses after the lookahead -----------------------------------------------------------------


@torch.no_grad()
def lookahead_losses(
    model: torch.nn.Module,
    shared: Sequence[torch.nn.Parameter],
    stacked: Sequence[torch.Tensor],
    x: torch.Tensor,
    loss_fn: LossFunction,
) -> torch.Tensor:
    """``L[i, j] = Lⱼ`` with the shared parameters set to ``stacked[·][i]`` (the other parameters as
    they are), on input ``x``; ``loss_fn`` maps the model's outputs to the T losses.

    One vectorised forward pass (``vmap``) when the model allows it, else one pass per row; buffers
    (e.g. running statistics) and the RNG stream are left untouched either way.
    """
    names = {id(p): name for name, p in model.named_parameters()}
    batched = {names[id(p)]: values for p, values in zip(shared, stacked)}
    n_rows = int(stacked[0].shape[0])
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        try:
            return vmap(lambda params: loss_fn(functional_call(model, params, (x,))))(batched)
        except RuntimeError:
            # e.g. a layer that updates a buffer in place: run the rows one by one on copies.
            rows = []
            for i in range(n_rows):
                values = {name: tensor[i] for name, tensor in batched.items()}
                values.update({name: b.clone() for name, b in model.named_buffers()})
                rows.append(loss_fn(functional_call(model, values, (x,))))
            return torch.stack(rows)


def affinity_matrix(base_losses: torch.Tensor, lookahead: torch.Tensor) -> torch.Tensor:
    """``Z[i, j] = 1 − lookahead[i, j] / base_losses[j]`` (float64). A column whose base loss is not
    positive and finite (e.g. no labelled row of that task in the batch) is NaN."""
    n_tasks = int(base_losses.shape[0])
    if base_losses.dim() != 1 or lookahead.shape != (n_tasks, n_tasks):
        raise ValueError(
            f"`lookahead` must be a ({n_tasks} × {n_tasks}) matrix for {n_tasks} base losses, got shape {tuple(lookahead.shape)}"
        )
    after = lookahead.detach().to(torch.float64)
    base = base_losses.detach().to(device=after.device, dtype=torch.float64)
    valid = torch.isfinite(base) & (base > 0)
    ratio = after / torch.where(valid, base, torch.ones_like(base))
    return torch.where(valid.unsqueeze(0), 1.0 - ratio, torch.full_like(ratio, float("nan")))


def raw_gradient_scale(method: Any, losses: torch.Tensor) -> torch.Tensor:
    """``dfᵢ/dLᵢ`` (T,) of the method's elementwise ``transform_losses`` ``f`` at ``losses``.

    Gradient methods hand the probes the gradients of ``f(Lᵢ)`` (DB-MTL: ``log Lᵢ``); dividing row i
    by this factor gives back ``∇Lᵢ``, the gradient TAG is defined with. All ones for the identity.
    """
    with torch.enable_grad():
        leaf = losses.detach().clone().requires_grad_(True)
        transformed = method.transform_losses(leaf)
        if transformed is leaf:
            return torch.ones_like(leaf).detach()
        (scale,) = torch.autograd.grad(transformed.sum(), leaf)
    return scale.detach()


# --- the probe --------------------------------------------------------------------------------------


class TagProbe(Probe):
    """Lookahead inter-task affinity every ``interval`` steps, averaged per epoch (Fifty et al. 2021).

    ``emit_steps``: also emit each lookahead step's matrix (``affinity_step``).
    """

    name = "tag"
    needs_grads = True

    def __init__(self, interval: int, emit_steps: bool = True, lookahead: str = "sgd") -> None:
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ValueError(f"`interval` must be a positive integer, got {interval!r}")
        if lookahead not in LOOKAHEADS:
            raise ValueError(f"`lookahead` must be one of {', '.join(LOOKAHEADS)}, got {lookahead!r}")
        super().__init__(interval)
        self.emit_steps = emit_steps
        self.lookahead = lookahead
        self._sums: torch.Tensor | None = None
        self._counts: torch.Tensor | None = None
        self._steps = 0

    def measure(self, ctx: ProbeContext) -> list[ProbeEvent]:
        if ctx.grads is None or ctx.grads.shape[1] == 0:
            return []
        from mtl_core.training.trainer import task_losses  # deferred: the trainer imports the probe registry

        trainer = ctx.trainer
        grads = ctx.grads
        method = trainer.method
        if method.kind == "gradient" and method.level == "parameters":
            # For these methods the trainer's G holds the gradients of method.transform_losses(L).
            scale = raw_gradient_scale(method, ctx.losses).to(grads)
            grads = grads / torch.where(scale != 0, scale, torch.ones_like(scale)).unsqueeze(1)
        x, y, masks = ctx.batch
        stacked = LOOKAHEADS[self.lookahead](trainer.optimizer, trainer.shared, grads)
        after = lookahead_losses(
            trainer.model, trainer.shared, stacked, x, lambda outputs: task_losses(outputs, y, masks, trainer.tasks)
        )
        matrix = affinity_matrix(ctx.losses, after).cpu()
        self._accumulate(matrix)
        if not self.emit_steps:
            return []
        return [ProbeEvent(ctx.step, ctx.epoch, "affinity_step", matrix.tolist())]

    def _accumulate(self, matrix: torch.Tensor) -> None:
        finite = torch.isfinite(matrix)
        if self._sums is None or self._counts is None:
            self._sums = torch.zeros_like(matrix)
            self._counts = torch.zeros_like(matrix)
        self._sums += torch.where(finite, matrix, torch.zeros_like(matrix))
        self._counts += finite.to(matrix.dtype)
        self._steps += 1

    def end_epoch(self, epoch: int, step: int) -> list[ProbeEvent]:
        """The epoch's mean affinity (NaN where no lookahead step had a valid value)."""
        if self._sums is None or self._counts is None or self._steps == 0:
            return []
        mean = torch.where(self._counts > 0, self._sums / self._counts.clamp(min=1), torch.full_like(self._sums, float("nan")))
        extra = {"lookahead_steps": self._steps, "interval": self.interval}
        self._sums, self._counts, self._steps = None, None, 0
        return [ProbeEvent(step, epoch, "affinity", mean.tolist(), extra)]


def _tag_factory(config: Any) -> Probe | None:
    if not getattr(config, "tag", False):
        return None
    return TagProbe(int(getattr(config, "tag_interval", DEFAULT_TAG_INTERVAL)),
                    lookahead=str(getattr(config, "tag_lookahead", "sgd")))


PROBE_FACTORIES["tag"] = _tag_factory
