"""Training data: the IDX file format, (Fashion-)MNIST loading, mini-batching, one-hot labels.

numpy only; nothing here builds graphs. Every problem a user can hit (a missing or malformed
file, labels out of range, mismatched arrays) raises `DataError` saying what was expected and
what was found.

IDX (the MNIST container) is: two zero bytes, an element-type code, the rank, then one
big-endian uint32 per dim, then the elements in C order, big-endian. Files may be gzipped; we
sniff the gzip magic rather than trusting the file name.
"""
from __future__ import annotations

import gzip
import os
import zlib
from collections import namedtuple
from pathlib import Path

import numpy as np

from ir.errors import DataError

# IDX element-type code -> (big-endian numpy dtype, name used in messages)
IDX_DTYPES = {
    0x08: (np.dtype(">u1"), "ubyte"),
    0x09: (np.dtype(">i1"), "byte"),
    0x0B: (np.dtype(">i2"), "short"),
    0x0C: (np.dtype(">i4"), "int"),
    0x0D: (np.dtype(">f4"), "float"),
    0x0E: (np.dtype(">f8"), "double"),
}
_CODE_OF_KIND = {np.dtype(dt).newbyteorder("=").str: code for code, (dt, _) in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"

# Debian's dataset-fashion-mnist package installs the four files here.
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
DATA_DIR_ENV = "GRAPHC_DATA_DIR"
MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
NUM_CLASSES = 10


# -- IDX files ------------------------------------------------------------------------------------

def read_idx(path) -> np.ndarray:
    """Read an IDX file (gzipped or raw, any rank) into a native-endian numpy array."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"IDX file not found: expected a file at {path}") from None
    except OSError as e:
        raise DataError(f"cannot read IDX file {path}: {e.strerror or e}") from None
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: expected a complete gzip stream (the file starts with the "
                            f"gzip magic), but it is corrupt or truncated: {e}") from None
    return _parse_idx(raw, str(path))


def _parse_idx(raw: bytes, where: str) -> np.ndarray:
    if len(raw) < 4:
        raise DataError(f"{where}: expected a 4-byte IDX magic number, found only {len(raw)} bytes")
    if raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{where}: not an IDX file: expected the magic number to start with two "
                        f"zero bytes, found 0x{raw[:4].hex()}")
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X} ({name})" for c, (_, name) in IDX_DTYPES.items())
        raise DataError(f"{where}: unknown IDX element type code 0x{code:02X}; expected one of "
                        f"{known}")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(f"{where}: expected a {header_len}-byte header for a rank-{ndim} IDX "
                        f"file, found only {len(raw)} bytes")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dt, type_name = IDX_DTYPES[code]
    need = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    have = len(raw) - header_len
    if have != need:
        dims = "x".join(map(str, shape)) or "scalar"
        found = f"only {have}" if have < need else \
            f"{have} (trailing bytes: the header's dims do not match the file)"
        raise DataError(f"{where}: expected {need} bytes of data ({dims} {type_name}) after the "
                        f"{header_len}-byte header, found {found}")
    data = np.frombuffer(raw, dtype=dt, offset=header_len).reshape(shape)
    return data.astype(dt.newbyteorder("="))   # native byte order, and a writable copy


def write_idx(path, array, compress: bool | None = None) -> None:
    """Write `array` as an IDX file; gzipped when `compress` (default: the name ends in .gz)."""
    array = np.asarray(array)
    code = _CODE_OF_KIND.get(array.dtype.newbyteorder("=").str)
    if code is None:
        known = ", ".join(name for _, name in IDX_DTYPES.values())
        raise DataError(f"IDX cannot store dtype {array.dtype}; expected one of {known} "
                        "(uint8, int8, int16, int32, float32, float64)")
    if array.ndim > 255 or any(d >= 2 ** 32 for d in array.shape):
        raise DataError(f"IDX cannot store shape {array.shape}: rank must be < 256 and dims < 2^32")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code][0]).tobytes()
    path = Path(path)
    if compress is None:
        compress = path.suffix == ".gz"
    path.write_bytes(gzip.compress(payload) if compress else payload)


# -- (Fashion-)MNIST ------------------------------------------------------------------------------

def load_mnist(data_dir=None, kind: str = "fashion", flatten: bool = True):
    """Load (Fashion-)MNIST as (x_train, y_train, x_test, y_test).

    Images are float32 scaled to [0, 1], shaped (N, H*W) (784 for MNIST) or, with
    flatten=False, (N, 1, H, W); labels are int64 in 0..9. The directory is `data_dir`, else
    $GRAPHC_DATA_DIR, else (kind="fashion") Debian's /usr/share/datasets/fashion-mnist. Real
    MNIST uses the same four file names; each may also be stored without the .gz suffix.
    """
    if kind not in ("fashion", "mnist"):
        raise DataError(f"unknown dataset kind {kind!r}; expected 'fashion' or 'mnist'")
    directory = _resolve_data_dir(data_dir, kind)
    arrays = [read_idx(_find_file(directory, name, kind)) for name in MNIST_FILES]
    x_train, y_train = _check_split(arrays[0], arrays[1], "train", directory)
    x_test, y_test = _check_split(arrays[2], arrays[3], "t10k", directory)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{directory}: train and test images must have the same size, found "
                        f"{x_train.shape[1:]} and {x_test.shape[1:]}")
    return (_scale_images(x_train, flatten), y_train, _scale_images(x_test, flatten), y_test)


def _resolve_data_dir(data_dir, kind: str) -> Path:
    if data_dir is not None:
        return Path(data_dir)
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV])
    if kind == "fashion":
        return Path(FASHION_MNIST_DIR)
    raise DataError("MNIST has no default location: pass data_dir= (--data-dir on the command "
                    f"line) or set {DATA_DIR_ENV} to a directory holding the four IDX files "
                    f"({', '.join(MNIST_FILES)})")


def _find_file(directory: Path, name: str, kind: str) -> Path:
    for candidate in (directory / name, directory / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    dataset = "Fashion-MNIST" if kind == "fashion" else "MNIST"
    how = ("install Debian's copy with `sudo apt-get install -y dataset-fashion-mnist`, or pass "
           if kind == "fashion" else "pass ")
    raise DataError(f"{dataset} file {name} not found: expected it (or "
                    f"{name.removesuffix('.gz')}) in {directory}. To get it, {how}"
                    f"--data-dir / data_dir= (or set {DATA_DIR_ENV}) naming a directory with the "
                    f"four IDX files: {', '.join(MNIST_FILES)}")


def _check_split(images: np.ndarray, labels: np.ndarray, split: str, directory: Path):
    where = f"{directory}/{split}"
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{where} images: expected a rank-3 ubyte IDX array (N, H, W), found "
                        f"rank {images.ndim} {images.dtype} with shape {images.shape}")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"{where} labels: expected a rank-1 integer IDX array (N,), found rank "
                        f"{labels.ndim} {labels.dtype} with shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{where}: expected as many labels as images, found {len(images)} images "
                        f"and {len(labels)} labels")
    labels = labels.astype(np.int64)
    _check_label_range(labels, NUM_CLASSES, f"{where} labels")
    return images, labels


def _scale_images(images: np.ndarray, flatten: bool) -> np.ndarray:
    n, h, w = images.shape
    scaled = images.astype(np.float32)
    scaled *= np.float32(1.0 / 255.0)
    return scaled.reshape(n, h * w) if flatten else scaled.reshape(n, 1, h, w)


# -- batching -------------------------------------------------------------------------------------

Batch = namedtuple("Batch", ["inputs", "targets"])


class BatchIterator:
    """Mini-batches over paired arrays (tinynn-compatible).

        iterator = BatchIterator(batch_size=64, seed=0)
        for epoch in range(10):
            for x, y in iterator(x_train, y_train):   # each batch is a Batch(inputs, targets)
                ...

    Each pass over `iterator(x, y)` is an epoch: with shuffle=True it draws a fresh permutation
    from one Generator seeded at construction, so a seed makes the whole run reproducible. The
    last partial batch is yielded unless drop_last. `len(iterator(x, y))` (or `len(iterator)`
    once it has been given data) is the number of batches per epoch.
    """

    def __init__(self, batch_size: int = 32, shuffle: bool = True, seed=None,
                 drop_last: bool = False):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise DataError(f"batch_size must be a positive integer, found {batch_size!r}")
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self._rng = np.random.default_rng(seed)
        self._num_examples = None

    def __call__(self, inputs, targets) -> "_Epochs":
        inputs, targets = np.asarray(inputs), np.asarray(targets)
        if inputs.ndim == 0 or targets.ndim == 0:
            raise DataError("BatchIterator expects arrays with a leading example axis, found "
                            f"shapes {inputs.shape} and {targets.shape}")
        if len(inputs) != len(targets):
            raise DataError(f"BatchIterator expects inputs and targets of the same length, found "
                            f"{len(inputs)} inputs {inputs.shape} and {len(targets)} targets "
                            f"{targets.shape}")
        self._num_examples = len(inputs)
        return _Epochs(self, inputs, targets)

    def num_batches(self, num_examples: int) -> int:
        """Batches per epoch for a data set of `num_examples` examples."""
        if self.drop_last:
            return num_examples // self.batch_size
        return -(-num_examples // self.batch_size)

    def __len__(self) -> int:
        if self._num_examples is None:
            raise DataError("len(BatchIterator) is known only after it has been given data: "
                            "call it as iterator(x, y) first, or use iterator.num_batches(n)")
        return self.num_batches(self._num_examples)

    def _batches(self, inputs: np.ndarray, targets: np.ndarray):
        n = len(inputs)
        order = self._rng.permutation(n) if self.shuffle else None
        for start in range(0, self.num_batches(n) * self.batch_size, self.batch_size):
            if order is None:   # contiguous slices: views, no copy
                window = slice(start, min(start + self.batch_size, n))
            else:
                window = order[start:start + self.batch_size]
            yield Batch(inputs[window], targets[window])


class _Epochs:
    """The batches of one data set; every iteration over it is a new epoch (a new shuffle)."""

    def __init__(self, iterator: BatchIterator, inputs: np.ndarray, targets: np.ndarray):
        self._iterator, self._inputs, self._targets = iterator, inputs, targets

    def __iter__(self):
        return self._iterator._batches(self._inputs, self._targets)

    def __len__(self) -> int:
        return self._iterator.num_batches(len(self._inputs))


# -- labels ---------------------------------------------------------------------------------------

def one_hot(labels, num_classes: int, dtype=np.float32) -> np.ndarray:
    """Labels of any shape -> shape + (num_classes,) with a 1 at each label; range-checked."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise DataError(f"num_classes must be a positive integer, found {num_classes!r}")
    labels = np.asarray(labels)
    if labels.dtype.kind == "f":
        bad = _first_bad(~np.isfinite(labels) | (labels != np.round(labels)))
        if bad is not None:
            raise DataError(f"one_hot expects integer class labels, found {labels[bad]} at index "
                            f"{_format_index(bad)}")
    elif labels.dtype.kind not in "iub":
        raise DataError(f"one_hot expects integer class labels, found dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    _check_label_range(labels, int(num_classes), "one_hot labels")
    out = np.zeros(labels.shape + (int(num_classes),), dtype=dtype)
    np.put_along_axis(out, labels[..., None], 1, axis=-1)
    return out


def _check_label_range(labels: np.ndarray, num_classes: int, what: str) -> None:
    bad = _first_bad((labels < 0) | (labels >= num_classes))
    if bad is not None:
        value = labels[bad]
        count = int(np.count_nonzero((labels < 0) | (labels >= num_classes)))
        raise DataError(f"{what}: expected labels in 0..{num_classes - 1}, found label {value} at "
                        f"index {_format_index(bad)} ({count} out-of-range label(s) in all)")


def _first_bad(mask: np.ndarray):
    """Index tuple of the first True in `mask` (C order), or None."""
    flat = np.flatnonzero(mask)
    if flat.size == 0:
        return None
    return np.unravel_index(flat[0], mask.shape)


def _format_index(index: tuple) -> str:
    return str(int(index[0])) if len(index) == 1 else str(tuple(int(i) for i in index))
