"""An exported file as a predictor for ``tlcli predict`` / ``tlcli evaluate``: ONNX files run in ONNX
Runtime, TorchScript files in torch; the preprocessing comes from the file's own metadata.

The predictors have the interface of a run's (``tlcli.plugin.ImagePredictor`` / ``TextPredictor``), so the
commands print the same lines for a file as for the run it came from. Images go through the same
transform a run's predictor uses (``tlcli.data.decoded.eval_transform``: resize the short side, centre
crop, normalise); texts through the ``tokenizers`` library with the file's tokenizer, truncated to its
``max_length`` and right-padded to the longest text of a batch.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

from tlcli.console.errors import UsageError
from tlcli.console.output import display_path
from tlcli.export.spec import MARKER, OUTPUT_NAME, TOKENIZER_FILE, checked

BACKENDS = ("auto", "torch", "onnxruntime")
TEXT_BATCH = 32  # texts per forward pass (a dynamic-batch file)


def exported_format(path: Path) -> str | None:
    """``"onnx"`` or ``"torchscript"`` for a file ``tlcli export`` may have written (told by its suffix),
    None for a folder (a run); a one-line refusal for any other file."""
    path = Path(path)
    if path.is_dir() or not path.exists():
        return None
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix in (".pt", ".torchscript"):
        return "torchscript"
    raise UsageError(f"{display_path(path)} is a file, not a run folder; pass a run folder, or a file `tlcli export` "
                     "wrote (.onnx, .pt)")


def choose_backend(fmt: str | None, backend: str, path: Path) -> str:
    """The runtime for ``path``: ``--backend auto`` follows the file; a backend that cannot run it is refused."""
    runs = {"onnx": "onnxruntime", "torchscript": "torch", None: "torch"}[fmt]
    if backend in ("auto", runs):
        return runs
    if fmt is None:
        raise UsageError(f"--backend {backend}: {display_path(path)} is a run folder, which runs in torch; export it "
                         f"first (tlcli export {display_path(path)}) and pass the .onnx file it writes")
    kind = {"onnx": "an ONNX", "torchscript": "a TorchScript"}[fmt]
    raise UsageError(f"--backend {backend} cannot run {kind} file ({display_path(path)}); use --backend {runs} "
                     "(or leave --backend out)")


def load_exported(path: Path, fmt: str, device: str):
    """The predictor of an exported file."""
    path = Path(path)
    if fmt == "onnx":
        runner, meta = _onnx(path, device)
    else:
        runner, meta = _torchscript(path, device)
    if meta["modality"] == "text":
        return ExportedTextPredictor(path, meta, runner)
    return ExportedImagePredictor(meta, runner)


def _onnx(path: Path, device: str):
    try:
        import onnxruntime
    except ImportError:
        raise UsageError("running .onnx files needs onnxruntime: pip install 'tlcli[export]'") from None
    available = onnxruntime.get_available_providers()
    if device in ("cuda", "mps") and not (device == "cuda" and "CUDAExecutionProvider" in available):
        raise UsageError(f"--device {device}: this onnxruntime runs on {', '.join(available)}; use --device cpu "
                         "(or install onnxruntime-gpu for CUDA)")
    providers = (["CUDAExecutionProvider"] if device in ("cuda", "auto") and "CUDAExecutionProvider" in available
                 else []) + ["CPUExecutionProvider"]
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=providers)
    except Exception as error:  # onnxruntime's own error types: a truncated or foreign file
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise UsageError(f"{display_path(path)}: not a readable ONNX file ({first}); export it again") from None
    meta = _from_props(session.get_modelmeta().custom_metadata_map, path)
    names = [i.name for i in session.get_inputs()]
    expected = [i["name"] for i in meta.get("inputs", [])]
    if names != expected or OUTPUT_NAME not in [o.name for o in session.get_outputs()]:
        raise UsageError(f"{display_path(path)}: its graph takes {names}, its metadata says {expected}; export it again")
    return (lambda arrays: session.run([OUTPUT_NAME], dict(zip(names, arrays)))[0]), meta


def _from_props(props: dict, path: Path) -> dict:
    from tlcli.export.spec import from_onnx_properties

    return from_onnx_properties(dict(props), display_path(path))


def _torchscript(path: Path, device: str):
    try:
        with zipfile.ZipFile(path) as archive:
            found = [n for n in archive.namelist() if n.endswith(f"/extra/{MARKER}.json")]
            meta_text = archive.read(found[0]).decode("utf-8") if found else None
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError):
        meta_text = None
    if meta_text is None:
        raise UsageError(f"{display_path(path)}: not a TorchScript file `tlcli export` wrote (no {MARKER}.json inside); "
                         "pass a run folder or a file tlcli exported")
    try:
        meta = json.loads(meta_text)
    except ValueError:
        meta = None
    meta = checked(meta, display_path(path))
    import torch

    from tlcli.device import resolve_device

    target = torch.device(resolve_device(device))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 marks TorchScript deprecated
            module = torch.jit.load(str(path), map_location=target)
    except Exception as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise UsageError(f"{display_path(path)}: not a readable TorchScript file ({first}); export it again") from None
    module.eval()

    def run(arrays):
        with torch.inference_mode():
            return module(*[torch.from_numpy(a).to(target) for a in arrays]).float().cpu().numpy()

    return run, meta


def _in_batches(run, arrays: list, fixed: bool):
    """``run`` on ``arrays`` (NumPy, batch first); one row at a time for a file whose batch size is 1."""
    import numpy as np

    if not fixed:
        return np.asarray(run(arrays))
    return np.concatenate([np.asarray(run([a[i:i + 1] for a in arrays])) for i in range(arrays[0].shape[0])])


def _softmax(logits):
    import numpy as np

    if not np.isfinite(logits).all():
        from tlcli.console.errors import JobFailed

        raise JobFailed("the exported model produced non-finite logits (NaN or inf); export it again")
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class ExportedImagePredictor:
    """An exported image classifier: ``transform`` from its metadata, ``predict`` through the file."""

    modality = "image"

    def __init__(self, meta: dict, runner):
        from tlcli.data.decoded import eval_transform

        self.meta, self.labels, self._run = meta, list(meta["labels"]), runner
        self.transform = eval_transform(meta["preprocessing"])

    def logits(self, batch):
        import numpy as np

        pixels = np.ascontiguousarray(batch.float().numpy())
        return _in_batches(self._run, [pixels], not self.meta["dynamic_batch"])

    def predict(self, batch):
        import torch

        return torch.from_numpy(_softmax(self.logits(batch).astype("float64"))).float()


class ExportedTextPredictor:
    """An exported text classifier: its tokenizer from ``FILE.tokenizer/``, checked against the sha256 the
    file recorded when it was exported."""

    modality = "text"

    def __init__(self, path: Path, meta: dict, runner):
        from tlcli.export.files import file_sha256, tokenizer_dir_of
        from tlcli.export.spec import load_tokenizer

        self.meta, self.labels, self._run = meta, list(meta["labels"]), runner
        pre = meta["preprocessing"]
        tokenizer = tokenizer_dir_of(path) / TOKENIZER_FILE
        if not tokenizer.is_file():
            raise UsageError(f"{display_path(path)}: its tokenizer {display_path(tokenizer)} is missing; keep the "
                             f"{tokenizer.parent.name}/ folder beside the file (tlcli export writes both)")
        recorded = meta.get("tokenizer_sha256")
        if recorded is not None and file_sha256(tokenizer) != recorded:
            raise UsageError(f"{display_path(tokenizer)} is not the tokenizer {display_path(path)} was exported with; "
                             "export the run again")
        try:
            self.tokenizer = load_tokenizer(tokenizer.read_text(encoding="utf-8"), pre["max_length"])
        except Exception as error:  # the tokenizers library's own error for a file it cannot parse
            raise UsageError(f"{display_path(tokenizer)}: not a readable tokenizer ({type(error).__name__}); export "
                             "the run again") from None
        self.pad_id = pre["pad_id"]

    def logits(self, texts: list[str]):
        import numpy as np

        from tlcli.export.spec import pad_batch

        chunks = [np.zeros((0, len(self.labels)), dtype=np.float32)]
        for start in range(0, len(texts), TEXT_BATCH):
            ids, mask = pad_batch(self.tokenizer, texts[start:start + TEXT_BATCH], self.pad_id)
            chunks.append(_in_batches(self._run, [ids, mask], not self.meta["dynamic_batch"]))
        return np.concatenate(chunks)

    def predict_texts(self, texts: list[str]):
        return _softmax(self.logits(list(texts)).astype("float64")).astype("float32")
