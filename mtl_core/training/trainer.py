"""The trainer: one loop for every suite, strategy and balancing method.

It never names a suite, a strategy or a method: it builds them from their registries and calls the
method's hooks (:mod:`mtl_core.balancing.base`). It emits events (:mod:`mtl_core.training.events`) to
callbacks, so that the CLI's progress bar, the run store and the dashboard can subscribe.

Determinism: on CPU a run is a function of its config (seeded data, initialisation, shuffling and
randomised methods).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from mtl_core.balancing import BalancingMethod, StepContext, make_method
from mtl_core.config import TrainConfig
from mtl_core.errors import ConfigError, MTLError
from mtl_core.plugins import run_record as plugin_record
from mtl_core.strategies import MTLModel, make_model
from mtl_core.suites import Split, SuiteData, TaskSpec, make_suite
from mtl_core.training.events import Callback, EpochEvent, ProbeEvent, StepEvent, StopTraining
from mtl_core.training.jacobian import resolve_mode, task_jacobian, unflatten_into_grads
from mtl_core.training.probes import ProbeContext, build_probes

__all__ = ["train", "Trainer", "TrainingError", "task_losses", "task_loss_list", "evaluate", "load_data"]

log = logging.getLogger(__name__)


class TrainingError(MTLError):
    """Training could not continue (e.g. the loss became NaN)."""


def load_data(config: TrainConfig) -> SuiteData:
    """Build the suite's data for ``config`` (validated) and keep only its tasks."""
    suite = make_suite(config.suite, **dict(config.suite_options))
    data = suite.build(config.seed)
    if config.tasks is not None:
        data = data.select(list(config.tasks))
    return data


def task_losses(
    outputs: dict[str, torch.Tensor],
    targets: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    tasks: Sequence[TaskSpec],
) -> torch.Tensor:
    """Per-task losses (T,): cross-entropy for classification, MSE for regression, over the rows
    whose label is present. A task with no labelled row in the batch contributes a zero loss."""
    return torch.stack(task_loss_list(outputs, targets, masks, tasks))


def task_loss_list(
    outputs: dict[str, torch.Tensor],
    targets: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    tasks: Sequence[TaskSpec],
) -> list[torch.Tensor]:
    """:func:`task_losses` as T separate scalars, each with its own graph node.

    A backward from one of them runs through its task's head only; from an entry of the stacked
    tensor it would run through every head (the stack's backward hands zeros to the others), which
    cost the T-pass step T(T − 1) useless head backward passes (≈ 10 % of the step at T = 8).
    """
    values = []
    for spec in tasks:
        out, y, mask = outputs[spec.name], targets[spec.name], masks[spec.name]
        if not bool(mask.any()):
            values.append(out.sum() * 0.0)
            continue
        if not bool(mask.all()):
            out, y = out[mask], y[mask]
        if spec.kind == "classification":
            values.append(F.cross_entropy(out, y))
        else:
            values.append(F.mse_loss(out, y.reshape(out.shape)))
    return values


def _metric(spec: TaskSpec, out: torch.Tensor, y: torch.Tensor) -> float:
    if spec.kind == "classification":
        return float((out.argmax(dim=1) == y).float().mean().item())
    return float(F.mse_loss(out, y.reshape(out.shape)).item())


