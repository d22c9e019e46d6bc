"""`tlcli text compare`: the adaptation ladder on one held-out split of any labelled CSV.

Rows, from no training to all of it: zero-shot (each class name as a sentence, nearest by cosine), a
logistic probe on frozen embeddings, a soft prompt (+ head) on the frozen encoder, LoRA adapters at each
``--ranks`` (+ head), full fine-tuning (+ head). Every row is scored on the same held-out texts, which no
row sees while fitting: the probe picks its weight decay on a split of its own k-shot texts, and the trained
rows run a fixed budget (``--epochs`` over the k-shot texts) and are scored at its end, never at their best
on the test texts. Each seed draws its own k-shot texts and initialises its own head, prompt and adapters.

Per row and shot count: accuracy mean ± std over seeds, trainable parameters, wall time (fitting and
scoring; a trained row includes the engine's final checkpoint), and peak memory: on CUDA the most memory
allocated during the row; on a CPU the process's resident memory above where it stood when the row began,
sampled every 5 ms (freed memory is handed back to the system before each row, so rows do not hide in
memory an earlier one left behind). Every trained row trains its own copy of the encoder, so its memory
counts the weights it trains on, its gradients, optimizer state and activations; the base models loaded
once for all rows are not counted.
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from tlcli.console.errors import UsageError
from tlcli.console.output import display_path
from tlcli.data.labelled import k_shot, stratified_split, training_classes
from tlcli.data.texts import TextSample, read_labelled_texts
from tlcli_text.config import PromptTuneConfig, TextCompareConfig, TextFinetuneConfig

PROMPT_TOKENS = 20  # the soft prompt's virtual tokens (prompt-tune's default)



class PeakMemory:
    """The most memory a block of work added, in MiB (see the module's docstring for how)."""

    def __init__(self, device: str):
        self.device = device
        self.peak_mb = 0.0

    def __enter__(self):
        import gc

        import torch

        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._start = torch.cuda.memory_allocated()
            return self
        _trim_heap()
        import psutil

        self._process = psutil.Process()
        self._start = self._process.memory_info().rss
        self._peak = self._start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self._peak = max(self._peak, self._process.memory_info().rss)

    def __exit__(self, *exc):
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.peak_mb = (torch.cuda.max_memory_allocated() - self._start) / 2**20
            return False
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self._process.memory_info().rss)
        self.peak_mb = (self._peak - self._start) / 2**20
        return False


