"""Zero-shot CLIP on scikit-image's sample photos, when CLIP weights are already cached.

No weights can be downloaded during `make demo` on an offline machine: then this prints why it skipped and
exits 0. With the default weights cached (ViT-B-32 laion2b_s34b_b79k, e.g. after one online run of
`tlcli zeroshot`), it labels the photos.
Usage: python examples/clip_zeroshot/run.py [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

PHOTOS = {"astronaut": "an astronaut", "chelsea": "a cat", "coffee": "a cup of coffee", "rocket": "a rocket",
          "camera": "a photographer"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / "work")
    options = parser.parse_args()
    from PIL import Image
    from skimage import data

    options.work.mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        Image.fromarray(getattr(data, name)()).save(options.work / f"{name}.png")
    done = subprocess.run([sys.executable, "-m", "tlcli", "zeroshot", str(options.work), "--labels",
                           ",".join(PHOTOS.values()), "--json"], capture_output=True, text=True)
    if done.returncode == 2:
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no weights"
        print(f"skipped CLIP zero-shot (weights not cached here): {reason}", file=sys.stderr)
        return
    if done.returncode != 0:
        sys.exit(done.stderr)
    print("\nCLIP zero-shot on scikit-image sample photos")
    for line in done.stdout.splitlines():
        row = json.loads(line)
        if "path" not in row:  # the summary, the last line
            continue
        expected = PHOTOS[Path(row["path"]).stem]
        mark = "ok" if row["label"] == expected else f"expected {expected}"
        print(f"{Path(row['path']).name:<16} {row['label']:<20} {row['score']:.2f}  {mark}")


if __name__ == "__main__":
    main()
