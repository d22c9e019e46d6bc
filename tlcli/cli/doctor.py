"""`tlcli doctor`: this machine as tlcli sees it -- the device and precision each workload gets, and why."""

from __future__ import annotations

from typing import Literal

from tlcli.cli.command import Command
from tlcli.fields import DEVICE, Options, option

HELP = """Show where each workload runs and in what precision, and why.

On a CPU, bf16 is used only where it measured faster than fp32 here (a short calibration, run once per CPU
model and cached in TLCLI_HOME; --recalibrate runs it again). With --json, one line a workload, then the
summary with the CPU measurement."""


class DoctorConfig(Options):
    device: Literal["auto", "cpu", "cuda", "mps"] = option(DEVICE, "auto | cpu | cuda | mps")
    recalibrate: bool = option(False, "Measure this CPU again.")


def run_doctor(cfg: DoctorConfig, run, report) -> dict:
    from tlcli import device as placement

    if cfg.recalibrate:
        placement.calibration_path().unlink(missing_ok=True)
    rows = [placement.resolve(workload, cfg.device).record() for workload in placement.WORKLOADS]
    calibration = placement.cpu_calibration() if any(r["device"] == "cpu" for r in rows) else None
    for row in rows:
        report.record(row)
    report.table("placement", ["workload", "device", "precision", "why"],
                 [[r["workload"], r["device"], r["precision"], r["reason"]] for r in rows])
    if calibration is not None:
        identity = calibration.get("identity", {})
        report.table("CPU measurement", ["cpu", "flags", "fp32 s", "bf16 s", "bf16 speed-up", "bf16 cosine"],
                     [[identity.get("cpu", "?"), " ".join(identity.get("flags", [])), calibration.get("fp32_s"),
                       calibration.get("bf16_s"), calibration.get("bf16_speedup"), calibration.get("bf16_cosine")]])
    return {"status": "finished", "cpu_calibration": calibration, "path": str(placement.calibration_path())}


DOCTOR = Command("doctor", DoctorConfig, run_doctor, HELP, kind="tool", examples=("tlcli doctor --json",))