def _trim_heap() -> None:
    """Give freed heap memory back to the system (glibc keeps it otherwise), so RSS measures what is in use."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the measure is an upper bound of what the row added
        pass


# --- the rows ---------------------------------------------------------------------------------------------

class Ladder:
    """What every row shares: the held-out texts, their embeddings, the loaded encoders, the settings."""

    def __init__(self, cfg: TextCompareConfig, pool: list[TextSample], test: list[TextSample], classes: list[str],
                 run_dir: Path):
        from tlcli.device import resolve_device
        from tlcli_text.job import embedder_for

        self.cfg, self.pool, self.test, self.classes, self.run_dir = cfg, pool, test, classes, run_dir
        self.index = {c: i for i, c in enumerate(classes)}
        self.test_y = np.array([self.index[s.label] for s in test])
        self.device = resolve_device(cfg.device)
        from tlcli.device import resolve

        self.precision = resolve("train", self.device, cfg.precision).precision  # what the trained rows use
        self.embedder = embedder_for(cfg.model, cfg.device)
        self.test_x = self.embedder.encode([s.text for s in test])
        # Loaded before any row is measured: each row trains a copy.
        self.encoder = None
        if {"lora", "full"} & set(cfg.methods):
            from tlcli_text.finetune import encoder_base

            self.encoder = encoder_base(cfg.model, cfg.max_length)
        self.prompt_base = None
        if "prompt" in cfg.methods:
            from tlcli_text.task import load_base

            self.prompt_base = load_base("classify", cfg.model)

    # budgets: a fixed number of passes over the k-shot texts, or two steps with --quick
    def train_options(self, seed: int) -> dict:
        cfg = self.cfg
        budget = {"epochs": 1, "max_steps": 2} if cfg.quick else {"epochs": cfg.epochs}
        return {**budget, "seed": seed, "batch_size": cfg.batch_size, "device": cfg.device,
                "precision": cfg.precision, "workers": 0, "val_split": 0.0, "max_length": cfg.max_length,
                "log_every": 10**9}

    def zeroshot(self) -> tuple[float, int]:
        from tlcli_text.job import label_sentence

        labels = self.embedder.encode([label_sentence(self.cfg.label_template, c) for c in self.classes])
        return float(((self.test_x @ labels.T).argmax(axis=1) == self.test_y).mean()), 0

    def probe(self, chosen: list[TextSample], seed: int) -> tuple[float, int]:
        from tlcli.classify import probe as linear

        x = self.embedder.encode([s.text for s in chosen]).astype(np.float64)
        y = np.array([self.index[s.label] for s in chosen])
        weight, bias, _ = linear.fit_with_inner_split(x, y, len(self.classes), None, seed)
        return linear.accuracy(self.test_x.astype(np.float64), self.test_y, weight, bias), int(weight.size + bias.size)

    def finetune(self, chosen: list[TextSample], seed: int, rank: int | None) -> tuple[float, int]:
        from tlcli_text.finetune import TextFinetuneTask, tokenized

        cfg = TextFinetuneConfig(data="-", model=self.cfg.model, lora=rank, **self.train_options(seed))
        base = self.encoder

        class Kept(TextFinetuneTask):
            def export(self, model, run_dir, result):
                self.trained = model

        task = Kept(cfg, base, self.classes, tokenized(base, chosen, self.index), None)
        trainable = self._fit(task, cfg)
        return self._score(task.trained, tokenized(base, self.test, self.index), base.pad_id), trainable

    def prompt(self, chosen: list[TextSample], seed: int) -> tuple[float, int]:
        from tlcli_text.prompt_tune_job import build_examples
        from tlcli_text.task import Base, PromptTuneTask, pad_id

        cfg = PromptTuneConfig(data="-", mode="classify", model=self.cfg.model, virtual_tokens=PROMPT_TOKENS,
                               **self.train_options(seed))
        # A copy of the frozen encoder, as the LoRA and full rows train a copy of theirs: every trained row's
        # memory counts the model it trains on.
        base = Base(copy.deepcopy(self.prompt_base.model), self.prompt_base.tokenizer, self.prompt_base.max_positions)
        train, test, classes = build_examples(cfg, base, chosen, self.test)
        if classes != self.classes:  # a k-shot draw always holds every class; this would be a bug
            raise UsageError(f"soft prompt: classes {classes} differ from the data's {self.classes}")

        class Kept(PromptTuneTask):
            def export(self, model, run_dir, result):
                self.trained = model

        task = Kept(cfg, base, train, None, classes)
        trainable = self._fit(task, cfg)
        return self._score(task.trained, test, pad_id(base.tokenizer)), trainable

    def _fit(self, task, cfg) -> int:
        from tlcli.engine.loop import fit

        with tempfile.TemporaryDirectory(prefix="tlcli-text-compare-") as folder:
            result = fit(task, cfg, Path(folder), outer_runs=(self.run_dir,))
        if result.status != "finished":
            raise KeyboardInterrupt  # Ctrl-C or a stop request during a row ends the ladder
        return result.trainable_params

    def _score(self, model, examples, pad: int) -> float:
        """Accuracy on the held-out texts, in fp32, batch by batch."""
        import torch

        from tlcli_text.task import collate

        model.to(self.device).eval()
        correct = 0
        with torch.inference_mode():
            for start in range(0, len(examples), 64):
                batch = collate([examples[i] for i in range(start, min(start + 64, len(examples)))], pad)
                logits = model(batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device))
                correct += int((logits.argmax(dim=1).cpu() == batch["labels"]).sum())
        model.to("cpu")
        return correct / len(examples)


def _split(cfg: TextCompareConfig):
    samples = read_labelled_texts(Path(cfg.data))
    if cfg.val:
        pool, test = samples, read_labelled_texts(Path(cfg.val))
    else:
        pool, test = stratified_split(samples, cfg.val_split, cfg.seed)
    classes = training_classes(pool, test, cfg.data, items="rows")
    if not test:
        raise UsageError(f"{display_path(cfg.data)}: no held-out texts; raise --val-split or pass --val FILE")
    return pool, test, classes


def _methods(cfg: TextCompareConfig) -> list[tuple[str, int | None]]:
    """The trained rows in ladder order: (method, LoRA rank or None)."""
    rows = [(m, None) for m in ("probe", "prompt") if m in cfg.methods]
    rows += [("lora", r) for r in cfg.ranks] if "lora" in cfg.methods else []
    return rows + ([("full", None)] if "full" in cfg.methods else [])


def row_name(method: str, rank: int | None) -> str:
    return {"probe": "probe", "prompt": "soft prompt", "full": "full fine-tuning"}.get(method, f"LoRA r={rank}")


def run_compare(cfg: TextCompareConfig, run, report) -> dict:
    """The job of `tlcli text compare`: one record per row and shot count (accuracy mean ± std over the
    seeds, each seed's accuracy, trainable parameters, wall time, peak memory), one ``eval`` event each."""
    started = time.time()
    pool, test, classes = _split(cfg)
    run.start({"model": cfg.model, "classes": classes, "pool_texts": len(pool), "test_texts": len(test),
               "shots": cfg.shots, "seeds": cfg.seeds, "methods": cfg.methods, "ranks": cfg.ranks})
    report.info(f"text compare: {len(test)} held-out texts, {len(classes)} classes, shots {cfg.shots}, "
                f"seeds {cfg.seeds}")
    t = time.time()
    ladder = Ladder(cfg, pool, test, classes, run.path)
    setup_s = time.time() - t
    results: list[dict] = []

    def record(method: str, rank, shots, runs: list[dict]):
        accuracies = [r["accuracy"] for r in runs]
        row = {"method": method, "rank": rank, "row": row_name(method, rank) if method != "zeroshot" else "zero-shot",
               "shots": shots, "seeds": [r["seed"] for r in runs], "accuracies": accuracies,
               "accuracy": statistics.fmean(accuracies),
               "accuracy_std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
               "trainable_params": runs[0]["trainable"],
               "wall_s": statistics.fmean(r["wall_s"] for r in runs),
               "peak_mb": max(r["peak_mb"] for r in runs)}
        results.append(row)
        run.emit("eval", {"metrics": {"accuracy": row["accuracy"], "accuracy_std": row["accuracy_std"]},
                          "method": method, "rank": rank, "shots": shots, "trainable_params": row["trainable_params"]},
                 step=len(results))
        report.record(row)

    def measured(fn, *args) -> dict:
        t0 = time.time()
        with PeakMemory(str(ladder.device)) as memory:
            accuracy, trainable = fn(*args)
        return {"accuracy": accuracy, "trainable": trainable, "wall_s": time.time() - t0, "peak_mb": memory.peak_mb}

    status = "finished"
    try:
        if "zeroshot" in cfg.methods:
            record("zeroshot", None, None, [{"seed": None, **measured(ladder.zeroshot)}])
        for shots in cfg.shots:
            for method, rank in _methods(cfg):
                runs = []
                for seed in cfg.seeds:
                    chosen = k_shot(pool, shots, seed)
                    if method == "probe":
                        out = measured(ladder.probe, chosen, seed)
                    elif method == "prompt":
                        out = measured(ladder.prompt, chosen, seed)
                    else:
                        out = measured(ladder.finetune, chosen, seed, rank)
                    runs.append({"seed": seed, **out})
                    report.info(f"{row_name(method, rank)}, {shots}-shot, seed {seed}: accuracy {out['accuracy']:.4f} "
                                f"in {out['wall_s']:.1f}s")
                record(method, rank, shots, runs)
    except KeyboardInterrupt:
        status = "interrupted"
    if not results:
        raise KeyboardInterrupt  # stopped before its first row: the lifecycle ends the run as interrupted
    best = max(results, key=lambda r: (r["accuracy"], -r["trainable_params"]))
    report.table(f"text compare on {len(test)} held-out texts ({len(cfg.seeds)} seeds; best: {best['row']})",
                 ["row", "shots", "accuracy", "trainable params", "wall", "peak MiB"],
                 [[r["row"], "-" if r["shots"] is None else r["shots"],
                   f"{r['accuracy']:.4f} ± {r['accuracy_std']:.4f}", f"{r['trainable_params']:,}",
                   f"{r['wall_s']:.1f}s", f"{r['peak_mb']:.0f}"] for r in results])
    return {"status": status, "best": {"metric": "accuracy", "value": best["accuracy"], "step": None},
            "best_row": best["row"], "best_shots": best["shots"], "metrics": {"accuracy": best["accuracy"]},
            "results": results, "classes": classes, "test_texts": len(test), "pool_texts": len(pool),
            "seeds": cfg.seeds, "model": cfg.model, "device": ladder.device, "precision": ladder.precision,
            "setup_s": round(setup_s, 3),
            "wall_s": round(time.time() - started, 3), "quick": cfg.quick}
