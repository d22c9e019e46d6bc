"""Placement (tlcli/device.py): one policy table; CPU precision follows what was measured on this CPU."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from tlcli import device
from tlcli.console.errors import UsageError

FAST = {"fp32_s": 0.05, "bf16_s": 0.02, "bf16_speedup": 2.5, "bf16_cosine": 0.99999}
SLOW = {"fp32_s": 0.05, "bf16_s": 0.30, "bf16_speedup": 0.17, "bf16_cosine": 0.99999}  # emulated bf16
INEXACT = {**FAST, "bf16_cosine": 0.99}


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCLI_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(device, "_measured_here", {})
    return tmp_path / "home"


def precisions(calibration: dict) -> dict[str, str]:
    return {w: device.resolve(w, "cpu", calibration=calibration).precision for w in device.WORKLOADS}


def test_cpu_precision_follows_the_measurement():
    assert precisions(FAST) == {"train": "bf16", "encode_images": "bf16", "encode_texts": "bf16", "generate": "fp32"}
    assert precisions(SLOW) == dict.fromkeys(device.WORKLOADS, "fp32")
    # bf16 that is faster but changes text embeddings too much is not used for them.
    assert precisions(INEXACT)["encode_texts"] == "fp32" and precisions(INEXACT)["train"] == "bf16"
    assert "0.17x" in device.resolve("train", "cpu", calibration=SLOW).reason


def test_asked_precision_wins_and_bad_ones_are_one_line_errors():
    assert device.resolve("train", "cpu", "bf16", calibration=SLOW).precision == "bf16"
    assert device.resolve("encode_texts", "cpu", "fp32", calibration=FAST).precision == "fp32"
    assert device.resolve("encode_texts", "cpu", "int8").precision == "int8"
    with pytest.raises(UsageError, match="fp16 needs a GPU"):
        device.resolve("train", "cpu", "fp16")
    with pytest.raises(UsageError, match="int8: only for encoding texts"):
        device.resolve("train", "cpu", "int8")
    with pytest.raises(UsageError, match="--precision fp64"):
        device.resolve("train", "cpu", "fp64")
    with pytest.raises(UsageError, match="--device tpu"):
        device.resolve("train", "tpu")


def test_text_batch_hints_follow_the_precision():
    fp32 = device.resolve("encode_texts", "cpu", calibration=SLOW)
    bf16 = device.resolve("encode_texts", "cpu", calibration=FAST)
    assert (fp32.batch_size, fp32.token_budget) == (16, 2048) and (bf16.batch_size, bf16.token_budget) == (32, 4096)
    assert device.resolve("train", "cpu", calibration=FAST).batch_size is None


def test_the_measurement_runs_once_per_cpu_and_is_cached_in_tlcli_home(home, monkeypatch):
    calls = []

    def measure():
        calls.append(1)
        return dict(FAST)

    first = device.cpu_calibration(measure)
    assert calls == [1] and first["bf16_speedup"] == 2.5
    cached = json.loads(device.calibration_path().read_text())
    assert device.calibration_path().parent == home / "device" and cached["identity"] == device.cpu_identity()
    assert device.cpu_calibration(measure)["bf16_speedup"] == 2.5 and calls == [1]
    # Another CPU (model or flags) is measured afresh.
    monkeypatch.setattr(device, "cpu_identity", lambda: {"cpu": "Other CPU", "flags": ["avx2"], "torch": "x", "version": 2})
    device.cpu_calibration(measure)
    assert calls == [1, 1]


def test_auto_reads_the_cached_measurement(monkeypatch):
    device.cpu_calibration(lambda: dict(SLOW))
    monkeypatch.setattr(device, "measure_cpu", lambda: pytest.fail("measured again"))
    assert device.resolve("encode_texts", "cpu").precision == "fp32"


def test_the_real_measurement_is_short_and_sane():
    import time

    start = time.perf_counter()
    measured = device.measure_cpu()
    assert time.perf_counter() - start < 60  # about 1 s on an idle 2-core EPYC; a loaded shared runner is far slower
    assert measured["bf16_speedup"] > 0 and measured["bf16_cosine"] > 0.99


def test_doctor_shows_every_workload(cli):
    device.cpu_calibration(lambda: dict(FAST))  # into the cli fixture's TLCLI_HOME
    result = cli("doctor", "--json")
    assert result.exit_code == 0, result.stderr
    rows = result.json_lines()
    assert [r["workload"] for r in rows[:4]] == list(device.WORKLOADS)
    assert rows[-1]["cpu_calibration"]["identity"] == device.cpu_identity()


ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_circle_between_the_text_modules_and_no_core_import_of_the_engine_device():
    assert "tlcli.models.embedder" not in _imports(ROOT / "tlcli/models/text.py")
    assert "tlcli.engine.device" not in _imports(ROOT / "tlcli/models/clip.py")
    for path in (ROOT / "tlcli").rglob("*.py"):
        if path.parent.name != "engine":
            assert "tlcli.engine.device" not in _imports(path), path
