"""tlcli probe: the feature cache, agreement with scikit-learn, export for predict/evaluate."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from support.clip import make_images


def test_probe_caches_features_and_exports(cli, tiny_config, image_folder, model_args, json_lines):
    args = ["probe", image_folder, "--json", "--val-split", "0.25", *model_args(tiny_config)]
    first = cli(*args, "--out", "run1")
    assert first.exit_code == 0, first.stderr
    summary = json_lines(first.stdout)[-1]
    assert summary["computed"] == 36 and summary["cached"] == 0
    assert summary["best"]["value"] == 1.0 and summary["train_images"] == 27 and summary["val_images"] == 9
    second = cli(*args, "--out", "run2", "--init", "zeroshot", "--shots", "4")
    assert second.exit_code == 0, second.stderr
    again = json_lines(second.stdout)[-1]
    assert again["computed"] == 0 and again["cached"] == 12 + 9
    model_json = json.loads(open("run1/model/model.json").read())
    assert model_json["kind"] == "clip-probe"

    from tlcli_clip.predictor import load_probe_predictor
    from PIL import Image

    predictor = load_probe_predictor(__import__("pathlib").Path("run1/model"), "cpu")
    assert predictor.labels == ["cat", "dog", "fish"]
    paths = [image_folder / "dog" / "dog00.jpg", image_folder / "fish" / "fish01.png"]
    batch = torch.stack([predictor.transform(Image.open(p).convert("RGB")) for p in paths])
    probs = predictor.predict(batch)
    assert probs.shape == (2, 3) and torch.allclose(probs.sum(dim=1), torch.ones(2))
    assert probs.argmax(dim=1).tolist() == [1, 2]


def _hard_features(seed: int, n: int, dim: int = 32, classes: int = 4):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, size=(classes, dim))
    labels = rng.integers(0, classes, size=n)
    x = centres[labels] + rng.normal(0, 2.2, size=(n, dim))
    return F.normalize(torch.tensor(x, dtype=torch.float32), dim=-1), torch.tensor(labels)


@pytest.mark.parametrize("weight_decay", [1e-3, 1e-2, 1e-1])
def test_logistic_regression_matches_scikit_learn(weight_decay):
    from sklearn.linear_model import LogisticRegression

    from tlcli.classify.probe import accuracy, fit

    train_x, train_y = _hard_features(0, 400)
    test_x, test_y = _hard_features(0, 2000)[0][400:], _hard_features(0, 2000)[1][400:]
    weight, bias = fit(train_x.numpy(), train_y.numpy(), 4, weight_decay)
    ours = accuracy(test_x.numpy(), test_y.numpy(), weight, bias)
    # sklearn minimises C * sum(CE) + ||W||^2 / 2, i.e. mean(CE) + ||W||^2 / (2 C n).
    reference = LogisticRegression(C=1.0 / (weight_decay * len(train_y)), max_iter=5000, tol=1e-10)
    reference.fit(train_x.numpy(), train_y.numpy())
    theirs = reference.score(test_x.numpy(), test_y.numpy())
    assert 0.4 < theirs < 0.95  # a problem where the fit matters
    assert abs(ours - theirs) <= 0.01


def test_probe_matches_scikit_learn_on_clip_features(cli, tiny_config, image_folder, model_args, json_lines):
    from sklearn.linear_model import LogisticRegression

    result = cli("probe", image_folder, "--json", "--weight-decay", "0.01", "--out", "run", *model_args(tiny_config))
    assert result.exit_code == 0, result.stderr
    summary = json_lines(result.stdout)[-1]

    from tlcli.data.bad_files import BadFiles
    from tlcli.models.clip import load_clip
    from tlcli_clip.common import labelled_features, split_data

    bad = BadFiles()
    split = split_data(str(image_folder), 0.2, 0, bad)
    clip = load_clip(str(tiny_config), "none", "cpu", "fp32")
    from types import SimpleNamespace

    options = SimpleNamespace(batch_size=32, workers=None, cache=True)
    train = labelled_features(clip, split.train, split.classes, bad, options, True, {})
    val = labelled_features(clip, split.val, split.classes, bad, options, True, {})
    reference = LogisticRegression(C=1.0 / (0.01 * len(train.labels)), max_iter=5000)
    reference.fit(F.normalize(train.features, dim=-1).numpy(), train.labels.numpy())
    theirs = reference.score(F.normalize(val.features, dim=-1).numpy(), val.labels.numpy())
    assert abs(summary["best"]["value"] - theirs) <= 0.01


def test_cache_invalidated_by_file_weights_and_preprocessing(cli, tiny_config, tiny_weights, tmp_path, model_args,
                                                            json_lines):
    from support.clip import TINY_CONFIG

    data = make_images(tmp_path / "data", per_class=3, classes={"a": (200, 0, 0), "b": (0, 0, 200)})

    def computed(*extra):
        result = cli("probe", data, "--json", "--weight-decay", "0.1", *extra)
        assert result.exit_code == 0, result.stderr
        return json_lines(result.stdout)[-1]["computed"]

    assert computed(*model_args(tiny_config, tiny_weights)) == 6
    assert computed(*model_args(tiny_config, tiny_weights)) == 0
    from PIL import Image

    Image.new("RGB", (40, 40), (10, 20, 30)).save(data / "a" / "a00.jpg")  # one file changed
    assert computed(*model_args(tiny_config, tiny_weights)) == 1
    assert computed(*model_args(tiny_config, "none")) == 6  # other weights

    folder = tmp_path / "local-model"
    folder.mkdir()
    shutil.copy(tiny_weights, folder / "open_clip_model.safetensors")
    config = {"model_cfg": TINY_CONFIG, "preprocess_cfg": {}}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    local = ["--model", f"local-dir:{folder}", "--precision", "fp32", "--device", "cpu"]
    assert computed(*local) == 6
    assert computed(*local) == 0
    config["preprocess_cfg"] = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}  # other preprocessing
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    assert computed(*local) == 6


def test_probe_on_cached_features_does_not_import_torch(cli, tiny_config, image_folder, model_args, json_lines,
                                                         tmp_path):
    """The second probe over the same images reads every feature from the cache and fits in NumPy: no
    torch import (about 2 s of start-up), so it runs in about a second."""
    import os
    import subprocess
    import sys

    from tlcli.hardware import no_gpu_possible

    if not no_gpu_possible():
        pytest.skip("GPU device nodes present: device 'auto' has to ask torch")
    args = ["probe", str(image_folder), "--json", "--weight-decay", "0.01", *map(str, model_args(tiny_config))]
    first = cli(*args, "--out", "run1")
    assert first.exit_code == 0, first.stderr
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print('TORCH', 'torch' in sys.modules, file=sys.stderr))\n"
            f"sys.argv[1:] = {args + ['--out', 'run2']!r}\n"
            "from tlcli.cli import main\n"
            "main()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**os.environ, "TLCLI_PLUGINS": "clip"})
    assert done.returncode == 0, done.stderr
    summary = json_lines(done.stdout)[-1]
    assert summary["computed"] == 0 and summary["cached"] == 36
    assert summary["best"] == json_lines(first.stdout)[-1]["best"]
    assert "TORCH False" in done.stderr


def test_predict_and_evaluate_work_on_a_probe_run(cli, tiny_config, image_folder, model_args, json_lines):
    """The core commands load the probe's head by its model kind; on easy data the sweep's tie-break
    (lower validation loss) gives confident probabilities, not the near-uniform ones of the strongest decay."""
    trained = cli("probe", image_folder, "--json", "--out", "run", *model_args(tiny_config))
    assert trained.exit_code == 0, trained.stderr
    summary = json_lines(trained.stdout)[-1]
    assert summary["best"]["value"] == 1.0 and summary["weight_decay"] < 1.0
    evaluated = cli("evaluate", "run", image_folder, "--json")
    assert evaluated.exit_code == 0, evaluated.stderr
    report = json_lines(evaluated.stdout)[-1]
    assert report["n"] == 36 and report["metrics"]["accuracy"] == 1.0
    predicted = cli("predict", "run", image_folder / "fish" / "fish01.png", "--json")
    assert predicted.exit_code == 0, predicted.stderr
    record = json_lines(predicted.stdout)[-2]  # the record, then the summary
    assert record["label"] == "fish" and record["score"] > 0.5


def test_weights_replaced_with_same_size_and_mtime_are_not_mistaken_for_the_old(cli, tiny_config, tiny_weights,
                                                                                tmp_path, model_args, json_lines):
    """cp -p / rsync -a / tar x put a different file at the same path with the old size and mtime: the
    cache must see new weights (content identity), not reuse the old features."""
    import os

    from safetensors.torch import load_file, save_file

    data = make_images(tmp_path / "data", per_class=3, classes={"a": (200, 0, 0), "b": (0, 0, 200)})
    other = tmp_path / "other.safetensors"
    tensors = load_file(str(tiny_weights))
    tensors = {k: (v + 0.05 if v.is_floating_point() else v) for k, v in tensors.items()}
    save_file(tensors, str(other))
    assert other.stat().st_size == tiny_weights.stat().st_size
    weights = tmp_path / "weights.safetensors"
    shutil.copy2(tiny_weights, weights)

    def computed():
        result = cli("probe", data, "--json", "--weight-decay", "0.1", *model_args(tiny_config, weights))
        assert result.exit_code == 0, result.stderr
        return json_lines(result.stdout)[-1]["computed"]

    assert computed() == 6
    assert computed() == 0
    stamp = weights.stat()
    shutil.copy2(other, weights)  # cp -p: same size, same mtime, other content
    os.utime(weights, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert (weights.stat().st_size, weights.stat().st_mtime_ns) == (stamp.st_size, stamp.st_mtime_ns)
    assert computed() == 6
