"""tlcli compare: every method on one split, one table, shared feature cache."""

from __future__ import annotations

from tlcli.cli.report import summary_problems


def test_compare_runs_every_method_on_one_split(cli, tiny_config, image_folder, model_args, json_lines):
    result = cli("compare", image_folder, "--shots", "1,3", "--coop-epochs", "3", "--n-ctx", "2", "--json",
                 "--templates", "single", "--out", "cmp", *model_args(tiny_config))
    assert result.exit_code == 0, result.stderr
    lines = json_lines(result.stdout)
    rows, summary = lines[:-1], lines[-1]
    assert summary_problems(summary) == [] and summary["command"] == "compare"
    assert [(r["method"], r["shots"]) for r in rows] == [
        ("zeroshot", None),
        ("probe", 1), ("probe+zeroshot-init", 1), ("coop", 1),
        ("probe", 3), ("probe+zeroshot-init", 3), ("coop", 3),
    ]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    assert rows[0]["trainable_params"] == 0 and rows[1]["trainable_params"] == 3 * 32 + 3
    assert rows[3]["trainable_params"] == 2 * 64
    assert summary["val_images"] == 6 and summary["computed"] == 9 + 6  # 3-shot pool + held out (20%), once
    again = cli("compare", image_folder, "--shots", "3", "--no-coop", "--json", "--templates", "single",
                *model_args(tiny_config))
    assert again.exit_code == 0, again.stderr
    assert json_lines(again.stdout)[-1]["computed"] == 0


def test_compare_rejects_bad_shots(cli, tiny_config, image_folder, model_args):
    result = cli("compare", image_folder, "--shots", "0,x", *model_args(tiny_config))
    assert result.exit_code == 2 and "--shots" in result.stderr
