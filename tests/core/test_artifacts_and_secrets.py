"""Model artifacts round-trip and fail in one line; secrets are masked wherever they appear."""

from __future__ import annotations

import numpy as np
import pytest

from tlcli.runs.artifacts import read_model, write_model
from tlcli.console.errors import UsageError
from tlcli.runs.events import parse_event_line
from tlcli.console.output import terminal_safe
from tlcli.console.secrets import redact, redact_text, remember_secret


def test_model_round_trip_numpy(tmp_path):
    weight = np.arange(6, dtype=np.float32).reshape(2, 3)
    write_model(tmp_path / "model", kind="demo-probe", plugin="demo", tensors={"weight": weight},
                weights_file="head.safetensors", labels=["a", "b"], preprocessing={"size": 4}, model="x")
    files = read_model(tmp_path)
    assert files.kind == "demo-probe" and files.labels == ["a", "b"] and files.preprocessing == {"size": 4}
    assert files.meta["num_classes"] == 2 and files.meta["model"] == "x"
    np.testing.assert_array_equal(files.tensors(framework="np")["weight"], weight)


def test_corrupt_or_missing_model_files_are_one_line_errors(tmp_path):
    write_model(tmp_path / "model", kind="k", plugin="p", tensors={"w": np.zeros(3, np.float32)})
    (tmp_path / "model" / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(UsageError, match="not a readable safetensors"):
        read_model(tmp_path).tensors()
    (tmp_path / "model" / "model.json").write_text("{not json")
    with pytest.raises(UsageError, match="unreadable"):
        read_model(tmp_path)
    with pytest.raises(UsageError, match="no model/model.json"):
        read_model(tmp_path / "elsewhere")


def test_secrets_are_masked_by_name_and_shape():
    remember_secret("my-very-own-key-123")
    config = {"api_key": "abc", "max_tokens": 256, "api_key_env": "OPENAI_API_KEY",
              "spec": "openai:http://bob:pw123@example.test/v1#m", "note": "used my-very-own-key-123"}
    masked = redact(config)
    assert masked["api_key"] == "***" and masked["max_tokens"] == 256 and masked["api_key_env"] == "OPENAI_API_KEY"
    assert "pw123" not in masked["spec"] and "my-very-own-key-123" not in masked["note"]
    assert "sk-live" not in redact_text("error: header Authorization: Bearer sk-live1234567890 was refused")


def test_terminal_safe_escapes_control_sequences():
    name = "cat\x1b]52;c;ZXZpbA==\x07.jpg\nwarning: forged"
    shown = terminal_safe(f"skipped {name}")
    assert "\x1b" not in shown and "\x07" not in shown and "\n" not in shown
    assert "\\x1b" in shown and "\\n" in shown


@pytest.mark.parametrize("line", [
    '{"kind": "metric", "step": Infinity, "epoch": NaN, "data": [1]}',
    '{"kind": "run_start", "step": 1e300, "time": "yesterday", "run": 5, "stage": {}}',
    '{"kind": "log", "step": -3, "data": {"message": "x"}}',
])
def test_event_envelope_is_normalised(line):
    event = parse_event_line(line)
    assert isinstance(event["step"], int) and event["step"] >= 0
    assert isinstance(event["epoch"], float) and event["epoch"] == event["epoch"]
    assert isinstance(event["data"], dict)
    assert event["run"] is None or isinstance(event["run"], str)


@pytest.mark.parametrize("line", ["", "   ", "[1, 2]", '{"no": "kind"}', "{torn", "x" * (2 * 1024 * 1024)])
def test_non_events_are_none(line):
    assert parse_event_line(line) is None


def test_identical_exports_are_identical_bytes(tmp_path):
    """safetensors writes metadata keys in hash order: two processes exporting the same model differed."""
    import subprocess
    import sys

    code = ("import sys, torch; from tlcli.runs.artifacts import write_model; "
            "write_model(sys.argv[1], kind='image-classifier', plugin='finetune', tensors={'w': torch.arange(4.0)}, "
            "labels=['a', 'b'])")
    outputs = []
    for i in range(4):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / str(i))], check=True, timeout=120)
        outputs.append((tmp_path / str(i) / "model.safetensors").read_bytes())
    assert len(set(outputs)) == 1
    from safetensors.torch import load_file

    assert load_file(str(tmp_path / "0" / "model.safetensors"))["w"].tolist() == [0.0, 1.0, 2.0, 3.0]
