"""Exported models against torch, measured in one process on this machine: images/s of ONNX Runtime on the
file `tlcli export` writes against torch eager on the same network, same inputs, same thread count.

Models: the distilled student's default architecture (`tlcli distill --student`: mobilenet_v3_small) and a
ResNet-18, random weights, 224x224, 10 classes; batch 1 and 32. Each measurement is repeated (--rounds),
torch and ONNX Runtime interleaved round by round so that a busy neighbour slows both alike; the table
gives the median images/s of each and their ratio, all from this one run. The largest logit difference
between the two is printed too (the parity `tlcli export` checks).

The CPU may be shared with other jobs: compare the ratios, which are measured side by side, more than
the absolute figures.
Usage: python benchmarks/export.py [--models mobilenet_v3_small,resnet18] [--batches 1,32] [--rounds 5]
       [--threads N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def exported(spec: str, size: int, classes: int):
    """(torch module, ONNX bytes) through tlcli's own export path, a dynamic batch axis."""
    import torch

    from tlcli.export.convert import to_onnx
    from tlcli.export.spec import image_exportable, metadata
    from tlcli.models.vision import IMAGENET_MEAN, IMAGENET_STD, build_vision_model

    torch.manual_seed(0)
    model = build_vision_model(spec, "none", num_classes=classes).model
    pre = {"resize": size, "crop": size, "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "interpolation": "bilinear"}
    exportable = image_exportable(model, [f"class_{i}" for i in range(classes)], pre)
    return exportable.module, to_onnx(exportable, True, metadata(exportable, "onnx", True))


def images_per_s(run, batch, repeats: int) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        run(batch)
    return repeats * batch.shape[0] / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="mobilenet_v3_small,resnet18")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for both (default: torch's own choice, the CPUs it may use)")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()

    import numpy as np
    import onnxruntime
    import torch

    from tlcli.hardware import cpu_model

    if options.threads:
        torch.set_num_threads(options.threads)
    threads = torch.get_num_threads()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if threads > 1 and load > (os.cpu_count() or 1):
        print(f"note: load average {load:.1f} on {os.cpu_count()} CPUs; a thread pool of {threads} on a busy CPU "
              "measures the neighbours more than the runtime (torch's OpenMP threads spin-wait for each other); "
              "--threads 1 compares the runtimes", file=sys.stderr)
    session_options = onnxruntime.SessionOptions()
    session_options.intra_op_num_threads = threads
    session_options.inter_op_num_threads = 1
    rows = []
    for spec in options.models.split(","):
        module, data = exported(spec, options.size, 10)
        session = onnxruntime.InferenceSession(data, session_options, providers=["CPUExecutionProvider"])

        def run_torch(batch):
            with torch.inference_mode():
                return module(torch.from_numpy(batch)).numpy()

        def run_onnx(batch):
            return session.run(["logits"], {"pixels": batch})[0]

        for size in map(int, options.batches.split(",")):
            batch = np.random.default_rng(0).standard_normal((size, 3, options.size, options.size), dtype=np.float32)
            difference = float(np.abs(run_torch(batch) - run_onnx(batch)).max())
            repeats = max(1, 16 // size)  # 16 images a round at batch 1, one batch at 32
            for run in (run_torch, run_onnx):  # warm-up: first-call allocations and kernel selection
                run(batch)
            torch_rates, onnx_rates = [], []
            for _ in range(options.rounds):
                torch_rates.append(images_per_s(run_torch, batch, repeats))
                onnx_rates.append(images_per_s(run_onnx, batch, repeats))
            torch_median, onnx_median = statistics.median(torch_rates), statistics.median(onnx_rates)
            rows.append({"model": spec, "batch": size, "torch_images_per_s": round(torch_median, 1),
                         "onnxruntime_images_per_s": round(onnx_median, 1),
                         "speedup": round(onnx_median / torch_median, 2), "max_abs_logit_diff": difference,
                         "file_mb": round(len(data) / 1e6, 1)})
    machine = {"cpu": cpu_model() or "unknown", "cpus": os.cpu_count(), "load_average": round(load, 1),
               "threads": threads, "torch": torch.__version__,
               "onnxruntime": onnxruntime.__version__, "size": options.size, "rounds": options.rounds}
    if options.json:
        print(json.dumps({"machine": machine, "rows": rows}))
        return
    print(f"CPU: {machine['cpu']} ({machine['cpus']} CPUs, load average {load:.1f}); {threads} thread{'s' if threads > 1 else ''} for torch and "
          f"ONNX Runtime alike; torch {torch.__version__}, onnxruntime {onnxruntime.__version__}; "
          f"{options.size}x{options.size}, median of {options.rounds} rounds")
    header = f"{'model':<20} {'batch':>5} {'torch img/s':>12} {'onnxruntime img/s':>18} {'ratio':>6} {'max |diff|':>11}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['model']:<20} {row['batch']:>5} {row['torch_images_per_s']:>12.1f} "
              f"{row['onnxruntime_images_per_s']:>18.1f} {row['speedup']:>6.2f} {row['max_abs_logit_diff']:>11.2g}")


if __name__ == "__main__":
    sys.exit(main())
