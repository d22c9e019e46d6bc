"""Collect installed packages' READMEs (the long description in each distribution's METADATA) as files.

    python benchmarks/readmes.py OUT [--bytes 1000000] [--packages rich,typer,...]

Writes ``OUT/<distribution>.md`` (or ``.rst``/``.txt`` by the README's declared content type), taking the
distributions in name order until ``--bytes`` of text are written (or exactly ``--packages``). A
README under 1,000 characters is passed over (a one-line summary is not a document). Prints one JSON line:
files, bytes and the distributions taken with their versions, so a measurement names its corpus.
The same interpreter, the same corpus: nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
from importlib import metadata
from pathlib import Path

MIN_CHARS = 1000
SKIP = {"tlcli"}  # this project's own README is not a third-party corpus


def readmes() -> dict[str, tuple[str, str, str]]:
    """``{distribution name: (version, extension, text)}`` for every installed distribution with a README."""
    out: dict[str, tuple[str, str, str]] = {}
    for dist in metadata.distributions():
        meta = dist.metadata
        name = (meta.get("Name") or "").lower().replace("_", "-")
        if not name or name in SKIP or name in out:
            continue
        body = meta.get_payload() if hasattr(meta, "get_payload") else None
        text = (body or meta.get("Description") or "").replace("\r\n", "\n")
        if len(text.strip()) < MIN_CHARS:
            continue
        kind = (meta.get("Description-Content-Type") or "").lower()
        extension = ".md" if "markdown" in kind else ".rst" if "rst" in kind else ".txt"
        out[name] = (meta.get("Version") or "?", extension, text)
    return out


def collect(out: Path, limit_bytes: int | None = 1_000_000, packages: list[str] | None = None) -> dict:
    """Write the READMEs under ``out``; return what was written."""
    found = readmes()
    if packages is not None:
        missing = [p for p in packages if p not in found]
        if missing:
            raise SystemExit(f"no README installed for: {', '.join(missing)}")
        names = packages
    else:
        names = sorted(found)
    out.mkdir(parents=True, exist_ok=True)
    written, total = [], 0
    for name in names:
        version, extension, text = found[name]
        data = text.encode("utf-8")
        (out / f"{name}{extension}").write_bytes(data)
        written.append(f"{name}=={version}")
        total += len(data)
        if packages is None and limit_bytes is not None and total >= limit_bytes:
            break
    return {"files": len(written), "bytes": total, "distributions": written}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--bytes", type=int, default=1_000_000, help="stop once this much text is written")
    parser.add_argument("--packages", help="comma-separated distribution names (instead of --bytes)")
    args = parser.parse_args()
    packages = [p.strip().lower() for p in args.packages.split(",")] if args.packages else None
    print(json.dumps(collect(args.out, args.bytes, packages)))


if __name__ == "__main__":
    main()
