"""P1/P3: a prompt template cannot exhaust the machine or read other files, and a model folder's
pickled weights neither run nor make tlcli advise `weights_only=False`."""

import json
import shutil
import time

import pytest

TEMPLATES = {
    "nested_loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "huge_repeat": "{{ 'A' * 3000000000 }}",
    "huge_output": "{% for i in range(100000) %}{% for j in range(100) %}xxxxxxxxxx{% endfor %}{% endfor %}",
    "doubling": "{% set ns = namespace(s='AB') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "wide_format": "{{ '{:>3000000000}'.format(question) }}",
    "wide_filter": "{{ question | center(3000000000) }}",
    "power": "{{ 7 ** 123456789 }}",
    "endless_macro": "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "chained_concat": "{% set a = 'A' * 1000000 %}{% set b = a ~ a ~ a %}",
    "long_chained_concat": "{% set a = 'A' * 1000000 %}{% set b = " + " ~ ".join(["a"] * 9000) + " %}",
    "concat_of_lists": "{% set a = range(100000) | list %}{% set b = " + " ~ ".join(["a"] * 9000) + " %}",
}
HEADER = '{#- tlcli-template\nvariables = ["question"]\n-#}\n'


@pytest.fixture
def scripted(tmp_path):
    path = tmp_path / "replies.json"
    path.write_text(json.dumps(["The answer is 2."]))
    return f"scripted:{path}"


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_a_template_that_would_exhaust_the_machine_is_one_clear_error(cli, tmp_path, questions, scripted, name):
    template = tmp_path / f"{name}.jinja"
    template.write_text(HEADER + TEMPLATES[name])
    start = time.monotonic()
    result = cli("prompt", "run", str(template), "--input", questions, "--llm", scripted)
    assert time.monotonic() - start < 10
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert f"template {name!r}" in line
    assert any(words in line for words in ("ran for over", "produced over", "asked for", "recurses")), line


@pytest.mark.parametrize("tag", ["{% include 'secrets.txt' %}", "{% import 'm.jinja' as m %}",
                                 "{% from 'm.jinja' import x %}", "{% extends 'base.jinja' %}"])
def test_templates_cannot_pull_in_other_files(cli, tmp_path, questions, scripted, tag):
    template = tmp_path / "pull.jinja"
    template.write_text(HEADER + "{{ question }}\n" + tag)
    result = cli("prompt", "run", str(template), "--input", questions, "--llm", scripted)
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert "is not supported; a template is one self-contained file" in result.stderr


def test_ordinary_templates_still_render(cli, tmp_path, questions, scripted):
    template = tmp_path / "fine.jinja"
    template.write_text(HEADER + "{% for i in range(3) %}{{ i }}{% endfor %} {{ question | upper }} "
                        "{{ '%5d' % 7 }} {{ '25% of 1234567 {x}' }} {{ 'ab' * 3 }}\nA:")
    result = cli("prompt", "run", str(template), "--input", questions, "--llm", scripted, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json_lines()[0]["prompt"] == "012 WHAT IS 1 + 1?     7 25% of 1234567 {x} ababab\nA:"


def test_pickled_weights_never_run_and_no_unsafe_advice(cli, tmp_path, questions):
    from tlcli.llm.tiny import build_tiny_causal_lm

    folder = build_tiny_causal_lm(tmp_path / "model", n_layer=1, n_embd=16, n_head=1, n_positions=32)
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "RAN"
    # A classic malicious pickle, written as bytes: unpickling it would run `touch RAN`.
    (folder / "pytorch_model.bin").write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    result = cli("prompt", "run", "direct", "--input", questions, "--llm", f"hf:{folder}")
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert "pickle" in result.stderr and "safetensors" in result.stderr
    assert "weights_only=False" not in result.stderr and "set to `False`" not in result.stderr
    assert not marker.exists()
    shutil.rmtree(folder)


def test_a_render_that_fails_otherwise_leaves_no_watchdog_behind(cli, tmp_path, questions, scripted):
    template = tmp_path / "endless_macro.jinja"
    template.write_text(HEADER + TEMPLATES["endless_macro"])
    assert cli("prompt", "run", str(template), "--input", questions, "--llm", scripted).exit_code == 2
    deadline = time.monotonic() + 2.5  # past MAX_RENDER_SECONDS: a watch left running would fire in here
    while time.monotonic() < deadline:
        time.sleep(0.05)
