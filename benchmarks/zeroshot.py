"""Benchmark: `tlcli zeroshot` and `tlcli probe` against a plain open_clip loop.

    .venv/bin/python benchmarks/zeroshot.py [--images 500] [--model ViT-B-32]

In one run, on generated JPEGs (random-init weights, so no download is needed):

1. reference: a plain open_clip loop (PIL decode, open_clip's preprocess, encode_image in fp32, batch 32);
2. model only: open_clip's image-tower forward on ready tensors, bf16 weights (fp32 where the CPU lacks
   bf16), batch 32; from a profile of that forward, the time its matrix multiplications alone take; and
   tlcli's own tower (packed linear layers, class-token-only last block) timed in turns with it;
3. tlcli zeroshot, as a user runs it (a fresh process, cold feature cache, --templates single);
   images/s counts the feature pipeline (decode + preprocess + model), the wall time everything;
4. tlcli zeroshot again, everything cached;
5. tlcli probe twice on the same images: the second run reads every feature from the cache.

Prints a table; the figures also go to results.json in the temporary work folder it names.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TLCLI = [sys.executable, "-m", "tlcli"]
CLASSES = ["apple", "boat", "cloud", "desk", "eagle"]
MATMUL_OPS = ("aten::addmm", "aten::mm", "aten::bmm", "aten::mkldnn_convolution")


def make_jpegs(root: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` 320x240 JPEGs (gradients, shapes and noise: realistic decode cost), in class folders."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    paths = []
    yy, xx = np.mgrid[0:240, 0:320]
    for i in range(count):
        label = CLASSES[i % len(CLASSES)]
        base = np.stack([(xx * rng.uniform(0.2, 0.8) + yy * rng.uniform(0.2, 0.8)) % 256] * 3, axis=-1)
        base = base * rng.uniform(0.3, 1.0, size=3) + rng.normal(0, 12, size=base.shape)
        image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(4):
            x, y = rng.integers(0, 300), rng.integers(0, 220)
            draw.ellipse([x, y, x + rng.integers(10, 80), y + rng.integers(10, 80)],
                         fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
        path = root / label / f"{label}-{i:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, quality=90)
        paths.append(path)
    return paths


def reference_loop(model_name: str, paths: list[Path], batch_size: int = 32) -> float:
    """images/s of the plain open_clip loop (what a user writes from open_clip's README)."""
    import open_clip
    import torch
    from PIL import Image

    model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=None)
    model.eval()
    started = time.time()
    with torch.no_grad():
        for i in range(0, len(paths), batch_size):
            batch = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths[i : i + batch_size]])
            features = model.encode_image(batch)
            features /= features.norm(dim=-1, keepdim=True)
    return len(paths) / (time.time() - started)


