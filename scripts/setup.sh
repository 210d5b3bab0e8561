#!/usr/bin/env bash
# Set up graphc on a fresh machine: install the package (with test and progress-bar extras)
# and the Fashion-MNIST data set the examples train on.
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install --quiet -e ".[test,progress]"

DATA_DIR=/usr/share/datasets/fashion-mnist
if [ -f "$DATA_DIR/train-images-idx3-ubyte.gz" ]; then
  echo "setup: Fashion-MNIST found in $DATA_DIR"
elif command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
  echo "setup: installing Fashion-MNIST (Debian package dataset-fashion-mnist)"
  if ! { $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
         { $SUDO apt-get update -qq >/dev/null 2>&1 && \
           $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; }; }; then
    echo "setup: could not install dataset-fashion-mnist with apt-get." >&2
    echo "       Install it by hand (sudo apt-get install -y dataset-fashion-mnist), or download" >&2
    echo "       the four Fashion-MNIST/MNIST IDX files and pass --data-dir DIR to the examples." >&2
    exit 1
  fi
else
  echo "setup: no apt-get here. Download the four Fashion-MNIST IDX files" >&2
  echo "       (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz," >&2
  echo "       t10k-labels-idx1-ubyte.gz) into a directory and pass --data-dir DIR to the examples." >&2
  exit 1
fi
echo "setup: done"