@torch.no_grad()
def evaluate(model: MTLModel, split: Split, tasks: Sequence[TaskSpec], batch_size: int = 4096) -> dict[str, dict[str, float]]:
    """Loss and metric per task on ``split`` (labelled rows only)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    outputs: dict[str, list[torch.Tensor]] = {t.name: [] for t in tasks}
    for start in range(0, len(split), batch_size):
        x = split.x[start : start + batch_size].to(device)
        for name, out in model(x).items():
            outputs[name].append(out)
    model.train(was_training)
    result: dict[str, dict[str, float]] = {}
    for spec in tasks:
        out = torch.cat(outputs[spec.name]) if outputs[spec.name] else torch.zeros(0)
        y = split.y[spec.name].to(device)
        mask = split.masks[spec.name].to(device)
        out, y = out[mask], y[mask]
        if out.shape[0] == 0:
            result[spec.name] = {"loss": math.nan, "metric": math.nan}
            continue
        loss = task_losses({spec.name: out}, {spec.name: y}, {spec.name: torch.ones(len(y), dtype=torch.bool, device=device)}, [spec])
        result[spec.name] = {"loss": float(loss[0].item()), "metric": _metric(spec, out, y)}
    return result


@dataclass
class _StepState:
    losses: torch.Tensor
    grads: torch.Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Trainer:
    """Trains one configuration. Use :func:`train` unless you need the objects (tests, probes)."""

    def __init__(self, config: TrainConfig, callbacks: Sequence[Callback] = (), data: SuiteData | None = None) -> None:
        self.config = config.validated()
        self.callbacks = list(callbacks)
        cfg = self.config
        self.device = torch.device(cfg.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device", "cpu (no CUDA device is available here)", cfg.device)
        started = time.perf_counter()
        self.data = data if data is not None else load_data(cfg)
        self.data_seconds = time.perf_counter() - started
        self.tasks = self.data.tasks
        self.task_names = [t.name for t in self.tasks]
        torch.manual_seed(cfg.seed)
        self.model = make_model(cfg.strategy, self.data.input_dim, self.tasks, **dict(cfg.strategy_options)).to(self.device)
        self.method_generator = torch.Generator().manual_seed(cfg.seed + 1)
        self.method: BalancingMethod = make_method(
            cfg.method, len(self.tasks), generator=self.method_generator, **dict(cfg.method_options)
        )
        for tensor in self.method.parameters():
            tensor.data = tensor.data.to(self.device)
        params = list(self.model.parameters()) + list(self.method.parameters())
        if cfg.optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
        elif cfg.optimizer == "adamw":
            self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        else:
            self.optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.shared = self.model.shared_parameters()
        self.own = [self.model.task_parameters(t) for t in self.task_names]
        self.last_shared = self.model.last_shared_parameters()
        self.jacobian_mode = resolve_mode(cfg.jacobian_mode, self.device)
        if self.jacobian_mode == "representation" and not self.model.has_shared_representation:
            self.jacobian_mode = resolve_mode("auto", self.device)
        self.shuffle_generator = torch.Generator().manual_seed(cfg.seed + 2)
        self.step = 0
        #: The epoch records of the current :meth:`run`.
        self.history: list[dict[str, Any]] = []
        self.probes = build_probes(self.config)

    # --- one optimisation step -------------------------------------------------------------------
    def _forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        needs_repr = self.method.kind == "gradient" and (
            self.method.level == "representation" or self.jacobian_mode == "representation"
        )
        if needs_repr:
            z = self.model.encode(x)
            return self.model.decode(z), z
        return self.model(x), None

    def _train_step(self, x: torch.Tensor, y: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], epoch: int) -> _StepState:
        self.optimizer.zero_grad(set_to_none=True)
        outputs, z = self._forward(x)
        loss_list = task_loss_list(outputs, y, masks, self.tasks)
        losses = torch.stack(loss_list)
        if not bool(torch.isfinite(losses).all()):
            bad = [n for n, v in zip(self.task_names, losses.tolist(), strict=True) if not math.isfinite(v)]
            raise TrainingError(f"the loss of task(s) {', '.join(bad)} became NaN/inf at step {self.step} "
                                f"(try a smaller lr than {self.config.lr})")

        def recompute() -> torch.Tensor:
            with torch.no_grad():
                return task_losses(self.model(x), y, masks, self.tasks)

        ctx = StepContext(
            step=self.step + 1,
            epoch=epoch,
            losses=losses,
            shared_parameters=self.shared,
            last_shared_parameters=self.last_shared,
            recompute_losses=recompute,
        )
        step = self.step + 1
        due = [probe for probe in self.probes if probe.due(step)]
        representation_path = self.method.kind == "gradient" and (
            self.method.level == "representation" or (z is not None and self.jacobian_mode == "representation")
        )
        parameter_path = self.method.kind == "gradient" and not representation_path
        probe_grads: torch.Tensor | None = None
        if any(p.needs_grads for p in due) and not parameter_path:
            # Loss-weighting or representation-level methods never form G: do it on probe steps only.
            no_own: list[list[torch.nn.Parameter]] = [[] for _ in self.tasks]
            # One vmapped pass: measured ~2× faster than T loop passes for probe steps on CPU too.
            mode = "loop" if self.config.jacobian_mode == "loop" else "batched"
            probe_grads = task_jacobian(loss_list, self.shared, no_own, mode=mode, retain_graph=True).shared.detach()
        reg = self.model.regularization()
        state = _StepState(losses=losses.detach())
        if self.method.kind == "loss":
            objective = self.method.loss(losses, ctx)
            if reg is not None:
                objective = objective + reg
            objective.backward()
        elif representation_path:
            state.grads = self._representation_step(losses, loss_list, z, reg, ctx)
            if self.method.level != "representation":
                probe_grads = state.grads
        else:
            state.grads = self._parameter_step(losses, loss_list, reg, ctx)
            probe_grads = state.grads
        events = []
        for probe in due:
            events.extend(probe.measure(ProbeContext(step, epoch, losses.detach(), probe_grads, self, (x, y, masks))))
        self.optimizer.step()
        self.method.after_step(ctx)
        if due and self.method.weights is not None:
            events.append(ProbeEvent(step, epoch, "weights", self.method.weights.detach().cpu().tolist()))
        state.extra["probe_events"] = events
        return state

    def _objective_losses(self, losses: torch.Tensor, loss_list: list[torch.Tensor]) -> Sequence[torch.Tensor]:
        """The losses whose gradients form ``G``: the separate per-task scalars unless the method
        transforms them (DB-MTL's log), whose entries then come from one stacked tensor."""
        objective_losses = self.method.transform_losses(losses)
        return loss_list if objective_losses is losses else objective_losses

    def _parameter_step(
        self, losses: torch.Tensor, loss_list: list[torch.Tensor], reg: torch.Tensor | None, ctx: StepContext
    ) -> torch.Tensor:
        objective_losses = self._objective_losses(losses, loss_list)
        grads = task_jacobian(objective_losses, self.shared, self.own, mode=self.jacobian_mode, retain_graph=reg is not None)
        if self.shared:
            self._apply_direction(self.method(grads.shared, ctx), grads.shared)
        self._apply_own(grads.own)
        if reg is not None:
            reg.backward()
        return grads.shared.detach()

    def _apply_direction(self, direction: torch.Tensor, matrix: torch.Tensor) -> None:
        """The shared ``.grad``s become views of ``direction`` (no copy), unless it shares memory
        with the Jacobian (e.g. a method returning a row as is), which the probes read afterwards."""
        if direction.untyped_storage().data_ptr() == matrix.untyped_storage().data_ptr():
            direction = direction.clone()
        unflatten_into_grads(direction, self.shared)

    def _apply_own(self, own_grads: Sequence[Sequence[torch.Tensor]]) -> None:
        for params, grads in zip(self.own, own_grads, strict=True):
            for p, g in zip(params, grads, strict=True):
                p.grad = g

    def _representation_step(
        self,
        losses: torch.Tensor,
        loss_list: list[torch.Tensor],
        z: torch.Tensor | None,
        reg: torch.Tensor | None,
        ctx: StepContext,
    ) -> torch.Tensor:
        """Aggregate at the shared representation z (MGDA-UB, GradDrop, or the shortcut mode):
        gradients of each loss w.r.t. z and the task's own parameters (one backward per task, through
        its head only), then one backward of the combined cotangent through the trunk for
        representation-level methods, or one VJP per task for parameter-level ones."""
        assert z is not None
        objective_losses = self._objective_losses(losses, loss_list)
        n_tasks = len(self.task_names)
        z_matrix = torch.empty(n_tasks, z.numel(), dtype=z.dtype, device=z.device)
        own_grads: list[list[torch.Tensor]] = []
        for i in range(n_tasks):
            grads = torch.autograd.grad(objective_losses[i], [z, *self.own[i]], retain_graph=True,
                                        allow_unused=True, materialize_grads=True)
            z_matrix[i].copy_(grads[0].reshape(-1))
            own_grads.append(list(grads[1:]))
        if self.method.level == "representation":
            direction = self.method(z_matrix, ctx)
            z.backward(direction.view_as(z), retain_graph=reg is not None)
            grads_for_probe = z_matrix
        else:
            # Shortcut for parameter-level methods: VJPs of the per-task z-gradients through the trunk,
            # each written in place into one T × P matrix.
            matrix = torch.empty(n_tasks, sum(p.numel() for p in self.shared), dtype=z.dtype, device=z.device)
            for i in range(n_tasks):
                g = torch.autograd.grad(z, self.shared, grad_outputs=z_matrix[i].view_as(z),
                                        retain_graph=reg is not None or i < n_tasks - 1,
                                        allow_unused=True, materialize_grads=True)
                torch.cat([t.reshape(-1) for t in g], out=matrix[i])
            self._apply_direction(self.method(matrix, ctx), matrix)
            grads_for_probe = matrix
        self._apply_own(own_grads)
        if reg is not None:
            reg.backward()
        return grads_for_probe.detach()

    # --- the loop ------------------------------------------------------------------------------
    def _emit(self, hook: str, payload: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(payload)

    def _end_probe_epoch(self, epoch: int) -> None:
        for probe in self.probes:
            for event in probe.end_epoch(epoch, self.step):
                self._emit("on_probe", event)

    def _should_stop(self) -> bool:
        return any(cb.should_stop() for cb in self.callbacks)

    def run(self) -> dict[str, Any]:
        cfg = self.config
        n = len(self.data.train)
        if n == 0:
            raise TrainingError("the training split is empty")
        # With early stopping (``patience``) this is the most the run can take, not a promise.
        total_steps = math.ceil(n / cfg.batch_size) * cfg.epochs
        self._emit("on_run_start", {
            "config": cfg.to_dict(),
            "tasks": [t.to_dict() for t in self.tasks],
            "suite_info": _jsonable(self.data.info),
            "total_steps": total_steps,
            "n_parameters": sum(p.numel() for p in self.model.parameters()),
            "n_shared_parameters": sum(p.numel() for p in self.shared),
            **plugin_record(cfg),
        })
        train = self.data.train
        batches = _Batches(train.x.to(self.device), {k: v.to(self.device) for k, v in train.y.items()},
                           {k: v.to(self.device) for k, v in train.masks.items()})
        best = _Best()
        self.history = []
        status, stop_reason = "done", "max_epochs"
        started = time.perf_counter()
        self.model.train()
        epoch = 0
        try:
            for epoch in range(1, cfg.epochs + 1):
                epoch_start = time.perf_counter()
                mean_train = self._train_epoch(epoch, batches, total_steps)
                score = self._end_epoch(epoch, mean_train, time.perf_counter() - epoch_start)
                # One criterion for the checkpoint and for early stopping, whatever the tasks.
                if score < best.score or best.state is None:
                    best.score, best.epoch, best.state = score, epoch, copy.deepcopy(self.model.state_dict())
                if cfg.patience is not None and epoch - best.epoch >= cfg.patience:
                    stop_reason = "patience"
                    break
        except StopTraining:
            status, stop_reason = "cancelled", "cancelled"
            self._end_probe_epoch(epoch)
        train_seconds = time.perf_counter() - started
        if best.state is not None:
            self.model.load_state_dict(best.state)
        result = self._result(status, stop_reason, best.epoch, train_seconds)
        self._emit("on_run_end", result)
        return result

    def _train_epoch(self, epoch: int, batches: _Batches, total_steps: int) -> torch.Tensor:
        """One pass over the training split; returns each task's mean loss over its labelled batches."""
        n, batch_size = len(batches.x), self.config.batch_size
        order = torch.randperm(n, generator=self.shuffle_generator).to(self.device)
        sums = torch.zeros(len(self.tasks), device=self.device)
        counts = torch.zeros(len(self.tasks), device=self.device)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            batch_masks = {k: v[idx] for k, v in batches.masks.items()}
            state = self._train_step(batches.x[idx], {k: v[idx] for k, v in batches.y.items()}, batch_masks, epoch)
            self.step += 1
            labelled = torch.stack([batch_masks[t].any() for t in self.task_names]).float()
            sums += state.losses * labelled
            counts += labelled
            weights = self.method.weights
            self._emit("on_step", StepEvent(
                step=self.step,
                epoch=epoch,
                total_steps=total_steps,
                # A task with no labelled row in the batch has no loss there (not a loss of 0).
                train_loss={name: value for name, value, has in zip(
                    self.task_names, state.losses.tolist(), labelled.tolist(), strict=True) if has},
                weights=dict(zip(self.task_names, weights.tolist(), strict=True)) if weights is not None else None,
            ))
            for probe_event in state.extra.get("probe_events", []):
                self._emit("on_probe", probe_event)
            if self._should_stop():
                raise StopTraining
        return sums / counts.clamp(min=1)

    def _end_epoch(self, epoch: int, mean_train: torch.Tensor, seconds: float) -> float:
        """Close an epoch: probes, the method's epoch hook, validation, the epoch record; returns the
        checkpoint score (the sum of the tasks' finite validation losses)."""
        self._end_probe_epoch(epoch)
        self.method.on_epoch_end(epoch, mean_train.detach())
        val = evaluate(self.model, self.data.val, self.tasks)
        record = EpochEvent(
            epoch=epoch,
            epochs=self.config.epochs,
            step=self.step,
            train_loss=dict(zip(self.task_names, mean_train.tolist(), strict=True)),
            val_loss={t: v["loss"] for t, v in val.items()},
            val_metric={t: v["metric"] for t, v in val.items()},
            seconds=seconds,
        )
        self.history.append(record.to_dict())
        self._emit("on_epoch_end", record)
        return sum(v["loss"] for v in val.values() if math.isfinite(v["loss"]))

    def _result(self, status: str, stop_reason: str, best_epoch: int, train_seconds: float) -> dict[str, Any]:
        """The run record: test metrics of the restored best checkpoint, history, timings."""
        history = self.history
        test = evaluate(self.model, self.data.test, self.tasks)
        final_metrics = {
            spec.name: {
                "metric": spec.metric,
                "value": test[spec.name]["metric"],
                "loss": test[spec.name]["loss"],
                "higher_is_better": spec.higher_is_better,
            }
            for spec in self.tasks
        }
        best_val_metric = {}
        for spec in self.tasks:
            values = [h["val_metric"][spec.name] for h in history if math.isfinite(h["val_metric"][spec.name])]
            if values:
                best_val_metric[spec.name] = max(values) if spec.higher_is_better else min(values)
        result = {
            "status": status,
            "config": self.config.to_dict(),
            "tasks": [t.to_dict() for t in self.tasks],
            "suite_info": _jsonable(self.data.info),
            "history": history,
            "best_epoch": best_epoch,
            "best_val_metric": best_val_metric,
            "stopped_epoch": history[-1]["epoch"] if history else 0,
            "stop_reason": stop_reason,
            "final_metrics": final_metrics,
            "steps": self.step,
            "timings": {
                "data_seconds": round(self.data_seconds, 4),
                "train_seconds": round(train_seconds, 4),
                "seconds_per_epoch": round(train_seconds / max(len(history), 1), 4),
            },
        }
        if "planted_groups" in self.data.info:
            result["planted_groups"] = self.data.info["planted_groups"]
        result.update(plugin_record(self.config))
        return result


@dataclass
class _Batches:
    """The training split on the run's device."""

    x: torch.Tensor
    y: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]


@dataclass
class _Best:
    """The best checkpoint so far (lowest validation score)."""

    score: float = math.inf
    epoch: int = 0
    state: dict[str, torch.Tensor] | None = None


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def train(config: TrainConfig, callbacks: Sequence[Callback] = (), data: SuiteData | None = None) -> dict[str, Any]:
    """Train ``config`` and return the run record (the content of ``run.json``).

    ``result["status"]`` is ``"done"``, or ``"cancelled"`` when a callback asked to stop (the
    partial history is kept and test metrics come from the best epoch so far).

    Test metrics come from the weights of ``best_epoch``, the epoch with the lowest sum of the
    tasks' validation losses. With ``config.patience`` set, training stops once that sum has not
    improved for ``patience`` consecutive epochs (``epochs`` is then the maximum).
    ``stopped_epoch`` is the last epoch whose validation was measured and ``stop_reason`` says why
    it was the last: ``"patience"``, ``"max_epochs"`` or ``"cancelled"``.
    """
    return Trainer(config, callbacks, data=data).run()

