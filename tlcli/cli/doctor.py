"""`tlcli doctor`: this machine as tlcli sees it -- the device and precision each workload gets, and why."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("doctor", help="Show where each workload runs and in what precision, and why.\n\n"
                "On a CPU, bf16 is used only where it measured faster than fp32 here (a short calibration, "
                "run once per CPU model and cached in TLCLI_HOME; --recalibrate runs it again).\n\n"
                "Example: tlcli doctor --json")(doctor)


def doctor(
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps"),
    recalibrate: bool = typer.Option(False, "--recalibrate", help="Measure this CPU again."),
    json_output: bool = typer.Option(False, "--json", help="JSON Lines on stdout: one workload a line, then the "
                                     "CPU measurement."),
) -> None:
    from tlcli import device as placement
    from tlcli.output import emit_json, print_table

    if recalibrate:
        placement.calibration_path().unlink(missing_ok=True)
    rows = [placement.resolve(workload, device).record() for workload in placement.WORKLOADS]
    calibration = placement.cpu_calibration() if any(r["device"] == "cpu" for r in rows) else None
    if json_output:
        for row in rows:
            emit_json(row)
        emit_json({"cpu_calibration": calibration, "path": str(placement.calibration_path())})
        return
    print_table("placement", ["workload", "device", "precision", "why"],
                [[r["workload"], r["device"], r["precision"], r["reason"]] for r in rows])
    if calibration is not None:
        identity = calibration.get("identity", {})
        print_table("CPU measurement", ["cpu", "flags", "fp32 s", "bf16 s", "bf16 speed-up", "bf16 cosine"],
                    [[identity.get("cpu", "?"), " ".join(identity.get("flags", [])), calibration.get("fp32_s"),
                      calibration.get("bf16_s"), calibration.get("bf16_speedup"), calibration.get("bf16_cosine")]])
