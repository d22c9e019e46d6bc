"""The ``model/`` folder of a run that trained LoRA adapters, for every kind of model (images, text, CLIP).

Layout, beside what any run's ``model/`` holds (``model.json``, ``labels.json``, ``preprocessing.json``)::

    model/adapter/adapter_config.json         PEFT's format: PeftModel.from_pretrained(base, model/adapter)
    model/adapter/adapter_model.safetensors   the adapters, keyed on the adapted model's module names
    model/model.safetensors                   what trained in full (the new head) and the buffers, under the
                                              model's own names; no copy of the frozen base

``model.json`` gets a ``"lora"`` object: ``rank``, ``alpha``, ``dropout``, ``targets`` (module names inside
``root``, the submodule PEFT wraps: ``""`` for the whole model, ``"visual"`` for an open_clip image tower),
``adapter`` (the folder's name), ``base`` (what rebuilds the frozen base: the plugin's own description, such
as the model name, the pretrained tag, the weights file) and ``base_digest`` (a hash of the frozen base
weights; loading checks the rebuilt base against it, so adapters never run on the wrong weights).

A plugin writes it with :func:`write_adapted_model` and loads it with :func:`load_adapted_model`, building
the base model itself (only it knows how). ``tlcli merge`` folds the adapters in (:func:`merge_into_base`)
and writes the plain layout of that kind through the plugin's ``merge_adapters`` hook.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tlcli.console.errors import UsageError

ADAPTER_DIR = "adapter"
LORA_KEY = "lora"


def lora_settings(cfg) -> dict:
    """The LoRA options of a config (``tlcli.fields.LoRAOptions``) as model.json records them."""
    rank = int(cfg.lora)
    return {"rank": rank, "alpha": float(cfg.lora_alpha if cfg.lora_alpha is not None else 2 * rank),
            "dropout": float(cfg.lora_dropout)}


def _is_lora(key: str) -> bool:
    return ".lora_A." in key or ".lora_B." in key or ".lora_" in key


def trained_rest(model) -> dict:
    """The model's state that is neither an adapter nor a frozen base parameter: what trained in full (a
    new head) and the buffers (BatchNorm statistics), under the model's own names."""
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    return {k: v for k, v in model.state_dict().items() if k not in frozen and not _is_lora(k)}


def _base_digest(model, rest_keys) -> str:
    from tlcli.engine.frozen import base_digest

    rest = set(rest_keys)
    return base_digest(model, [n for n, _ in model.named_parameters() if n not in rest and not _is_lora(n)])


def write_adapted_model(folder: Path, network, /, *, kind: str, plugin: str, settings: dict, base: dict,
                        root: str = "", labels: list[str] | None = None, preprocessing: dict | None = None,
                        base_model: str | None = None, **meta: Any) -> Path:
    """Write ``model/`` for ``network``, a model whose submodule ``root`` carries LoRA adapters (``apply_lora``): the
    adapter folder in PEFT's format, the rest of the trained state, and model.json (``meta`` as any
    ``write_model`` call takes it, plus the ``lora`` record). ``settings``: :func:`lora_settings`;
    ``base``: what the plugin needs to rebuild the frozen base; ``base_model``: the name PEFT records as
    ``base_model_name_or_path`` (a Hugging Face id where there is one)."""
    from tlcli.adapters.lora import adapted_modules, save_adapter
    from tlcli.runs.artifacts import write_model

    folder, model = Path(folder), network
    adapted = model.get_submodule(root) if root else model
    targets = adapted_modules(adapted)
    if not targets:
        raise ValueError(f"no LoRA adapters in {root or 'the model'}")
    save_adapter(adapted, folder / ADAPTER_DIR, settings["rank"], settings["alpha"], settings["dropout"], targets,
                 base_model=base_model)
    rest = trained_rest(model)
    record = {**settings, "targets": targets, "root": root, "adapter": ADAPTER_DIR, "base": base,
              "base_digest": _base_digest(model, rest)}
    return write_model(folder, kind=kind, plugin=plugin, tensors=rest or None, labels=labels,
                       preprocessing=preprocessing, **meta, **{LORA_KEY: record})


