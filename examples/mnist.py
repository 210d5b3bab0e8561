"""Fashion-MNIST with a 784-400-100-10 MLP: the tinynn article's example, compiled by graphc.

    python examples/mnist.py                      # 20 epochs, prints test accuracy per epoch
    python examples/mnist.py --epochs 1 --data-dir DIR

ReLU activations, softmax cross entropy, Adam (lr 1e-3), batch 128, Xavier-uniform weights
and zero biases (tinynn's defaults). Each training step (forward, backward and the Adam
update of every parameter) is ONE native call: `model.train_step(x, y)`. The data comes from
Debian's dataset-fashion-mnist package (scripts/setup.sh installs it) or --data-dir.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import graphc
from graphc.data import BatchIterator, load_mnist
from graphc.losses import SoftmaxCrossEntropy
from graphc.metrics import accuracy
from graphc.nn import Dense, Net, ReLU
from graphc.optim import Adam


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--data-dir", default=None,
                   help="directory with the four IDX files (default: $GRAPHC_DATA_DIR or "
                        "/usr/share/datasets/fashion-mnist)")
    p.add_argument("--seed", type=int, default=0, help="parameter init and shuffling seed")
    return p.parse_args(argv)


def build_model(lr: float, seed: int) -> graphc.Model:
    net = Net([Dense(400), ReLU(), Dense(100), ReLU(), Dense(10)], seed=seed)
    return graphc.Model(net=net, loss=SoftmaxCrossEntropy(), optimizer=Adam(lr=lr))


def main(argv=None) -> list:
    """Train and return the test accuracy after each epoch."""
    args = parse_args(argv)
    x_train, y_train, x_test, y_test = load_mnist(args.data_dir)
    model = build_model(args.lr, args.seed)
    iterator = BatchIterator(batch_size=args.batch_size, seed=args.seed)
    start = time.perf_counter()
    model.build(x_train.shape[1:])
    model.executable("train_step", y=y_train[:1])      # compile now, not inside epoch 1
    print(f"train {x_train.shape}, test {x_test.shape}; compiled in "
          f"{time.perf_counter() - start:.2f} s", flush=True)
    accuracies = []
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        losses = [model.train_step(batch.inputs, batch.targets)
                  for batch in iterator(x_train, y_train)]
        seconds = time.perf_counter() - start
        test_acc = accuracy(model.predict(x_test), y_test)
        accuracies.append(test_acc)
        print(f"epoch {epoch:2d}: loss {np.mean(losses):.4f}, test accuracy {test_acc:.4f}, "
              f"{seconds:.2f} s/epoch", flush=True)
    print(f"final test accuracy: {accuracies[-1]:.4f}")
    return accuracies


if __name__ == "__main__":
    try:
        main()
    except graphc.GraphcError as e:     # e.g. the data files are missing: say how to get them
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
