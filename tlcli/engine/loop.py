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
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Sampler

from tlcli.engine import distributed
from tlcli.engine.checkpoint import latest_checkpoint, load_checkpoint, restore_rng, save_checkpoint
from tlcli.engine.device import autocast, resolve_device, resolve_precision
from tlcli.engine.frozen import FrozenParts
from tlcli.engine.params import apply_train_mode, block_states, count_params, set_trainable
from tlcli.engine.schedule import lr_factor
from tlcli.engine.task import Task, TrainConfig
from tlcli.errors import JobFailed, UsageError
from tlcli.paths import CHECKPOINTS_DIR, STOP_REQUEST_FILE


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


class _StopFlags:
    """Ctrl-C, SIGTERM (docker stop, SLURM, timeout) and the run folder's stop-request file all ask the
    loop to end after the current step. Ctrl-C ends as "interrupted", the other two as "stopped"."""

    def __init__(self, run_dir: Path):
        self.stop_file = run_dir / STOP_REQUEST_FILE
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
        return self.terminated or self.stop_file.exists()

    def clear_request(self) -> None:
        """The request was honoured: remove it, so a later --resume does not stop again at once."""
        self.stop_file.unlink(missing_ok=True)


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


def _build_optimizer(name: str, groups: list[dict]) -> torch.optim.Optimizer:
    if name == "adamw":
        return torch.optim.AdamW(groups, betas=(0.9, 0.999))
    if name == "sgd":
        return torch.optim.SGD(groups, momentum=0.9, nesterov=True)
    raise UsageError(f"--optimizer {name!r} is not known; use adamw or sgd")


