"""Model bundles and the `graphc export` command: a training step exported from a
graphc.Model (Adam) and loaded again takes the same three steps as the original model
(loss, parameters and optimizer state bit for bit); a predict bundle of a trained model
holds the trained weights; the CLI writes a bundle graphc.load runs."""
from __future__ import annotations

import os

import numpy as np
import pytest

import graphc as gc
from graphc import optim
from graphc.cli import main
from graphc.losses import SoftmaxCrossEntropy
from graphc.nn import Dense, Net, ReLU
from ir import BundleError, TrainingError
from ir.serialize import load_gir

FEATURES, CLASSES = 5, 3
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_model():
    return gc.Model(Net([Dense(8), ReLU(), Dense(CLASSES)], seed=0), SoftmaxCrossEntropy(),
                    optim.Adam(lr=0.01))


def batches(n_steps=3, n=6):
    rng = np.random.default_rng(11)
    return [(rng.normal(size=(n, FEATURES)).astype(np.float32),
             rng.integers(0, CLASSES, n)) for _ in range(n_steps)]


def test_train_step_bundle_takes_the_same_steps(tmp_path):
    model = make_model()
    data = batches()
    model.build((FEATURES,))
    manifest = model.export(str(tmp_path / "step"), what="train_step", y=data[0][1])
    assert manifest["aliases"] and all(v in [t["name"] for t in manifest["tensors"]]
                                       for v in manifest["aliases"].values())
    assert {t["role"] for t in manifest["tensors"]} == {"param", "state"}
    loaded = gc.load(str(tmp_path / "step"))
    assert loaded.output_names == ["loss"]
    for k, (x, y) in enumerate(data, start=1):
        want = model.train_step(x, y)
        got = loaded.run({"x": x, "y": y.astype(np.int64), "lr": np.array(0.01, np.float32),
                          "step": np.array(k, np.int64),
                          "loss_scale": np.array(1.0, np.float32)})["loss"]
        assert float(got) == want
    store = model.executable("train_step", y=data[0][1]).params
    assert set(loaded.params) == set(store)
    for name, value in loaded.params.items():
        np.testing.assert_array_equal(value, store[name], err_msg=name)


def test_predict_bundle_of_a_trained_model(tmp_path):
    model = make_model()
    for x, y in batches():
        model.train_step(x, y)
    model.eval()                                  # the inference graph (no step input)
    gc.export(model, str(tmp_path / "pred"), what="predict")
    loaded = gc.load(str(tmp_path / "pred"))
    x = batches(1, 9)[0][0]
    np.testing.assert_array_equal(loaded(x), model.predict(x))


def test_model_export_needs_labels_for_training_graphs(tmp_path):
    model = make_model()
    model.build((FEATURES,))
    with pytest.raises(TrainingError, match="needs example labels"):
        model.export(str(tmp_path / "b"), what="train_step")
    with pytest.raises(BundleError, match="takes no what"):
        gc.export(model.executable("predict"), str(tmp_path / "b"), what="predict")


def test_cli_export_writes_a_loadable_bundle(tmp_path, capsys):
    out = tmp_path / "mlp"
    assert main(["export", os.path.join(ROOT, "examples", "mlp.gir"), "-o", str(out),
                 "-O1"]) == 0
    text = capsys.readouterr().out
    assert f"bundle  {out}" in text and "model.o" in text and "link    cc main.c" in text
    assert sorted(os.listdir(out)) == ["manifest.json", "model.gir", "model.h", "model.o",
                                       "weights.bin"]
    exe = gc.load(str(out))
    assert exe.bundle["opt_level"] == 1
    ref = gc.compile(load_gir(os.path.join(ROOT, "examples", "mlp.gir")), opt_level=1)
    x = np.random.default_rng(2).standard_normal((4, 784)).astype(np.float32)
    np.testing.assert_array_equal(exe(x), ref(x))


def test_cli_export_reports_a_bad_model(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing.gir"), "-o", str(tmp_path / "b")]) == 1
    assert "missing.gir" in capsys.readouterr().err
