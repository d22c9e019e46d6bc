"""Benchmark on a CUDA GPU: `tlcli zeroshot` against a plain open_clip loop on the same GPU.

    python benchmarks/zeroshot_gpu.py [--images 2000] [--model ViT-B-32]

On a GPU the model is rarely the bottleneck: decoding and resizing JPEGs on the CPU is. So this measures,
in one run, on generated JPEGs (random-init weights):

1. reference: the plain open_clip loop (PIL decode and preprocess in the main thread, encode_image in fp32
   on the GPU, batch 32);
2. model only: open_clip's image tower on ready GPU tensors, fp32 and bf16 autocast, batch 32 and 256;
3. decode only: tlcli's decode + preprocess threads with no model (the CPU-side ceiling);
4. tlcli zeroshot --device cuda as a user runs it (fresh process, cold cache), batch 32 and 256.

Prints a table; results.json goes to the temporary work folder it names.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zeroshot import CLASSES, machine, make_jpegs, report, run_cli  # noqa: E402


def _sync():
    import torch

    torch.cuda.synchronize()


def reference_loop(model_name: str, paths: list[Path], batch_size: int = 32) -> float:
    import open_clip
    import torch
    from PIL import Image

    model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=None)
    model = model.eval().cuda()
    model.encode_image(torch.zeros(2, 3, 224, 224, device="cuda"))  # CUDA context and kernels: not timed
    _sync()
    started = time.time()
    with torch.no_grad():
        for i in range(0, len(paths), batch_size):
            batch = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths[i : i + batch_size]])
            features = model.encode_image(batch.cuda())
            features /= features.norm(dim=-1, keepdim=True)
            features.cpu()
    return len(paths) / (time.time() - started)


def model_only(model_name: str, batch_size: int, precision: str, repeats: int = 20) -> float:
    import open_clip
    import torch

    model = open_clip.create_model(model_name, pretrained=None).eval().requires_grad_(False).cuda()
    batch = torch.randn(batch_size, 3, 224, 224, device="cuda")
    context = torch.autocast("cuda", dtype=torch.bfloat16) if precision == "bf16" else torch.autocast("cuda", enabled=False)
    with torch.inference_mode(), context:
        for _ in range(3):
            model.encode_image(batch)
        _sync()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(repeats):
            model.encode_image(batch)
        end.record()
        _sync()
    return repeats * batch_size / (start.elapsed_time(end) / 1000)


def decode_only(model_name: str, paths: list[Path], workers: int | None) -> float:
    """tlcli's decode threads (PIL steps per image, to-tensor + normalise per batch of 32), no model."""
    import open_clip

    from tlcli.data.images import default_workers, load_images
    from tlcli.models.clip import SplitPreprocess

    _, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=None)
    split = SplitPreprocess.of(preprocess)
    started = time.time()
    arrays = []
    for _, array in load_images(paths, transform=split.per_image, workers=workers or default_workers()):
        arrays.append(array)
        if len(arrays) == 32:
            split.batch(arrays)
            arrays = []
    return len(paths) / (time.time() - started)


def tlcli_zeroshot(data: Path, model_name: str, batch_size: int, home: Path) -> tuple[float, float, str]:
    wall, _, stderr = run_cli(["zeroshot", str(data), "--labels", ",".join(CLASSES), "--templates", "single",
                               "--json", "--device", "cuda", "--batch-size", str(batch_size),
                               "--model", model_name, "--pretrained", "none"], home)
    rate = re.search(r"features: ([\d.]+) images/s", stderr)
    precision = re.search(r"\((\w+), [\w:]+\)", stderr)
    return float(rate.group(1)) if rate else float("nan"), wall, precision.group(1) if precision else "?"


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--model", default="ViT-B-32")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("zeroshot_gpu.py: no CUDA GPU is visible; benchmarks/zeroshot.py measures the CPU path")

    work = Path(tempfile.mkdtemp(prefix="tlcli-bench-gpu-"))
    data = work / "images"
    paths = make_jpegs(data, args.images)
    gpu = torch.cuda.get_device_name()
    results: dict = {"machine": machine(), "gpu": gpu, "images": args.images, "model": args.model}
    print(f"# {gpu}; {results['machine']}; {args.images} JPEGs 320x240; {args.model} random init",
          file=sys.stderr)

    results["reference_images_per_s"] = reference_loop(args.model, paths)
    for precision in ("fp32", "bf16"):
        for batch in (32, 256):
            results[f"model_only_{precision}_b{batch}"] = model_only(args.model, batch, precision)
    results["decode_only_images_per_s"] = decode_only(args.model, paths, None)
    for batch in (32, 256):
        rate, wall, precision = tlcli_zeroshot(data, args.model, batch, work / f"home-{batch}")
        results[f"tlcli_b{batch}_images_per_s"], results[f"tlcli_b{batch}_wall_s"] = rate, wall
        results["tlcli_precision"] = precision

    ref = results["reference_images_per_s"]
    rows = [("open_clip loop (fp32, batch 32, decode in the main thread)", ref, "")]
    for precision in ("fp32", "bf16"):
        for batch in (32, 256):
            rate = results[f"model_only_{precision}_b{batch}"]
            rows.append((f"model-only forward ({precision}, batch {batch})", rate, f"{rate / ref:.1f}x reference"))
    decode = results["decode_only_images_per_s"]
    rows.append(("tlcli decode + preprocess threads alone (no model)", decode, f"{decode / ref:.1f}x reference"))
    for batch in (32, 256):
        rate, wall = results[f"tlcli_b{batch}_images_per_s"], results[f"tlcli_b{batch}_wall_s"]
        rows.append((f"tlcli zeroshot --device cuda ({results['tlcli_precision']}, batch {batch})", rate,
                     f"{rate / ref:.1f}x reference, {rate / decode:.0%} of decode alone; wall {wall:.1f}s"))
    report([(name, f"{rate:.0f} img/s", note) for name, rate, note in rows], results, work)


if __name__ == "__main__":
    main()
