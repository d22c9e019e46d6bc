"""The one training loop every trainable plugin uses. Read it top to bottom: it is meant to be plain.

A plugin builds a :class:`~tlcli.engine.task.Task`; :func:`fit` runs it: device and precision, parameter
groups with their own learning rates, gradient accumulation and clipping, the schedule, gradual
unfreezing, evaluation each epoch, early stopping, checkpoints, resume, and events. Everything else
(event log, progress bar, TUI) hooks in as duck-typed callbacks.

Determinism (what makes ``--resume`` bit-exact on the CPU): the order of samples in epoch ``e`` is a
permutation seeded by ``(seed, e)``; each sample's augmentation is seeded by ``(seed, e, index)``; the
schedule is a function of the step; and the global RNG state is saved with every checkpoint, which is
only ever taken at an optimizer-step boundary.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Sampler

from tlcli.engine import distributed
from tlcli.engine.checkpoint import latest_checkpoint, load_checkpoint, restore_rng, save_checkpoint
from tlcli.engine.device import autocast, resolve_device, resolve_precision
from tlcli.engine.frozen import FrozenParts, frozen_param_keys
from tlcli.engine.params import apply_train_mode, block_states, count_params, set_trainable
from tlcli.engine.schedule import lr_factor
from tlcli.engine.task import Task, TrainConfig
from tlcli.console.errors import JobFailed, UsageError
from tlcli.runs.paths import CHECKPOINTS_DIR, STOP_REQUEST_FILE


@dataclass
class RunResult:
    status: str  # finished | stopped | interrupted | failed
    steps: int
    epochs_done: int
    best: float | None
    monitor: str
    final_metrics: dict[str, float]
    wall_s: float
    samples_per_s: float
    trainable_params: int
    total_params: int
    device: str
    precision: str
    history: list[dict] = field(default_factory=list)

    @property
    def best_step(self) -> int | None:
        """The step of the evaluation that scored ``best`` (the exported model's)."""
        if self.best is None:
            return None
        return next((entry.get("step") for entry in self.history if entry.get(self.monitor) == self.best), None)

    def summary(self) -> dict:
        """What every training command's summary says of the loop (the Report's schema, see
        ``tlcli/cli/report.py``): status, the best evaluation, the last one's metrics, speed and size."""
        return {"status": self.status,
                "best": {"metric": self.monitor, "value": self.best, "step": self.best_step},
                "metrics": dict(self.final_metrics or {}),
                "train_samples_per_s": round(self.samples_per_s, 1), "steps": self.steps,
                "epochs": self.epochs_done, "wall_s": round(self.wall_s, 2), "device": self.device,
                "precision": self.precision}


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """Seed for one sample's augmentation: independent of workers, batch order and resume."""
    return ((seed * 1_000_003 + epoch) * 1_000_033 + index) % (2**63 - 1)


class EpochBatches(Sampler):
    """Batches of ``(index, sample_seed)`` for one epoch: a seeded permutation, sharded across ranks,
    starting after ``skip`` batches (resume mid-epoch). Iterated in the main process, so it can change
    between epochs while DataLoader workers persist."""

    def __init__(self, size: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.size, self.batch_size, self.seed, self.rank, self.world = size, batch_size, seed, rank, world
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def batches(self, epoch: int) -> list[list[tuple[int, int]]]:
        generator = torch.Generator().manual_seed(self.seed * 7919 + epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        if self.world > 1:  # pad so every rank gets the same number of batches
            order += order[: (-len(order)) % self.world]
            order = order[self.rank :: self.world]
        out = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if len(out) > 1 and len(out[-1]) < 2:
            out.pop()  # a batch of one breaks BatchNorm in training mode
        return [[(i, sample_seed(self.seed, epoch, i)) for i in batch] for batch in out]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self.batches(self.epoch)[self.skip :])

    def __len__(self) -> int:
        return len(self.batches(self.epoch)) - self.skip


def ignore_stop_signals(worker_id: int = 0) -> None:
    """A data worker's first act: ignore Ctrl-C and SIGTERM. ``timeout``, SLURM, systemd and ``kill -- -PGID``
    signal the whole process group; the main process owns stopping (it checkpoints, exports and ends the
    run), and a worker that died of the signal would fail the run instead. Workers end when the main
    process closes their queues, or by themselves when it is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # held back while the worker started (see start_workers)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def start_workers(loader: DataLoader) -> Iterator:
    """``iter(loader)`` with Ctrl-C and SIGTERM blocked while its workers fork: a signal sent to the group
    in that instant waits in each new worker until :func:`ignore_stop_signals` discards it (and in the main
    process until the workers are up)."""
    if loader.num_workers == 0 or not hasattr(signal, "pthread_sigmask") \
            or threading.current_thread() is not threading.main_thread():
        return iter(loader)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        return iter(loader)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class _StopFlags:
    """Ctrl-C, SIGTERM (docker stop, SLURM, timeout) and a stop-request file all ask the loop to end after
    the current step. Ctrl-C ends as "interrupted", the other two as "stopped". The request is read from
    the fit's own folder and from the folders of the runs it is part of (a --seeds set, pseudo-label
    rounds): the monitor writes it where the user is looking."""

    def __init__(self, run_dir: Path, outer_runs: Sequence[Path] = ()):
        self.stop_files = [Path(folder) / STOP_REQUEST_FILE for folder in (run_dir, *outer_runs)]
        self.interrupted = False
        self.terminated = False
        self._previous: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum, handler in ((signal.SIGINT, self._on_sigint), (signal.SIGTERM, self._on_sigterm)):
                self._previous[signum] = signal.getsignal(signum)
                signal.signal(signum, handler)
        return self

    def _on_sigint(self, signum, frame):
        if self.interrupted:  # second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self.interrupted = True

    def _on_sigterm(self, signum, frame):
        self.terminated = True

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)

    def stop_requested(self) -> bool:
        return self.terminated or any(path.exists() for path in self.stop_files)

    def clear_request(self) -> None:
        """The request was honoured: remove it, so a later --resume does not stop again at once."""
        for path in self.stop_files:
            path.unlink(missing_ok=True)


class _Callbacks:
    def __init__(self, callbacks):
        self.callbacks = list(callbacks)

    def __call__(self, hook: str, **kwargs) -> None:
        for callback in self.callbacks:
            method = getattr(callback, hook, None)
            if method is not None:
                method(**kwargs)


def _memory() -> dict[str, float]:
    out = {}
    try:
        import psutil

        out["rss_mb"] = round(psutil.Process().memory_info().rss / 2**20, 1)
    except Exception:  # psutil missing or sandboxed /proc: memory is optional
        pass
    if torch.cuda.is_available():
        out["gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def _to_device(batch: Any, device: torch.device, channels_last: bool) -> Any:
    if torch.is_tensor(batch):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.ndim == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device, channels_last) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device, channels_last) for k, v in batch.items()}
    return batch


def _apply_adapters(task: Task, cfg: TrainConfig, model) -> list[str]:
    """``--lora RANK``: the task's adapters go into the model before anything counts or groups its
    parameters, so the frozen base is out of the optimizer, the gradients and DDP from the start."""
    rank = getattr(cfg, "lora", None)
    if not rank:
        return []
    from tlcli.adapters.lora import apply_lora

    try:
        return apply_lora(model, rank, cfg.lora_alpha, cfg.lora_dropout, task.adapters(model),
                          keep_training=task.heads(model))
    except ValueError as error:
        raise UsageError(str(error)) from None


def _build_optimizer(name: str, groups: list[dict]) -> torch.optim.Optimizer:
    if name == "adamw":
        return torch.optim.AdamW(groups, betas=(0.9, 0.999))
    if name == "sgd":
        return torch.optim.SGD(groups, momentum=0.9, nesterov=True)
    raise UsageError(f"--optimizer {name!r} is not known; use adamw or sgd")


def fit(task: Task, cfg: TrainConfig, run, callbacks=(), resume: bool = False,
        outer_runs: Sequence[Path] = ()) -> RunResult:
    """Train ``task`` as ``cfg`` says, writing checkpoints into the run folder (a :class:`tlcli.runs.run.Run`
    or its path). Returns how it ended. ``outer_runs``: folders of the runs this fit is one part of, whose
    stop request also ends it.

    However it ends (finished, stopped, interrupted), the best model so far is exported to ``model/``
    once at least one step was taken; a later ``--resume`` continues a stopped or interrupted run.
    """
    training = _Training(task, cfg, Path(getattr(run, "path", run)), callbacks)
    if resume:
        training.restore()
    training.announce()
    with _StopFlags(training.run_dir, outer_runs) as flags:
        status = training.run_epochs(flags)
    return training.finish(status, flags)


class _Training:
    """The state of one ``fit``, in the order it is built: device and callbacks, model and optimizer,
    data, then (on resume) the checkpoint. Each method is one phase of the loop."""

    def __init__(self, task: Task, cfg: TrainConfig, run_dir: Path, callbacks):
        self.task, self.cfg, self.run_dir = task, cfg, run_dir
        self.started = time.time()
        self.device = resolve_device(cfg.device)
        self.precision = resolve_precision(cfg.precision, self.device)
        self.dist = distributed.setup(self.device.type)
        self.call = _Callbacks(callbacks if self.dist.is_main
                               else [c for c in callbacks if getattr(c, "all_ranks", False)])
        torch.manual_seed(cfg.seed)
        self._build_model()
        self._build_data()
        self.ckpt_root = run_dir / CHECKPOINTS_DIR
        self.step, self.start_epoch, self.skip_batches, self.best, self.bad_evals = 0, 0, 0, None, 0
        self.history: list[dict] = []
        self.wall_before, self.resumed_from = 0.0, None
        self.final_metrics: dict = {}
        self.samples_seen, self.train_time = 0, 0.0
        self.skipped = 0  # batches and steps --skip-nonfinite dropped
        self.epoch = 0
        self.last_saved = time.time()

    # --- set-up --------------------------------------------------------------------------------------

    def _build_model(self) -> None:
        task, cfg, device = self.task, self.cfg, self.device
        model = self.model = task.build_model()
        self.adapted = _apply_adapters(task, cfg, model)
        # With adapters, the frozen base is out of the checkpoints too: build_model rebuilds it on resume.
        self.frozen = FrozenParts(model, task.frozen_modules(model),
                                  params=frozen_param_keys(model) if self.adapted else ())
        self.blocks = task.blocks(model)
        self.first_trainable = next((i for i, b in enumerate(self.blocks) if b.trainable), len(self.blocks))
        self.channels_last = device.type in ("cuda", "cpu") and any(isinstance(m, torch.nn.Conv2d)
                                                                   for m in model.modules())
        model.to(device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        groups = [g.as_torch() for g in task.param_groups(model, self.blocks,
                                                          include_frozen=cfg.unfreeze_every is not None)]
        if not any(p.requires_grad for g in groups for p in g["params"]):
            raise UsageError("nothing to train: every block is frozen; pick an earlier --freeze-until block")
        self.optimizer = _build_optimizer(cfg.optimizer, groups)
        self.base_lrs = [g["lr"] for g in self.optimizer.param_groups]
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" and device.type == "cuda" else None

    def _build_data(self) -> None:
        task, cfg, dist = self.task, self.cfg, self.dist
        self.train_set, self.val_set = task.train_dataset(), task.val_dataset()
        self.sampler = EpochBatches(len(self.train_set), cfg.batch_size, cfg.seed, dist.rank, dist.world)
        workers = cfg.resolved_workers()
        # The loaders get their own generator: creating an iterator must not draw from the global RNG, or a
        # resume mid-epoch would shift dropout's random stream.
        loader_args = dict(num_workers=workers, collate_fn=task.collate, pin_memory=self.device.type == "cuda",
                           persistent_workers=workers > 0, generator=torch.Generator().manual_seed(cfg.seed),
                           worker_init_fn=ignore_stop_signals if workers > 0 else None)
        if workers > 0:
            loader_args["prefetch_factor"] = 4
        self.train_loader = DataLoader(self.train_set, batch_sampler=self.sampler, **loader_args)
        self.val_loader = None
        if self.val_set is not None and len(self.val_set) > 0:
            indices = list(range(len(self.val_set)))[dist.rank :: dist.world]
            batches = [indices[i : i + cfg.eval_batch_size] for i in range(0, len(indices), cfg.eval_batch_size)]
            self.val_loader = DataLoader(self.val_set, batch_sampler=batches,
                                         **{**loader_args, "persistent_workers": False})
        self.micro_per_epoch = len(self.sampler.batches(0))
        steps_per_epoch = -(-self.micro_per_epoch // cfg.accumulate)
        self.total_steps = steps_per_epoch * cfg.epochs
        if cfg.max_steps is not None:
            self.total_steps = min(self.total_steps, cfg.max_steps)
        self.warmup = int(cfg.warmup * self.total_steps) if 0 < cfg.warmup < 1 else int(cfg.warmup)
        self.log_every = cfg.log_every or max(1, self.total_steps // 500)

    def restore(self) -> None:
        """Continue from the newest complete checkpoint: weights, optimizer, progress and RNG state."""
        folder, torn = latest_checkpoint(self.ckpt_root)
        for bad in torn:
            self.call("on_log", level="warning", message=f"skipped torn checkpoint {bad.name}")
        if folder is None:
            raise UsageError(f"--resume: no complete checkpoint in {self.ckpt_root}; start a new run instead")
        state = load_checkpoint(folder)
        p = state["progress"]
        if p.get("frozen_digest") != self.frozen.digest:
            raise UsageError(f"--resume {self.run_dir}: the frozen base weights rebuilt now differ from those the "
                             "run trained its adapters on (were the --weights file or the cached pretrained "
                             "weights replaced?); put them back, or start a new run")
        self.step, self.start_epoch, self.skip_batches = p["step"], p["epoch"], p["batch_in_epoch"]
        self.best, self.bad_evals, self.history, self.wall_before = p["best"], p["bad_evals"], p["history"], p["wall_s"]
        _apply_unfreeze_stage(self.blocks, self.first_trainable, self.cfg.unfreeze_every, self.start_epoch)
        self.frozen.load_trainable_state(self.model, state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        restore_rng(*state["rng"])
        self.task.on_resume(self.model, self.step)
        self.resumed_from = self.step
        self.call("on_log", level="info",
                  message=f"resumed from {folder.name} (epoch {self.start_epoch}, step {self.step})")

    def announce(self) -> None:
        """Wrap the model for DDP/compile and send ``on_run_start`` (the run's first event)."""
        self.trainable, self.total = count_params(self.model)
        self.wrapped = distributed.wrap(self.model, self.dist, self.device)
        self.compiled = torch.compile(self.wrapped) if self.cfg.compile else self.wrapped
        self.call("on_run_start", info={
            **self.task.describe(), "device": str(self.device), "precision": self.precision,
            "config": self.cfg.model_dump(), "params": {"trainable": self.trainable, "total": self.total},
            "blocks": block_states(self.blocks), "total_steps": self.total_steps, "epochs": self.cfg.epochs,
            "train_samples": len(self.train_set), "val_samples": len(self.val_set) if self.val_set is not None else 0,
            "resumed_from": self.resumed_from, "pid": os.getpid(), "host": socket.gethostname(),
            "world_size": self.dist.world,
        })

    # --- checkpoints ---------------------------------------------------------------------------------

    def progress(self, epoch: int, batch_in_epoch: int) -> dict:
        return {"step": self.step, "epoch": epoch, "batch_in_epoch": batch_in_epoch, "best": self.best,
                "bad_evals": self.bad_evals, "history": self.history,
                "wall_s": self.wall_before + time.time() - self.started,
                **({"frozen_digest": self.frozen.digest} if self.frozen.digest else {})}

    def checkpoint(self, kind: str, epoch: int, batch_in_epoch: int) -> None:
        self.last_saved = time.time()
        if self.dist.is_main:
            folder = save_checkpoint(self.ckpt_root, f"step-{self.step:08d}", self.frozen.trainable_state(self.model),
                                     self.optimizer.state_dict(), self.progress(epoch, batch_in_epoch),
                                     keep_prefix="step-")
            self.call("on_checkpoint", step=self.step, epoch=epoch, path=str(folder), kind=kind)
        distributed.barrier(self.dist)

    # --- the loop ------------------------------------------------------------------------------------

    def run_epochs(self, flags: "_StopFlags") -> str:
        """Epochs until the step budget, early stopping or a stop request; returns the status."""
        cfg = self.cfg
        status = "finished"
        self.epoch = self.start_epoch
        try:
            for epoch in range(self.start_epoch, cfg.epochs):
                self.epoch = epoch
                if self.step >= self.total_steps:
                    break
                stop_reason, micro_index = self._train_epoch(epoch, flags)
                if stop_reason:
                    status = stop_reason
                    break
                if self._end_epoch(epoch, micro_index):
                    break
        except KeyboardInterrupt:
            status = "interrupted"
        except Exception as error:
            self.call("on_run_end", result={"status": "failed", "error": f"{type(error).__name__}: {error}",
                                            "steps": self.step, "best": self.best, "monitor": cfg.monitor,
                                            "wall_s": self.wall_before + time.time() - self.started})
            raise
        return status

    def _start_epoch(self, epoch: int) -> int:
        """Gradual unfreezing, train mode, the sampler's epoch; returns the batch the epoch starts at."""
        changed = _apply_unfreeze_stage(self.blocks, self.first_trainable, self.cfg.unfreeze_every, epoch)
        if changed:
            self.call("on_layers", step=self.step, epoch=epoch, blocks=block_states(self.blocks), unfrozen=changed)
            if self.dist.enabled:  # DDP must see the new set of trainable parameters
                self.compiled = self.wrapped = distributed.wrap(self.model, self.dist, self.device)
        apply_train_mode(self.model, self.cfg.train_bn)
        self.frozen.keep_eval()
        skip = self.skip_batches if epoch == self.start_epoch else 0
        self.sampler.set_epoch(epoch, skip)
        return skip

    def _train_epoch(self, epoch: int, flags: "_StopFlags") -> tuple[str | None, int]:
        """One epoch's micro-batches (from where a resume left off); returns ``(stop reason or None,
        micro-batches done)``."""
        cfg, task = self.cfg, self.task
        micro_index = self._start_epoch(epoch)
        micro_total = self.micro_per_epoch
        meter = _Interval()
        fetch_start = time.time()
        skip_group = False
        buffers_before: list = []
        for batch in start_workers(self.train_loader):
            meter.wait += time.time() - fetch_start
            group_start = (micro_index // cfg.accumulate) * cfg.accumulate
            group_size = min(cfg.accumulate, micro_total - group_start)
            boundary = micro_index + 1 == group_start + group_size
            if cfg.skip_nonfinite and micro_index == group_start:  # a skipped step undoes BatchNorm's statistics too
                buffers_before = _float_buffers(self.model, clone=True)
            batch = _to_device(batch, self.device, self.channels_last)
            loss_value = self._backward(batch, group_size, boundary)
            if not math.isfinite(loss_value):
                self._nonfinite(loss_value)
                skip_group = True
            n = task.batch_size_of(batch)
            self.samples_seen += n * self.dist.world
            meter.add(n * self.dist.world, loss_value)
            micro_index += 1
            if not boundary:
                fetch_start = time.time()
                continue
            if skip_group or not self._optimizer_step(batch):
                # a non-finite micro-batch poisoned this step, or --skip-nonfinite undid it: weights and
                # statistics as before the step
                skip_group = False
                self.optimizer.zero_grad(set_to_none=True)
                _restore(_float_buffers(self.model), buffers_before)
                fetch_start = time.time()
                continue
            if self.step % self.log_every == 0 or self.step == self.total_steps:
                self._log_step(epoch, meter, micro_index / max(1, micro_total))
                meter = _Interval()
            stop_reason = "interrupted" if flags.interrupted else "stopped" if flags.stop_requested() else None
            if distributed.any_rank(stop_reason is not None, self.dist):
                self.checkpoint("interrupt", epoch, micro_index)
                return stop_reason or "stopped", micro_index
            if self.step >= self.total_steps:
                break
            if cfg.save_every and self.step % cfg.save_every == 0:
                self.checkpoint("last", epoch, micro_index)
            fetch_start = time.time()
        return None, micro_index

    def _backward(self, batch, group_size: int, boundary: bool) -> float:
        """Forward and backward of one micro-batch (gradients synchronised across ranks only at a step
        boundary); returns its loss."""
        sync = boundary or not self.dist.enabled
        context = self.wrapped.no_sync() if not sync else contextlib.nullcontext()
        with context:
            with autocast(self.device, self.precision):
                loss = self.task.training_step(self.compiled, batch)
            scaled = loss.float() / group_size
            (self.scaler.scale(scaled) if self.scaler else scaled).backward()
        return float(loss.detach())

    def _nonfinite(self, loss_value: float) -> None:
        if not self.cfg.skip_nonfinite:
            raise JobFailed(f"the loss became {loss_value} at step {self.step + 1}; the last good "
                            "checkpoint is kept. Lower --lr (or --clip-grad), or pass "
                            "--skip-nonfinite to skip such steps")
        self.optimizer.zero_grad(set_to_none=True)
        self.skipped += 1
        self.call("on_log", level="warning", message=f"skipped a batch with loss {loss_value} "
                  f"at step {self.step + 1} (--skip-nonfinite)")

    def _optimizer_step(self, batch=None) -> bool:
        """Learning rate of this step, unscale, clip, step, zero the gradients; then the task's hook.

        With ``--skip-nonfinite`` a step whose gradients are not finite is skipped, and one that leaves a
        weight non-finite, or the loss of the batch it learnt from non-finite (``--lr 1e30``: huge but
        finite weights that overflow), is undone (returns False: no step taken). The check costs one more
        forward pass of that batch. fp16's scaler skips steps with non-finite gradients itself."""
        cfg, optimizer, scaler = self.cfg, self.optimizer, self.scaler
        factor = lr_factor(cfg.scheduler, self.step, self.total_steps, self.warmup)
        for group, base in zip(optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor
        if scaler:
            scaler.unscale_(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        guard = cfg.skip_nonfinite and not scaler
        if guard and not _all_finite([p.grad for p in params]):
            optimizer.zero_grad(set_to_none=True)
            self.call("on_log", level="warning", message=f"skipped step {self.step + 1}: non-finite gradients "
                      "(--skip-nonfinite)")
            self.skipped += 1
            return False
        before = [p.detach().clone() for p in params] if guard else None
        if cfg.clip_grad:
            torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.grad is not None], cfg.clip_grad)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if before is not None and distributed.any_rank(not self._still_finite(params, batch), self.dist):
            _restore(params, before)
            self.call("on_log", level="warning", message=f"undid step {self.step + 1}: it made the weights or the "
                      "loss non-finite (--skip-nonfinite); lower --lr")
            self.skipped += 1
            return False
        self.step += 1
        self.task.on_optimizer_step(self.model, self.step)
        return True

    def _still_finite(self, params, batch) -> bool:
        """After a step: weights and statistics finite, and so the loss of ``batch`` (computed without
        touching the RNG streams or BatchNorm's statistics)."""
        buffers = _float_buffers(self.model)
        if not _all_finite(params + buffers):
            return False
        if batch is None:
            return True
        saved = [b.detach().clone() for b in buffers]
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.no_grad(), autocast(self.device, self.precision):
            loss = float(self.task.training_step(self.model, batch).detach())
        _restore(buffers, saved)
        return math.isfinite(loss)

    def _log_step(self, epoch: int, meter: "_Interval", epoch_fraction: float) -> None:
        elapsed = max(1e-9, time.time() - meter.start)
        self.train_time += elapsed
        self.call("on_step_end", step=self.step, epoch=epoch, metrics={
            "loss": meter.loss_sum / max(1, meter.loss_count),
            "lr": {g.get("name", str(i)): g["lr"] for i, g in enumerate(self.optimizer.param_groups)},
            "samples_per_s": meter.samples / elapsed,
            "data_wait": min(1.0, meter.wait / elapsed),
            "epoch_progress": epoch + epoch_fraction,
            "memory": _memory(),
            **self.task.log_metrics(),
        }, total_steps=self.total_steps)

    def _end_epoch(self, epoch: int, micro_index: int) -> bool:
        """Evaluate, keep the best, checkpoint, early stop. Returns True when training should stop."""
        cfg = self.cfg
        epoch_complete = micro_index >= self.micro_per_epoch
        self._evaluate(epoch, micro_index)
        next_epoch, next_batch = (epoch + 1, 0) if epoch_complete else (epoch, micro_index)
        stopping = bool(cfg.early_stop and self.bad_evals >= cfg.early_stop)
        final = stopping or next_epoch >= cfg.epochs or self.step >= self.total_steps
        # Epochs of small data take seconds: a full checkpoint (weights + optimizer, fsynced) each
        # time would cost more than the training. Ctrl-C and the stop request save one anyway.
        if final or time.time() - self.last_saved >= cfg.checkpoint_interval_s:
            self.checkpoint("last", next_epoch, next_batch)
        if stopping:
            self.call("on_log", level="info",
                      message=f"early stop: {cfg.monitor} did not improve for {self.bad_evals} evaluations")
        return stopping

    def _evaluate(self, epoch: int, micro_index: int) -> None:
        cfg, dist = self.cfg, self.dist
        whole_set = self.task.evaluate(self.model, self.device) if dist.is_main or not dist.enabled else None
        if whole_set is None and self.val_loader is None:
            return
        metrics = whole_set if whole_set is not None else evaluate(
            self.task, self.model, self.val_loader, self.device, self.precision, dist)
        metrics = {**metrics, **self.task.derived_metrics(metrics)}
        self.final_metrics = metrics
        improved = self.best is None or _better(metrics.get(cfg.monitor), self.best, cfg.monitor_mode)
        if improved and metrics.get(cfg.monitor) is not None:
            self.best, self.bad_evals = metrics[cfg.monitor], 0
            if dist.is_main:
                save_checkpoint(self.ckpt_root, f"best-step-{self.step:08d}", self.frozen.trainable_state(self.model),
                                None, self.progress(epoch, micro_index), keep_prefix="best-step-")
        else:
            self.bad_evals += 1
        self.history.append({"epoch": epoch, "step": self.step, **metrics})
        self.call("on_eval_end", step=self.step, epoch=epoch, metrics=metrics, monitor=cfg.monitor,
                  best=self.best, is_best=improved)

    # --- the end -------------------------------------------------------------------------------------

    def finish(self, status: str, flags: "_StopFlags") -> RunResult:
        """The result; the best model so far exported (once a step was taken); ``on_run_end``."""
        cfg, model = self.cfg, self.model
        wall = self.wall_before + time.time() - self.started
        result = RunResult(
            status=status, steps=self.step, epochs_done=self.epoch + (1 if status == "finished" else 0),
            best=self.best, monitor=cfg.monitor, final_metrics=self.final_metrics, wall_s=wall,
            samples_per_s=self.samples_seen / self.train_time if self.train_time else 0.0,
            trainable_params=count_params(model)[0],  # after gradual unfreezing, more than at the start
            total_params=self.total, device=str(self.device), precision=self.precision, history=self.history,
        )
        if status != "finished":
            flags.clear_request()
        if self.step == 0 and self.skipped and status == "finished":
            raise JobFailed(f"no step could be taken: all {self.skipped} were skipped or undone because the loss or "
                            "the weights became non-finite (--skip-nonfinite); lower --lr (or pass --clip-grad)")
        if self.dist.is_main and (status == "finished" or self.step > 0):
            best_folder, _ = latest_checkpoint(self.ckpt_root, prefix="best-step-")
            if best_folder is not None:  # export the best model seen, not merely the last one
                self.frozen.load_trainable_state(model, load_checkpoint(best_folder)["model"])
            model.to("cpu").to(memory_format=torch.contiguous_format)
            self.task.export(model, self.run_dir, result)
        self.call("on_run_end", result={"status": status, "error": None, "steps": self.step, "best": self.best,
                                        "monitor": cfg.monitor, "wall_s": wall,
                                        "samples_per_s": result.samples_per_s})
        return result


class _Interval:
    """Loss, samples and data-wait time since the last metric event."""

    def __init__(self):
        self.start, self.wait, self.samples, self.loss_sum, self.loss_count = time.time(), 0.0, 0, 0.0, 0

    def add(self, samples: int, loss: float) -> None:
        self.samples += samples
        if math.isfinite(loss):
            self.loss_sum += loss
            self.loss_count += 1


def _all_finite(tensors) -> bool:
    return all(bool(t.isfinite().all()) for t in tensors if t is not None)


def _float_buffers(model, clone: bool = False) -> list:
    """The model's floating-point buffers (BatchNorm's running statistics), or copies of them."""
    found = [b for b in model.buffers() if b.is_floating_point()]
    return [b.detach().clone() for b in found] if clone else found


@torch.no_grad()
def _restore(tensors, saved) -> None:
    for tensor, old in zip(tensors, saved):
        tensor.copy_(old)


def _better(value: float | None, best: float, mode: str) -> bool:
    if value is None:
        return False
    return value > best if mode == "max" else value < best


def _apply_unfreeze_stage(blocks, first_trainable: int, every: int | None, epoch: int) -> list[str]:
    """Gradual unfreezing (ULMFiT): at epoch ``k * every`` the k-th frozen block above the original
    boundary becomes trainable. Returns the names unfrozen now (empty if nothing changed)."""
    if not every:
        return []
    boundary = max(0, first_trainable - epoch // every)
    changed = []
    for block in blocks[boundary:first_trainable]:
        if not block.trainable:
            set_trainable(block, True)
            changed.append(block.name)
    return changed


@torch.inference_mode()
def evaluate(task: Task, model, loader, device, precision: str, dist_info) -> dict[str, float]:
    """Mean of the task's validation metrics over the whole validation set (all ranks)."""
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for batch in start_workers(loader):
        batch = _to_device(batch, device, False)
        with autocast(device, precision):
            values, n = task.validation_step(model, batch)
        for key, value in values.items():
            sums[key] = sums.get(key, 0.0) + float(value)
            # one count for every metric, or each its own (tokens for a loss, sequences for an accuracy)
            counts[key] = counts.get(key, 0.0) + float(n[key] if isinstance(n, dict) else n)
    totals = distributed.all_reduce_sum({**sums, **{f"__count:{k}": v for k, v in counts.items()}}, dist_info)
    if was_training:
        model.train()
    if not counts:
        raise JobFailed("the validation set produced no batches")
    return {key: totals[key] / totals[f"__count:{key}"] if totals[f"__count:{key}"] else float("nan")
            for key in sums}
