"""Start-up time of `tlcli --help` (and a group's help), against a bare Python start in the same script.

    python benchmarks/startup.py [--rounds 9] [--ref REV]

Each round times, in alternation, `python -c pass`, `python -m tlcli --help` and `python -m tlcli rag
--help` in fresh processes; the report is the median of each, and tlcli's time above the bare start. With
--ref REV, the same commands at another commit (checked out into a temporary worktree) run in the same
rounds, so a change is measured against its baseline under the same load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(args: list[str], env: dict, cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--ref", help="a git revision to compare with (e.g. the commit before a change)")
    args = parser.parse_args()
    trees = {"this tree": ROOT}
    temp = None
    if args.ref:
        temp = tempfile.mkdtemp(prefix="tlcli-ref-")
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", temp, args.ref], check=True,
                       capture_output=True)
        trees[args.ref] = Path(temp)
    # -S with site-packages on the path: an editable install's import hook (a .pth file) would otherwise
    # load this checkout's tlcli whatever the path says; every case starts the same way.
    import site

    packages = os.pathsep.join(site.getsitepackages())
    cases = {"python -c pass": ([sys.executable, "-S", "-c", "pass"], {**os.environ, "PYTHONPATH": packages}, ROOT)}
    for label, tree in trees.items():
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(tree / "plugins"), packages])}
        # run from the tree itself: `python -m` puts the current folder first on the path
        cases[f"tlcli --help ({label})"] = ([sys.executable, "-S", "-m", "tlcli", "--help"], env, tree)
        cases[f"tlcli rag --help ({label})"] = ([sys.executable, "-S", "-m", "tlcli", "rag", "--help"], env, tree)
    times: dict[str, list[float]] = {name: [] for name in cases}
    try:
        for _ in range(args.rounds):
            for name, (command, env, cwd) in cases.items():
                times[name].append(timed(command, env, cwd))
    finally:
        if temp:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", temp], capture_output=True)
    bare = statistics.median(times["python -c pass"])
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               "?") if os.path.exists("/proc/cpuinfo") else "?"
    print(f"# {cpu}; median of {args.rounds} rounds")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<36} {median * 1000:7.0f} ms   (+{(median - bare) * 1000:5.0f} ms over a bare start)")


if __name__ == "__main__":
    main()