def fit(task: Task, cfg: TrainConfig, run, callbacks=(), resume: bool = False) -> RunResult:
    """Train ``task`` as ``cfg`` says, writing checkpoints into the run folder (a :class:`tlcli.run.Run`
    or its path). Returns how it ended.

    However it ends (finished, stopped, interrupted), the best model so far is exported to ``model/``
    once at least one step was taken; a later ``--resume`` continues a stopped or interrupted run.
    """
    run_dir = Path(getattr(run, "path", run))
    started = time.time()
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    dist_info = distributed.setup(device.type)
    call = _Callbacks(callbacks if dist_info.is_main else [c for c in callbacks if getattr(c, "all_ranks", False)])
    torch.manual_seed(cfg.seed)

    # --- model, blocks, optimizer -------------------------------------------------------------
    model = task.build_model()
    frozen = FrozenParts(model, task.frozen_modules(model))
    blocks = task.blocks(model)
    first_trainable = next((i for i, b in enumerate(blocks) if b.trainable), len(blocks))
    channels_last = device.type in ("cuda", "cpu") and any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    groups = [g.as_torch() for g in task.param_groups(model, blocks, include_frozen=cfg.unfreeze_every is not None)]
    if not any(p.requires_grad for g in groups for p in g["params"]):
        raise UsageError("nothing to train: every block is frozen; pick an earlier --freeze-until block")
    optimizer = _build_optimizer(cfg.optimizer, groups)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" and device.type == "cuda" else None

    # --- data ------------------------------------------------------------------------------------
    train_set, val_set = task.train_dataset(), task.val_dataset()
    sampler = EpochBatches(len(train_set), cfg.batch_size, cfg.seed, dist_info.rank, dist_info.world)
    workers = cfg.resolved_workers()
    # The loaders get their own generator: creating an iterator must not draw from the global RNG, or a
    # resume mid-epoch would shift dropout's random stream.
    loader_args = dict(num_workers=workers, collate_fn=task.collate, pin_memory=device.type == "cuda",
                       persistent_workers=workers > 0, generator=torch.Generator().manual_seed(cfg.seed))
    if workers > 0:
        loader_args["prefetch_factor"] = 4
    train_loader = DataLoader(train_set, batch_sampler=sampler, **loader_args)
    val_loader = None
    if val_set is not None and len(val_set) > 0:
        indices = list(range(len(val_set)))[dist_info.rank :: dist_info.world]
        val_batches = [indices[i : i + cfg.eval_batch_size] for i in range(0, len(indices), cfg.eval_batch_size)]
        val_loader = DataLoader(val_set, batch_sampler=val_batches, **{**loader_args, "persistent_workers": False})
    micro_per_epoch = len(sampler.batches(0))
    steps_per_epoch = -(-micro_per_epoch // cfg.accumulate)
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    warmup = int(cfg.warmup * total_steps) if 0 < cfg.warmup < 1 else int(cfg.warmup)
    log_every = cfg.log_every or max(1, total_steps // 500)

    # --- resume ------------------------------------------------------------------------------------
    ckpt_root = run_dir / CHECKPOINTS_DIR
    step, start_epoch, skip_batches, best, bad_evals, history, wall_before = 0, 0, 0, None, 0, [], 0.0
    resumed_from = None
    if resume:
        folder, torn = latest_checkpoint(ckpt_root)
        for bad in torn:
            call("on_log", level="warning", message=f"skipped torn checkpoint {bad.name}")
        if folder is None:
            raise UsageError(f"--resume: no complete checkpoint in {ckpt_root}; start a new run instead")
        state = load_checkpoint(folder)
        p = state["progress"]
        step, start_epoch, skip_batches = p["step"], p["epoch"], p["batch_in_epoch"]
        best, bad_evals, history, wall_before = p["best"], p["bad_evals"], p["history"], p["wall_s"]
        _apply_unfreeze_stage(blocks, first_trainable, cfg.unfreeze_every, start_epoch)
        frozen.load_trainable_state(model, state["model"])
        optimizer.load_state_dict(state["optimizer"])
        restore_rng(*state["rng"])
        resumed_from = step
        call("on_log", level="info", message=f"resumed from {folder.name} (epoch {start_epoch}, step {step})")

    trainable, total = count_params(model)
    wrapped = distributed.wrap(model, dist_info, device)
    compiled = torch.compile(wrapped) if cfg.compile else wrapped
    call("on_run_start", info={
        **task.describe(), "device": str(device), "precision": precision, "config": cfg.model_dump(),
        "params": {"trainable": trainable, "total": total}, "blocks": block_states(blocks),
        "total_steps": total_steps, "epochs": cfg.epochs, "train_samples": len(train_set),
        "val_samples": len(val_set) if val_set is not None else 0, "resumed_from": resumed_from,
        "pid": os.getpid(), "host": socket.gethostname(), "world_size": dist_info.world,
    })

    def progress(epoch: int, batch_in_epoch: int) -> dict:
        return {"step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch, "best": best,
                "bad_evals": bad_evals, "history": history, "wall_s": wall_before + time.time() - started}

    last_saved = [time.time()]

    def checkpoint(kind: str, epoch: int, batch_in_epoch: int) -> None:
        last_saved[0] = time.time()
        if dist_info.is_main:
            folder = save_checkpoint(ckpt_root, f"step-{step:08d}", frozen.trainable_state(model), optimizer.state_dict(),
                                     progress(epoch, batch_in_epoch), keep_prefix="step-")
            call("on_checkpoint", step=step, epoch=epoch, path=str(folder), kind=kind)
        distributed.barrier(dist_info)

    status, final_metrics, samples_seen, train_time = "finished", {}, 0, 0.0
    epoch = start_epoch
    with _StopFlags(run_dir) as flags:
        try:
            for epoch in range(start_epoch, cfg.epochs):
                if step >= total_steps:
                    break
                changed = _apply_unfreeze_stage(blocks, first_trainable, cfg.unfreeze_every, epoch)
                if changed:
                    call("on_layers", step=step, epoch=epoch, blocks=block_states(blocks), unfrozen=changed)
                    if dist_info.enabled:  # DDP must see the new set of trainable parameters
                        compiled = wrapped = distributed.wrap(model, dist_info, device)
                apply_train_mode(model, cfg.train_bn)
                frozen.keep_eval()
                skip = skip_batches if epoch == start_epoch else 0
                sampler.set_epoch(epoch, skip)
                micro_total = micro_per_epoch
                micro_index = skip
                stop_reason = None
                interval_start, interval_wait, interval_samples, loss_sum, loss_count = time.time(), 0.0, 0, 0.0, 0
                fetch_start = time.time()
                skip_group = False
                for batch in train_loader:
                    interval_wait += time.time() - fetch_start
                    group_start = (micro_index // cfg.accumulate) * cfg.accumulate
                    group_size = min(cfg.accumulate, micro_total - group_start)
                    boundary = micro_index + 1 == group_start + group_size
                    batch = _to_device(batch, device, channels_last)
                    sync = boundary or not dist_info.enabled
                    context = wrapped.no_sync() if not sync else contextlib.nullcontext()
                    with context:
                        with autocast(device, precision):
                            loss = task.training_step(compiled, batch)
                        scaled = loss.float() / group_size
                        (scaler.scale(scaled) if scaler else scaled).backward()
                    loss_value = float(loss.detach())
                    if not math.isfinite(loss_value):
                        if not cfg.skip_nonfinite:
                            raise JobFailed(f"the loss became {loss_value} at step {step + 1}; the last good "
                                            "checkpoint is kept. Lower --lr (or --clip-grad), or pass "
                                            "--skip-nonfinite to skip such steps")
                        optimizer.zero_grad(set_to_none=True)
                        call("on_log", level="warning", message=f"skipped a batch with loss {loss_value} "
                             f"at step {step + 1} (--skip-nonfinite)")
                        skip_group = True
                    n = task.batch_size_of(batch)
                    samples_seen += n * dist_info.world
                    interval_samples += n * dist_info.world
                    if math.isfinite(loss_value):
                        loss_sum += loss_value
                        loss_count += 1
                    micro_index += 1
                    if not boundary:
                        fetch_start = time.time()
                        continue
                    if skip_group:  # a non-finite micro-batch poisoned this step's gradients: drop the step
                        skip_group = False
                        optimizer.zero_grad(set_to_none=True)
                        fetch_start = time.time()
                        continue
                    factor = lr_factor(cfg.scheduler, step, total_steps, warmup)
                    for group, base in zip(optimizer.param_groups, base_lrs):
                        group["lr"] = base * factor
                    if scaler:
                        scaler.unscale_(optimizer)
                    if cfg.clip_grad:
                        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None],
                                                       cfg.clip_grad)
                    if scaler:
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    step += 1
                    task.on_optimizer_step(model, step)
                    if step % log_every == 0 or step == total_steps:
                        now = time.time()
                        elapsed = max(1e-9, now - interval_start)
                        train_time += elapsed
                        call("on_step_end", step=step, epoch=epoch, metrics={
                            "loss": loss_sum / max(1, loss_count),
                            "lr": {g.get("name", str(i)): g["lr"] for i, g in enumerate(optimizer.param_groups)},
                            "samples_per_s": interval_samples / elapsed,
                            "data_wait": min(1.0, interval_wait / elapsed),
                            "epoch_progress": epoch + micro_index / max(1, micro_total),
                            "memory": _memory(),
                        }, total_steps=total_steps)
                        interval_start, interval_wait, interval_samples, loss_sum, loss_count = now, 0.0, 0, 0.0, 0
                    if flags.interrupted:
                        stop_reason = "interrupted"
                    elif flags.stop_requested():
                        stop_reason = "stopped"
                    if distributed.any_rank(stop_reason is not None, dist_info):
                        stop_reason = stop_reason or "stopped"
                        checkpoint("interrupt", epoch, micro_index)
                        break
                    if step >= total_steps:
                        break
                    if cfg.save_every and step % cfg.save_every == 0:
                        checkpoint("last", epoch, micro_index)
                    fetch_start = time.time()
                if stop_reason:
                    status = stop_reason
                    break
                # --- end of epoch (or of the step budget): evaluate, early stop, checkpoint ----------
                epoch_complete = micro_index >= micro_total
                whole_set = task.evaluate(model, device) if dist_info.is_main or not dist_info.enabled else None
                if whole_set is not None or val_loader is not None:
                    final_metrics = whole_set if whole_set is not None else evaluate(
                        task, model, val_loader, device, precision, dist_info)
                    improved = best is None or _better(final_metrics.get(cfg.monitor), best, cfg.monitor_mode)
                    if improved and final_metrics.get(cfg.monitor) is not None:
                        best, bad_evals = final_metrics[cfg.monitor], 0
                        if dist_info.is_main:
                            save_checkpoint(ckpt_root, f"best-step-{step:08d}", frozen.trainable_state(model), None,
                                            progress(epoch, micro_index), keep_prefix="best-step-")
                    else:
                        bad_evals += 1
                    history.append({"epoch": epoch, "step": step, **final_metrics})
                    call("on_eval_end", step=step, epoch=epoch, metrics=final_metrics, monitor=cfg.monitor,
                         best=best, is_best=improved)
                next_epoch, next_batch = (epoch + 1, 0) if epoch_complete else (epoch, micro_index)
                stopping = bool(cfg.early_stop and bad_evals >= cfg.early_stop)
                final = stopping or next_epoch >= cfg.epochs or step >= total_steps
                # Epochs of small data take seconds: a full checkpoint (weights + optimizer, fsynced) each
                # time would cost more than the training. Ctrl-C and the stop request save one anyway.
                if final or time.time() - last_saved[0] >= cfg.checkpoint_interval_s:
                    checkpoint("last", next_epoch, next_batch)
                if stopping:
                    call("on_log", level="info",
                         message=f"early stop: {cfg.monitor} did not improve for {bad_evals} evaluations")
                    break
        except KeyboardInterrupt:
            status = "interrupted"
        except Exception as error:
            call("on_run_end", result={"status": "failed", "error": f"{type(error).__name__}: {error}",
                                       "steps": step, "best": best, "monitor": cfg.monitor,
                                       "wall_s": wall_before + time.time() - started})
            distributed.teardown(dist_info)
            raise

    wall = wall_before + time.time() - started
    result = RunResult(
        status=status, steps=step, epochs_done=epoch + (1 if status == "finished" else 0), best=best,
        monitor=cfg.monitor, final_metrics=final_metrics, wall_s=wall,
        samples_per_s=samples_seen / train_time if train_time else 0.0,
        trainable_params=count_params(model)[0],  # after gradual unfreezing, more than at the start
        total_params=total, device=str(device), precision=precision, history=history,
    )
    if status != "finished":
        flags.clear_request()
    if dist_info.is_main and (status == "finished" or step > 0):
        best_folder, _ = latest_checkpoint(ckpt_root, prefix="best-step-")
        if best_folder is not None:  # export the best model seen, not merely the last one
            frozen.load_trainable_state(model, load_checkpoint(best_folder)["model"])
        model.to("cpu").to(memory_format=torch.contiguous_format)
        task.export(model, run_dir, result)
    call("on_run_end", result={"status": status, "error": None, "steps": step, "best": best,
                               "monitor": cfg.monitor, "wall_s": wall, "samples_per_s": result.samples_per_s})
    distributed.teardown(dist_info)
    return result


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
    for batch in loader:
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
