"""examples/mnist.py end to end: one epoch on Fashion-MNIST reaches >= 82% test accuracy
(the same model in PyTorch/JAX/numpy reaches 83-86% after one epoch), and missing data files
give a message that says how to install them."""
import importlib.util
from pathlib import Path

import pytest

from graphc.data import FASHION_MNIST_DIR, MNIST_FILES, _resolve_data_dir
from ir.errors import DataError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mnist.py"


def load_example():
    spec = importlib.util.spec_from_file_location("graphc_example_mnist", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _have_data() -> bool:
    directory = _resolve_data_dir(None, "fashion")
    return all((directory / f).is_file() or (directory / f.removesuffix(".gz")).is_file()
               for f in MNIST_FILES)


@pytest.mark.skipif(not _have_data(), reason=f"Fashion-MNIST is not installed (expected the "
                    f"IDX files in $GRAPHC_DATA_DIR or {FASHION_MNIST_DIR}; run "
                    "scripts/setup.sh or apt-get install dataset-fashion-mnist)")
def test_one_epoch_reaches_82_percent(capsys):
    accuracies = load_example().main(["--epochs", "1"])
    assert len(accuracies) == 1
    assert accuracies[0] >= 0.82, accuracies
    out = capsys.readouterr().out
    assert "epoch  1:" in out and "s/epoch" in out and "final test accuracy" in out


def test_missing_data_files_say_how_to_install_them(tmp_path):
    with pytest.raises(DataError) as e:
        load_example().main(["--epochs", "1", "--data-dir", str(tmp_path)])
    text = str(e.value)
    assert "train-images-idx3-ubyte.gz not found" in text and str(tmp_path) in text
    assert "apt-get install -y dataset-fashion-mnist" in text and "--data-dir" in text
