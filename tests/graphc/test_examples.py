"""The study/training examples besides mnist.py run end to end: examples/passes_tour.py
(every -O2 pass under the instruments, -O0 vs -O2 natively) and examples/lenet.py (a short
LeNet-5 run on Fashion-MNIST when the data is installed)."""
import importlib.util
from pathlib import Path

import pytest

from graphc.data import FASHION_MNIST_DIR, MNIST_FILES, _resolve_data_dir

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name):
    spec = importlib.util.spec_from_file_location(f"graphc_example_{name}",
                                                  EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_passes_tour_runs_every_pass_checked_and_fuses(tmp_path, capsys):
    result = load_example("passes_tour").main(["--diff", "--print-after", "fuse",
                                                "--dump-dir", str(tmp_path)])
    names = [r.name for r in result["records"]]
    assert names == ["shape-infer", "constant-fold", "simplify", "cse", "dce", "fuse",
                     "plan-memory"]
    assert result["kernels"][2] < result["kernels"][0] / 3
    out = capsys.readouterr().out
    assert "--- before fuse (6/7)" in out and "# *** IR after fuse (6/7) ***" in out
    assert "fused" in out and "largest difference from the interpreter" in out
    assert len(list(tmp_path.glob("*.gir"))) == len(names) + 1     # the input, then each pass


def _have_data() -> bool:
    directory = _resolve_data_dir(None, "fashion")
    return all((directory / f).is_file() or (directory / f.removesuffix(".gz")).is_file()
               for f in MNIST_FILES)


@pytest.mark.skipif(not _have_data(), reason=f"Fashion-MNIST is not installed ({FASHION_MNIST_DIR})")
def test_lenet_learns_on_a_slice_of_fashion_mnist(capsys):
    accuracies = load_example("lenet").main(["--epochs", "2", "--limit", "3000",
                                             "--show-kernels"])
    assert len(accuracies) == 2 and accuracies[-1] >= 0.65, accuracies
    out = capsys.readouterr().out
    assert "fused:contraction[conv2d,add,relu]" in out and "conv2d_grad_filter" in out
    assert "native kernels per step" in out
