"""An :class:`~tlcli.export.spec.Exportable` as ONNX or TorchScript bytes, checked against torch.

ONNX goes through ``torch.onnx.export(..., dynamo=False)``: the TorchScript-based exporter. torch 2.14's
default (``dynamo=True``) needs the ``onnxscript`` package, which tlcli does not depend on. Opset 17 (a
single LayerNorm node). PyTorch's fused multi-head-attention fast path (``_native_multi_head_attention``,
taken by ``nn.MultiheadAttention`` in eval mode: torchvision ViTs, open_clip towers) has no ONNX form; it
is switched off while tracing, which traces the same arithmetic unfused.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import warnings

from tlcli.console.errors import JobFailed, UsageError
from tlcli.export.spec import (
    MARKER, OUTPUT_NAME, SAMPLE_TEXTS, TOKENIZER_FILE, Exportable, load_tokenizer, onnx_properties, pad_batch,
)

OPSET = 17
EXPORTER = "torch.onnx.export, TorchScript-based (dynamo=False)"
TORCHSCRIPT_EXTRA = MARKER + ".json"  # the metadata inside a TorchScript archive (its extra/ folder)
# Logits of the file against torch's on the same inputs: a bigger difference means the graph does not
# compute what the model computes (a traced branch, an op exported differently), not rounding.
FAITHFUL = 1e-3


def dynamic_axes(exportable: Exportable, dynamic_batch: bool) -> dict:
    """Axis names per input and the output: ``batch`` when asked, ``sequence`` for texts always."""
    axes = {}
    for name in exportable.input_names:
        named = {0: "batch"} if dynamic_batch else {}
        if exportable.modality == "text":
            named[1] = "sequence"
        if named:
            axes[name] = named
    if dynamic_batch:
        axes[OUTPUT_NAME] = {0: "batch"}
    return axes


@contextlib.contextmanager
def _tracing():
    """What tracing needs and prints: no autograd, no fused attention, torch's warnings kept out of the
    user's terminal, and the exporter's C++ log (which dumps the whole graph on any failure) silenced."""
    import torch

    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    debug = os.environ.get("TLCLI_DEBUG") == "1"
    saved = None
    # torch.onnx turns its C++ log on for every export (a bug: it tests the function, not its result), and
    # that log writes the whole graph to stdout, where the --json lines go, when a step fails: sent to
    # stderr, which points at /dev/null meanwhile (--debug keeps it).
    torch._C._jit_set_onnx_log_output_stream("stderr")
    if not debug:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
            sink = os.open(os.devnull, os.O_WRONLY)
            os.dup2(sink, 2)
            os.close(sink)
        except OSError:
            saved = None
    try:
        with warnings.catch_warnings(), torch.no_grad():
            if not debug:
                warnings.simplefilter("ignore")
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)


def _refusal(fmt: str, error: BaseException, other: str) -> UsageError:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    first = lines[0] if lines else type(error).__name__
    if len(first) > 300:
        first = first[:300] + "..."
    return UsageError(f"this model cannot be exported to {fmt} ({type(error).__name__}: {first}); try "
                      f"--format {other} (the run itself still predicts: tlcli predict RUN_DIR; --debug shows "
                      "the details)")


def to_onnx(exportable: Exportable, dynamic_batch: bool, meta: dict) -> bytes:
    """The model as an ONNX file's bytes, ``meta`` in its metadata_props."""
    import torch

    buffer = io.BytesIO()
    try:
        with _tracing():
            torch.onnx.export(exportable.module, exportable.example, buffer, dynamo=False, opset_version=OPSET,
                              input_names=list(exportable.input_names), output_names=[OUTPUT_NAME],
                              dynamic_axes=dynamic_axes(exportable, dynamic_batch), do_constant_folding=True)
    except Exception as error:  # unsupported operators, tracer errors: the model is the problem, not the input
        if os.environ.get("TLCLI_DEBUG") == "1":
            raise
        raise _refusal("ONNX", error, "torchscript") from error
    import onnx

    model = onnx.load_from_string(buffer.getvalue())
    for key, value in onnx_properties(meta).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.doc_string = "Exported by tlcli (`tlcli export`): the inputs, labels and preprocessing are in metadata_props."
    onnx.checker.check_model(model)
    return model.SerializeToString()