def lora_record(files) -> dict | None:
    """The ``lora`` record of a read model folder (``tlcli.runs.artifacts.ModelFiles``), checked; None for a
    model without adapters."""
    record = files.meta.get(LORA_KEY)
    if record is None:
        return None
    ok = (isinstance(record, dict) and isinstance(record.get("rank"), int) and record["rank"] >= 1
          and isinstance(record.get("alpha"), (int, float)) and isinstance(record.get("dropout"), (int, float))
          and isinstance(record.get("targets"), list) and all(isinstance(t, str) for t in record["targets"])
          and isinstance(record.get("root", ""), str) and isinstance(record.get("adapter", ADAPTER_DIR), str)
          and "/" not in record.get("adapter", ADAPTER_DIR) and ".." not in record.get("adapter", ADAPTER_DIR))
    if not ok:
        raise UsageError(f"{files.path}/model.json: its \"lora\" record is incomplete or malformed; re-export the run")
    return record


def load_adapted_model(model, files) -> Any:
    """Put a run's adapters and trained state into ``model``, the base as the plugin rebuilt it (heads
    included, untrained): LoRA layers injected at the recorded targets, the adapter weights and the rest
    loaded, the rebuilt base checked against the digest. Returns ``model`` (eval mode, frozen)."""
    from tlcli.adapters.lora import apply_lora, load_adapter_state
    from tlcli.runs.artifacts import load_tensors

    record = lora_record(files)
    if record is None:
        raise ValueError("not a LoRA model folder")
    root = record.get("root", "")
    adapted = model.get_submodule(root) if root else model
    where = files.path / record.get("adapter", ADAPTER_DIR)
    try:
        apply_lora(adapted, record["rank"], record["alpha"], record["dropout"], record["targets"])
        load_adapter_state(adapted, load_tensors(where / "adapter_model.safetensors"))
    except (ValueError, AttributeError) as error:
        raise UsageError(f"{where}: the adapters do not fit the rebuilt base model ({error}); re-export the run") \
            from None
    rest = files.tensors() if files.meta.get("weights") else {}
    result = model.load_state_dict(rest, strict=False)
    # Parameters the file lacks are the frozen base (checked by the digest below); buffers are all saved.
    params = {name for name, _ in model.named_parameters()}
    missing = [k for k in result.missing_keys if k not in params]
    if result.unexpected_keys or missing:
        raise UsageError(f"{files.path}: the trained weights do not fit the model (unexpected "
                         f"{result.unexpected_keys[:3]}, missing {missing[:3]}); re-export the run")
    if record.get("base_digest") and _base_digest(model, rest) != record["base_digest"]:
        base = record.get("base") or {}
        named = ", ".join(f"{k} {v}" for k, v in base.items() if v not in (None, "")) or "its base"
        raise UsageError(f"{files.path}: the base weights rebuilt now ({named}) are not those the adapters were "
                         "trained on; put the original weights back (or retrain), since adapters on other weights "
                         "predict nonsense")
    model.requires_grad_(False)
    return model.eval()


def merge_into_base(model) -> Any:
    """The adapted model with every adapter folded into its base weights: the plain model, whose
    ``state_dict()`` has the base model's keys (what a run without adapters exports)."""
    from tlcli.adapters.lora import merge_lora

    return merge_lora(model)


def refuse_adapter_run(model_dir: Path, what: str) -> None:
    """One line for a command that reads a model folder's full weights but got a LoRA run (whose weights
    file holds only the head): merge it first."""
    import json

    try:
        meta = json.loads((Path(model_dir) / "model.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(meta, dict) and LORA_KEY in meta:
        run = Path(model_dir).parent if Path(model_dir).name == "model" else Path(model_dir)
        raise UsageError(f"{what} {run}: a LoRA run (adapters on a base model, no full weights); merge it "
                         f"first: tlcli merge {run} --out MERGED, then pass MERGED")
