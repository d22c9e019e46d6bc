"""`tlcli export RUN_DIR`: a trained run's model as one ONNX or TorchScript file for deployment.

The run's predictor (the one `tlcli predict` uses, from the plugin that made the run) hands over its network
through ``export_module()``; tlcli traces it, runs the file once against torch on check inputs, and writes
the file with its preprocessing (metadata inside, ``FILE.json`` beside, ``FILE.tokenizer/`` for texts).
See tlcli/export/ and docs/export.md.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

from tlcli.cli.command import Command
from tlcli.fields import Options, option

HELP = """Write a trained run's model as one ONNX or TorchScript file for deployment.

The file holds the whole classifier (for CLIP probes, CoOp and visual prompts: the image tower and the
head; for text runs: the encoder and the head) and returns logits. What stays outside the graph is in its
metadata and in FILE.json beside it: image size, mean, std and labels, or for texts the tokenizer
(written to FILE.tokenizer/) and its maximum length. Before writing, the file is run once and its logits
compared with torch's. `tlcli predict FILE` and `tlcli evaluate FILE` run it (ONNX Runtime for .onnx).
Default FILE: RUN_DIR/export/model.onnx (model.pt for TorchScript). A file tlcli did not write is never
replaced."""


class ExportConfig(Options):
    run_dir: str = option(..., "A trained run folder (or its model/ folder).", argument=True, metavar="RUN_DIR",
                          missing="pass a trained run folder")
    format: Literal["onnx", "torchscript"] = option("onnx", "onnx | torchscript", short="-f")
    output: str | None = option(None, "The file to write (.onnx, or .pt for TorchScript); default "
                                "RUN_DIR/export/model.onnx or model.pt.", flag="--out", short="-o")
    dynamic_batch: bool = option(False, "Let the batch size vary (default: a fixed batch of 1). Text inputs always "
                                 "take any length.")


EXPORT = Command("export", ExportConfig, "tlcli.cli.export:run_export", HELP, kind="tool",
                 examples=("tlcli export runs/finetune-20261123-101500 --dynamic-batch",
                           "tlcli predict runs/finetune-20261123-101500/export/model.onnx photos/",
                           "tlcli export runs/text-probe-1 --format torchscript --out probe.pt"))


def run_export(cfg: ExportConfig, run, report) -> dict:
    """Load the run as predict does, trace it, check the file against torch, write it."""
    from tlcli import __version__ as tlcli_version
    from tlcli.cli.predict import load_run_predictor
    from tlcli.console.errors import UsageError
    from tlcli.console.output import display_path
    from tlcli.export import convert, files as export_files
    from tlcli.export.runtime import exported_format
    from tlcli.export.spec import metadata
    from tlcli.runs.artifacts import read_model
    from tlcli.runs.paths import MODEL_DIR

    started = time.time()
    run_dir = Path(cfg.run_dir)
    if exported_format(run_dir) is not None:
        raise UsageError(f"{display_path(run_dir)} is already an exported file; pass the run folder it came from")
    model = read_model(run_dir)
    root = model.path.parent if model.path.name == MODEL_DIR else model.path
    path = export_files.target_path(root, cfg.format, cfg.output)
    replacing = export_files.check_replaceable(path, with_tokenizer=True)
    export_files.remove_leftovers(path)

    predictor = load_run_predictor(run_dir, "cpu")
    export_module = getattr(predictor, "export_module", None)
    if export_module is None:
        raise UsageError(f"{display_path(run_dir)}: models of kind {model.kind!r} (plugin "
                         f"{model.meta.get('plugin', '?')}) cannot be exported: its predictor offers no "
                         "export_module(); use `tlcli predict` on the run folder")
    report.info(f"export: loading {display_path(run_dir)} ({model.kind})")
    exportable = export_module()
    exportable.source = {"run": display_path(root), "kind": model.kind, "plugin": model.meta.get("plugin"),
                         "model": model.meta.get("model"), **exportable.source}
    import torch

    extra = {"torch_version": torch.__version__}
    if cfg.format == "onnx":
        extra.update(exporter=convert.EXPORTER, opset=convert.OPSET)
    tokenizer_name = None
    if exportable.tokenizer_files:
        from tlcli.export.spec import TOKENIZER_FILE

        tokenizer_name = export_files.tokenizer_dir_of(path).name
        extra["tokenizer_sha256"] = export_files.sha256(exportable.tokenizer_files[TOKENIZER_FILE])
    meta = metadata(exportable, cfg.format, cfg.dynamic_batch, **extra)
    report.info(f"export: tracing to {cfg.format}")
    if cfg.format == "onnx":
        data = convert.to_onnx(exportable, cfg.dynamic_batch, meta)
    else:
        data = convert.to_torchscript(exportable, meta)
    parity = convert.verify(exportable, cfg.format, data, cfg.dynamic_batch)
    sidecar = {**meta, "parity": parity,
               "files": {"model": path.name, "sha256": export_files.sha256(data), "tokenizer": tokenizer_name,
                         "tokenizer_files": sorted(exportable.tokenizer_files)}}
    export_files.write_export(path, data, sidecar, exportable.tokenizer_files)

    inputs = ", ".join(f"{i['name']} {i['dtype']}[{', '.join(map(str, i['shape']))}]" for i in meta["inputs"])
    rows = [["file", display_path(path)], ["metadata", display_path(export_files.sidecar_of(path))],
            ["format", cfg.format + (f" (opset {convert.OPSET})" if cfg.format == "onnx" else "")],
            ["size", f"{len(data) / 1e6:.1f} MB"], ["inputs", inputs],
            ["labels", f"{len(exportable.labels)}: {', '.join(exportable.labels[:6])}"
                       + (", ..." if len(exportable.labels) > 6 else "")],
            ["checked", f"max |logit difference| {parity['max_abs_diff']:.2g} ({parity['checked_with']} vs torch)"]]
    if tokenizer_name:
        rows.insert(2, ["tokenizer", display_path(export_files.tokenizer_dir_of(path))])
    report.table(f"export {'replaced' if replacing else 'written'}", ["", ""], rows)
    return {"status": "finished", "run_dir": str(run_dir), "file": str(path),
            "metadata_file": str(export_files.sidecar_of(path)),
            "tokenizer_dir": str(export_files.tokenizer_dir_of(path)) if tokenizer_name else None,
            "format": cfg.format, "modality": exportable.modality, "dynamic_batch": cfg.dynamic_batch,
            "bytes": len(data), "inputs": meta["inputs"], "labels": exportable.labels,
            "max_abs_diff": parity["max_abs_diff"], "checked_with": parity["checked_with"],
            "replaced": replacing, "tlcli_version": tlcli_version, "wall_s": round(time.time() - started, 3)}