def model_only(model_name: str, batches: int = 4, batch_size: int = 32, repeats: int = 3) -> dict:
    """The image tower alone on ready tensors: open_clip's own forward and tlcli's (the same weights,
    packed linear layers, class-token-only last block; see tlcli.models.clip), timed in turns so both see
    the same machine. ``best`` is the best of ``repeats`` timings of ``batches`` forwards (on a shared
    machine the best is the closest to what the hardware does; bf16 kernels are also built on the first
    calls), ``median`` the median. ``matmul_bound`` profiles one open_clip forward: the images/s if
    everything but its matrix multiplications (and the patch-embedding convolution) took no time."""
    import open_clip
    import torch

    from tlcli.engine.device import cpu_has_bf16
    from tlcli.models.clip import _pack_image_tower
    from tlcli.models.packed import packing_available

    dtype = torch.bfloat16 if cpu_has_bf16() else torch.float32
    towers = {}
    for name in ("open_clip", "tlcli"):
        torch.manual_seed(0)
        towers[name] = open_clip.create_model(model_name, pretrained=None).eval().requires_grad_(False).to(dtype)
    if packing_available(torch.device("cpu"), dtype):
        _pack_image_tower(towers["tlcli"])
    size = towers["open_clip"].visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    batch = torch.randn(batch_size, 3, size, size, dtype=dtype)
    timings: dict = {name: [] for name in towers}
    with torch.inference_mode():
        for model in towers.values():  # warm-up
            model.encode_image(batch)
            model.encode_image(batch)
        for _ in range(repeats):
            for name, model in towers.items():
                started = time.time()
                for _ in range(batches):
                    model.encode_image(batch)
                timings[name].append(time.time() - started)
        matmul_s, flops = float("inf"), 0
        for _ in range(repeats):
            with torch.profiler.profile(with_flops=True) as profile:
                towers["open_clip"].encode_image(batch)
            events = [e for e in profile.key_averages() if e.key in MATMUL_OPS]
            if sum(e.self_cpu_time_total for e in events) / 1e6 < matmul_s:
                matmul_s, flops = sum(e.self_cpu_time_total for e in events) / 1e6, sum(e.flops for e in events)
    rate = batches * batch_size
    return {"best": rate / min(timings["open_clip"]), "median": rate / sorted(timings["open_clip"])[repeats // 2],
            "tlcli_best": rate / min(timings["tlcli"]), "dtype": str(dtype).removeprefix("torch."),
            "matmul_bound": batch_size / matmul_s, "matmul_gflops": flops / matmul_s / 1e9 if flops else float("nan")}


def run_cli(args: list[str], home: Path) -> tuple[float, str, str]:
    env = {**os.environ, "TLCLI_HOME": str(home), "TLCLI_PLUGINS": "clip"}
    started = time.time()
    done = subprocess.run(TLCLI + args, capture_output=True, text=True, env=env, cwd=home.parent)
    wall = time.time() - started
    if done.returncode != 0:
        raise SystemExit(f"tlcli {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return wall, done.stdout, done.stderr


def _wall(command: list[str]) -> float:
    started = time.time()
    subprocess.run(command, check=True, capture_output=True)
    return time.time() - started


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from tlcli.engine.device import cpu_has_bf16

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {cores} cores, bf16 {'yes' if cpu_has_bf16() else 'no'}, load {load:.1f} at start"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--model", default="ViT-B-32")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tlcli-bench-"))
    data = work / "images"
    paths = make_jpegs(data, args.images)
    results: dict = {"machine": machine(), "images": args.images, "model": args.model, "weights": "random init"}
    print(f"# {results['machine']}; {args.images} JPEGs 320x240; {args.model} random init", file=sys.stderr)

    results["reference_images_per_s"] = reference_loop(args.model, paths)
    only = model_only(args.model)
    results.update({"model_only_images_per_s": only["best"], "model_only_median_images_per_s": only["median"],
                    "model_only_dtype": only["dtype"], "matmul_bound_images_per_s": only["matmul_bound"],
                    "tlcli_tower_images_per_s": only["tlcli_best"],
                    "matmul_gflops": only["matmul_gflops"]})

    model = ["--model", args.model, "--pretrained", "none"]
    home = work / "home-zeroshot"
    wall, _, stderr = run_cli(["zeroshot", str(data), "--labels", ",".join(CLASSES), "--templates", "single",
                               "--json", *model], home)
    match = re.search(r"(\d+) images in ([\d.]+)s", stderr)
    results["tlcli_zeroshot_wall_s"] = wall
    results["tlcli_zeroshot_precision"] = re.search(r"\((\w+), \w+\)", stderr).group(1) if "(" in stderr else "?"
    feature_line = re.search(r"features: ([\d.]+) images/s", stderr)
    results["tlcli_zeroshot_images_per_s"] = float(feature_line.group(1)) if feature_line else \
        int(match.group(1)) / float(match.group(2))
    results["tlcli_zeroshot_end_to_end_images_per_s"] = args.images / wall
    results["tlcli_zeroshot_second_wall_s"], _, _ = run_cli(
        ["zeroshot", str(data), "--labels", ",".join(CLASSES), "--templates", "single", "--json", *model], home)

    home = work / "home-probe"
    first, out1, _ = run_cli(["probe", str(data), "--json", "--out", str(work / "probe1"), "-q", *model], home)
    second, out2, _ = run_cli(["probe", str(data), "--json", "--out", str(work / "probe2"), "-q", *model], home)
    s1, s2 = json.loads(out1.splitlines()[-1]), json.loads(out2.splitlines()[-1])
    floor = min(_wall([sys.executable, "-c", "import torch"]) for _ in range(3))
    results.update({"probe_first_wall_s": first, "probe_second_wall_s": second, "python_import_torch_s": floor,
                    "probe_second_in_process_s": s2["wall_s"],
                    "probe_first_computed": s1["computed"], "probe_second_computed": s2["computed"],
                    "probe_second_cached": s2["cached"]})

    ref, ceiling = results["reference_images_per_s"], results["model_only_images_per_s"]
    ours = results["tlcli_zeroshot_images_per_s"]
    results["speedup_vs_reference"] = ours / ref
    results["fraction_of_model_only"] = ours / ceiling
    results["probe_second_run_speedup"] = first / second
    rows = [
        ("open_clip loop (fp32, batch 32)", f"{ref:.1f} img/s", ""),
        (f"model-only forward ({results['model_only_dtype']}, batch 32)", f"{ceiling:.1f} img/s",
         f"median {only['median']:.1f}; {ceiling / ref:.2f}x reference"),
        ("  its matrix multiplications alone", f"{only['matmul_bound']:.1f} img/s",
         f"{only['matmul_gflops']:.0f} GFLOP/s; {only['matmul_bound'] / ref:.2f}x reference "
         f"(3x needs {3 * ref:.1f} img/s)"),
        ("tlcli's image tower alone (same weights, batch 32)", f"{only['tlcli_best']:.1f} img/s",
         f"{only['tlcli_best'] / ceiling:.2f}x open_clip's forward"),
        (f"tlcli zeroshot features ({results['tlcli_zeroshot_precision']})", f"{ours:.1f} img/s",
         f"{ours / ref:.2f}x reference (goal 3x), {ours / ceiling:.0%} of model-only (goal >= 85%), "
         f"{ours / only['tlcli_best']:.0%} of its own tower"),
        ("tlcli zeroshot end to end (process start to exit)", f"{args.images / wall:.1f} img/s", f"{wall:.1f}s"),
        ("tlcli zeroshot, second run (everything cached)", f"{results['tlcli_zeroshot_second_wall_s']:.1f}s",
         f"{wall / results['tlcli_zeroshot_second_wall_s']:.0f}x faster"),
        ("tlcli probe, first run", f"{first:.1f}s", f"{s1['computed']} computed"),
        ("tlcli probe, second run", f"{second:.1f}s",
         f"{s2['cached']} cached, {s2['computed']} computed: {first / second:.1f}x faster (goal 10x)"),
        ("  of which its own work (summary wall_s)", f"{s2['wall_s']:.1f}s", ""),
        ("  python -c 'import torch' (the floor of any torch command)", f"{floor:.1f}s", "best of 3"),
    ]
    report(rows, results, work)


def report(rows: list[tuple[str, str, str]], results: dict, work: Path) -> None:
    """Print ``(measure, value, note)`` rows as a table; every figure goes to ``work/results.json``."""
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name.ljust(width)}  {value:>12}  {note}")
    (work / "results.json").write_text(json.dumps(results, indent=1))
    print(f"# details: {work / 'results.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
