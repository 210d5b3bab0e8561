"""Fashion-MNIST with LeNet-5: convolutions, pooling and dense layers in one compiled step.

    python examples/lenet.py                      # 5 epochs
    python examples/lenet.py --epochs 1 --limit 6000 --data-dir DIR

conv 5x5x6 (pad 2), ReLU, max-pool 2, conv 5x5x16, ReLU, max-pool 2, dense 120, 84, 10;
softmax cross entropy, Adam (lr 1e-3), batch 64. Images are reshaped to 1x28x28 (NCHW). As in
examples/mnist.py, a training step (forward, both convolution gradients, the pooling
gradients and the Adam update) is one native call. `--show-kernels` prints what the step
compiled to: one line per node of the optimised graph (each fused group is one kernel;
reshapes are views).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import graphc
from graphc.data import load_mnist
from graphc.losses import SoftmaxCrossEntropy
from graphc.nn import Conv2D, Dense, Flatten, MaxPool2D, Net, ReLU
from graphc.optim import Adam


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--limit", type=int, default=None,
                   help="train on the first LIMIT training images only (a quick look)")
    p.add_argument("--data-dir", default=None,
                   help="directory with the four IDX files (default: $GRAPHC_DATA_DIR or "
                        "/usr/share/datasets/fashion-mnist)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--show-kernels", action="store_true",
                   help="print the native kernels of the training step")
    return p.parse_args(argv)


def build_model(lr: float, seed: int) -> graphc.Model:
    net = Net([Conv2D(6, 5, padding=2), ReLU(), MaxPool2D(2),
               Conv2D(16, 5), ReLU(), MaxPool2D(2),
               Flatten(), Dense(120), ReLU(), Dense(84), ReLU(), Dense(10)], seed=seed)
    return graphc.Model(net=net, loss=SoftmaxCrossEntropy(), optimizer=Adam(lr=lr))


def as_images(x: np.ndarray) -> np.ndarray:
    return x.reshape(-1, 1, 28, 28)


def main(argv=None) -> list:
    """Train and return the test accuracy after each epoch."""
    args = parse_args(argv)
    x_train, y_train, x_test, y_test = load_mnist(args.data_dir)
    x_train, x_test = as_images(x_train), as_images(x_test)
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    model = build_model(args.lr, args.seed)
    start = time.perf_counter()
    model.build(x_train.shape[1:])
    step = model.executable("train_step", y=y_train[:1])
    print(f"train {x_train.shape}, test {x_test.shape}; compiled in "
          f"{time.perf_counter() - start:.2f} s ({step.kernel_count} native kernels per step)",
          flush=True)
    if args.show_kernels:
        from runtime.profile import kernel_label
        for node in step.graph.nodes:
            if node.op != "constant":
                print(f"  {str(node.outputs[0].type):18s} {kernel_label(node)}")
    # Model.fit: shuffled batches, a line per epoch (a tqdm bar with verbose=1), the test set
    # evaluated after each epoch; examples/mnist.py writes the same loop out by hand
    history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                        validation_data=(x_test, y_test), seed=args.seed, verbose=2)
    accuracies = history["val_accuracy"]
    print(f"final test accuracy: {accuracies[-1]:.4f}")
    return accuracies

if __name__ == "__main__":
    try:
        main()
    except graphc.GraphcError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