def to_torchscript(exportable: Exportable, meta: dict) -> bytes:
    """The model traced to TorchScript (``torch.jit.trace``), ``meta`` as the extra file tlcli_export.json."""
    import torch

    try:
        with _tracing():
            traced = torch.jit.trace(exportable.module, exportable.example, check_trace=False)
            buffer = io.BytesIO()
            torch.jit.save(traced, buffer, _extra_files={TORCHSCRIPT_EXTRA: json.dumps(meta, ensure_ascii=False)})
    except Exception as error:
        if os.environ.get("TLCLI_DEBUG") == "1":
            raise
        raise _refusal("TorchScript", error, "onnx") from error
    return buffer.getvalue()


# --- the check: the file against torch ------------------------------------------------------------------------

def check_inputs(exportable: Exportable, dynamic_batch: bool) -> list[tuple]:
    """Inputs the file is run on after export: for images two random batches, for texts the sample texts
    (padded: short and long together); one item per batch when the batch size is fixed."""
    import torch

    if exportable.modality == "text":
        pre = exportable.preprocessing
        tokenizer = load_tokenizer(exportable.tokenizer_files[TOKENIZER_FILE].decode("utf-8"), pre["max_length"])
        texts = list(SAMPLE_TEXTS)
        groups = [texts] if dynamic_batch else [[t] for t in texts]
        return [tuple(torch.from_numpy(a) for a in pad_batch(tokenizer, group, pre["pad_id"])) for group in groups]
    pixels = exportable.example[0]
    generator = torch.Generator().manual_seed(1)
    batches = [torch.randn(3 if dynamic_batch else 1, *pixels.shape[1:], generator=generator) for _ in range(2)]
    return [(batch,) for batch in batches]


def largest_difference(exportable: Exportable, run_file, batches: list[tuple]) -> tuple[float, float]:
    """(max |file logits - torch logits|, max |torch logits|) over ``batches``."""
    import numpy as np
    import torch

    worst, scale = 0.0, 0.0
    for batch in batches:
        with torch.no_grad():
            expected = exportable.module(*batch).float().numpy()
        got = np.asarray(run_file([t.numpy() for t in batch]), dtype=np.float32)
        if got.shape != expected.shape:
            raise JobFailed(f"the exported file returned logits of shape {got.shape}, torch {expected.shape}; "
                            "this model does not export faithfully")
        worst = max(worst, float(np.abs(got - expected).max()))
        scale = max(scale, float(np.abs(expected).max()))
    return worst, scale


def onnx_runner(data: bytes, input_names):
    """A function running ONNX bytes on NumPy inputs with ONNX Runtime (CPU), returning the logits."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: its warnings name graph internals, not the user's input
    session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    return lambda arrays: session.run([OUTPUT_NAME], dict(zip(input_names, arrays)))[0]


def torchscript_runner(data: bytes):
    import torch

    with tempfile.TemporaryDirectory() as folder:  # torch.jit.load reads a path or a seekable file
        path = os.path.join(folder, "model.pt")
        with open(path, "wb") as handle:
            handle.write(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 marks TorchScript deprecated
            module = torch.jit.load(path, map_location="cpu")

    def run(arrays):
        with torch.no_grad():
            return module(*[torch.from_numpy(a) for a in arrays]).float().numpy()

    return run


def verify(exportable: Exportable, fmt: str, data: bytes, dynamic_batch: bool) -> dict:
    """Run the exported bytes on check inputs and compare with torch: ``{"max_abs_diff", "checked_with"}``;
    JobFailed when they disagree beyond rounding."""
    if fmt == "onnx":
        import onnxruntime

        run_file, checked_with = onnx_runner(data, exportable.input_names), f"onnxruntime {onnxruntime.__version__}"
    else:
        import torch

        run_file, checked_with = torchscript_runner(data), f"torch.jit {torch.__version__}"
    try:
        worst, scale = largest_difference(exportable, run_file, check_inputs(exportable, dynamic_batch))
    except JobFailed:
        raise
    except Exception as error:  # the file does not run on another batch or length: a shape was traced fixed
        what = "batch size or text length" if exportable.modality == "text" else "batch size"
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise UsageError(f"the exported {fmt} file does not run on another {what} ({first}); "
                         + ("export without --dynamic-batch" if dynamic_batch else "this model cannot be exported")
                         ) from None
    if worst > FAITHFUL * max(1.0, scale):
        raise JobFailed(f"the exported {fmt} file's logits differ from torch's by {worst:.3g} (largest logit "
                        f"{scale:.3g}); it does not compute what the model computes, so nothing was written")
    return {"max_abs_diff": worst, "checked_with": checked_with}
