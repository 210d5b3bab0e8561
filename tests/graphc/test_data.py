"""graphc.data: IDX reading (raw and gzipped), (Fashion-)MNIST loading, BatchIterator, one_hot.

IDX test files are built byte by byte with `struct` here, independently of graphc's writer.
"""
import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from graphc.data import (FASHION_MNIST_DIR, MNIST_FILES, BatchIterator, load_mnist, one_hot,
                         read_idx, write_idx)
from ir.errors import DataError

# code -> (struct format letter, numpy dtype)
CODES = {0x08: ("B", np.uint8), 0x09: ("b", np.int8), 0x0B: ("h", np.int16),
         0x0C: ("i", np.int32), 0x0D: ("f", np.float32), 0x0E: ("d", np.float64)}


def idx_bytes(code: int, dims, values, extra: bytes = b"") -> bytes:
    """An IDX file: magic (0, 0, code, rank), big-endian uint32 dims, big-endian values."""
    letter = CODES[code][0]
    header = bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    return header + struct.pack(f">{len(values)}{letter}", *values) + extra


def write(path: Path, payload: bytes, gz: bool) -> Path:
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


# -- read_idx -------------------------------------------------------------------------------------

SAMPLES = {0x08: [0, 1, 127, 255, 200, 3], 0x09: [-128, -1, 0, 1, 127, 5],
           0x0B: [-32768, -2, 0, 258, 32767, 7],
           0x0C: [-2 ** 31, -70000, 0, 16909060, 2 ** 31 - 1, 9],
           0x0D: [-1.5, 0.0, 3.25, 1e-3, 6e7, -2.0], 0x0E: [-1.5, 1e-300, 3.25, np.pi, 6e7, -2.0]}


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("code", sorted(CODES))
def test_read_idx_every_dtype(tmp_path, code, gz):
    values = SAMPLES[code]
    path = write(tmp_path / "a.idx", idx_bytes(code, (2, 3), values), gz)
    got = read_idx(path)
    expected = np.array(values, dtype=CODES[code][1]).reshape(2, 3)
    assert got.shape == (2, 3)
    assert got.dtype == CODES[code][1] and got.dtype.isnative
    np.testing.assert_array_equal(got, expected)
    got[0, 0] = got[0, 1]   # writable, not a view of the file bytes


def test_read_idx_any_rank(tmp_path):
    scalar = read_idx(write(tmp_path / "s", idx_bytes(0x0C, (), [42]), gz=False))
    assert scalar.shape == () and scalar == 42
    values = list(range(2 * 3 * 1 * 4))
    got = read_idx(write(tmp_path / "r4", idx_bytes(0x0B, (2, 3, 1, 4), values), gz=True))
    np.testing.assert_array_equal(got, np.arange(24, dtype=np.int16).reshape(2, 3, 1, 4))
    empty = read_idx(write(tmp_path / "e", idx_bytes(0x08, (0, 28, 28), []), gz=False))
    assert empty.shape == (0, 28, 28)


def test_gzip_is_sniffed_not_guessed_from_the_name(tmp_path):
    payload = idx_bytes(0x08, (3,), [7, 8, 9])
    np.testing.assert_array_equal(read_idx(write(tmp_path / "plain.gz", payload, gz=False)),
                                  [7, 8, 9])
    np.testing.assert_array_equal(read_idx(write(tmp_path / "packed.idx", payload, gz=True)),
                                  [7, 8, 9])


def test_truncated_image_data_says_expected_and_found(tmp_path):
    payload = idx_bytes(0x08, (60000, 28, 28), [1] * 1000)
    for gz in (False, True):
        with pytest.raises(DataError, match=r"expected 47040000 bytes of data \(60000x28x28 ubyte\)"
                                            r" after the 16-byte header, found only 1000"):
            read_idx(write(tmp_path / f"t{gz}", payload, gz))


def test_trailing_bytes_are_an_error(tmp_path):
    path = write(tmp_path / "x", idx_bytes(0x0C, (2,), [1, 2], extra=b"\0\0\0\3"), gz=False)
    with pytest.raises(DataError, match=r"expected 8 bytes .* found 12 \(trailing bytes"):
        read_idx(path)


@pytest.mark.parametrize("payload, pattern", [
    (b"", r"expected a 4-byte IDX magic number, found only 0 bytes"),
    (b"\0\0", r"found only 2 bytes"),
    (b"PK\x03\x04rest", r"not an IDX file: expected .* two zero bytes, found 0x504b0304"),
    (bytes([0, 0, 0x0A, 1, 0, 0, 0, 1, 5]), r"unknown IDX element type code 0x0A; expected one of"
                                            r" 0x08 \(ubyte\)"),
    (bytes([0, 0, 0x08, 3, 0, 0, 0, 1, 0, 0]), r"expected a 16-byte header for a rank-3 IDX file, "
                                               r"found only 10 bytes"),
])
def test_malformed_headers(tmp_path, payload, pattern):
    with pytest.raises(DataError, match=pattern):
        read_idx(write(tmp_path / "bad", payload, gz=False))


def test_corrupt_gzip_and_missing_file(tmp_path):
    packed = gzip.compress(idx_bytes(0x08, (100,), list(range(100))))
    (tmp_path / "cut.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match=r"cut.gz: expected a complete gzip stream"):
        read_idx(tmp_path / "cut.gz")
    with pytest.raises(DataError, match=r"IDX file not found: expected a file at .*nope"):
        read_idx(tmp_path / "nope")
    with pytest.raises(DataError, match=r"cannot read IDX file"):
        read_idx(tmp_path)   # a directory


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_write_idx_matches_the_format(tmp_path, dtype):
    array = (np.arange(12) - 5).astype(dtype).reshape(3, 4)
    code = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D,
            np.float64: 0x0E}[dtype]
    write_idx(tmp_path / "raw", array)
    assert (tmp_path / "raw").read_bytes() == idx_bytes(code, (3, 4), array.ravel().tolist())
    write_idx(tmp_path / "a.gz", array)
    assert (tmp_path / "a.gz").read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), array)


def test_write_idx_rejects_unsupported_dtypes(tmp_path):
    with pytest.raises(DataError, match=r"IDX cannot store dtype int64"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))


# -- load_mnist -----------------------------------------------------------------------------------

def make_mnist_dir(directory: Path, n_train=12, n_test=5, size=(4, 4), gz=True, labels=None,
                   train_labels=None, test_images=None, seed=0):
    """Four small IDX files with the (Fashion-)MNIST names; returns the arrays written."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    x_train = rng.integers(0, 256, size=(n_train, *size), dtype=np.uint8)
    x_train.flat[0], x_train.flat[1] = 255, 0
    x_test = rng.integers(0, 256, size=(n_test, *size), dtype=np.uint8) \
        if test_images is None else test_images
    y_train = rng.integers(0, 10, size=n_train).astype(np.uint8) \
        if train_labels is None else train_labels
    y_test = rng.integers(0, 10, size=n_test).astype(np.uint8) if labels is None else labels
    for name, array in zip(MNIST_FILES, (x_train, y_train, x_test, y_test)):
        code = 0x08 if array.dtype == np.uint8 else 0x0C
        name = name if gz else name.removesuffix(".gz")
        write(directory / name, idx_bytes(code, array.shape, array.ravel().tolist()), gz)
    return x_train, y_train, x_test, y_test


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_shapes_scaling_and_dtypes(tmp_path, gz):
    x_train, y_train, x_test, y_test = make_mnist_dir(tmp_path, gz=gz)
    xa, ya, xb, yb = load_mnist(tmp_path)
    assert xa.shape == (12, 16) and xb.shape == (5, 16)
    assert xa.dtype == xb.dtype == np.float32 and ya.dtype == yb.dtype == np.int64
    np.testing.assert_allclose(xa, x_train.reshape(12, 16) / 255.0, rtol=1e-6)
    assert xa.flat[0] == 1.0 and xa.flat[1] == 0.0
    np.testing.assert_array_equal(ya, y_train)
    np.testing.assert_array_equal(yb, y_test)
    images4d = load_mnist(tmp_path, flatten=False)[2]
    assert images4d.shape == (5, 1, 4, 4)
    np.testing.assert_allclose(images4d[:, 0], x_test / 255.0, rtol=1e-6)


def test_load_mnist_directory_precedence(tmp_path, monkeypatch):
    make_mnist_dir(tmp_path / "env", n_train=3, seed=1)
    make_mnist_dir(tmp_path / "arg", n_train=7, seed=2)
    monkeypatch.setenv("GRAPHC_DATA_DIR", str(tmp_path / "env"))
    assert load_mnist()[0].shape[0] == 3                    # env var beats the default
    assert load_mnist(kind="mnist")[0].shape[0] == 3
    assert load_mnist(tmp_path / "arg")[0].shape[0] == 7    # explicit argument beats env var


def test_load_mnist_missing_file_says_where_and_how(tmp_path, monkeypatch):
    make_mnist_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as err:
        load_mnist(tmp_path)
    message = str(err.value)
    assert "t10k-labels-idx1-ubyte.gz not found" in message and str(tmp_path) in message
    assert "sudo apt-get install -y dataset-fashion-mnist" in message
    assert "--data-dir" in message
    monkeypatch.delenv("GRAPHC_DATA_DIR", raising=False)
    with pytest.raises(DataError, match=r"MNIST has no default location: pass data_dir="):
        load_mnist(kind="mnist")
    with pytest.raises(DataError, match=r"unknown dataset kind 'digits'"):
        load_mnist(tmp_path, kind="digits")


def test_load_mnist_counts_and_label_range(tmp_path):
    make_mnist_dir(tmp_path / "short", train_labels=np.zeros(11, np.uint8))
    with pytest.raises(DataError, match=r"train: expected as many labels as images, found 12 "
                                        r"images and 11 labels"):
        load_mnist(tmp_path / "short")
    make_mnist_dir(tmp_path / "range", labels=np.array([0, 9, 3, 10, 2], np.uint8))
    with pytest.raises(DataError, match=r"t10k labels: expected labels in 0..9, found label 10 at "
                                        r"index 3"):
        load_mnist(tmp_path / "range")
    make_mnist_dir(tmp_path / "rank", test_images=np.zeros((5, 16), np.uint8))
    with pytest.raises(DataError, match=r"t10k images: expected a rank-3 ubyte IDX array"):
        load_mnist(tmp_path / "rank")
    make_mnist_dir(tmp_path / "size", test_images=np.zeros((5, 3, 3), np.uint8))
    with pytest.raises(DataError, match=r"train and test images must have the same size"):
        load_mnist(tmp_path / "size")


@pytest.mark.skipif(not all(os.path.exists(os.path.join(FASHION_MNIST_DIR, f))
                            for f in MNIST_FILES),
                    reason=f"Fashion-MNIST not installed in {FASHION_MNIST_DIR} "
                           "(sudo apt-get install -y dataset-fashion-mnist)")
def test_real_fashion_mnist(monkeypatch):
    monkeypatch.delenv("GRAPHC_DATA_DIR", raising=False)
    x_train, y_train, x_test, y_test = load_mnist()
    assert x_train.shape == (60000, 784) and x_test.shape == (10000, 784)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0
    # Fashion-MNIST is balanced: 6000 / 1000 of each of the ten classes
    np.testing.assert_array_equal(np.bincount(y_train, minlength=10), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(y_test, minlength=10), [1000] * 10)


# -- BatchIterator --------------------------------------------------------------------------------

def numbered(n):
    """x rows carry their own index so batches can be checked for x/y alignment."""
    x = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    return x, np.arange(n) * 10


def test_batches_cover_every_example_once_with_partial_last():
    x, y = numbered(10)
    epoch = BatchIterator(batch_size=4, seed=0)(x, y)
    batches = list(epoch)
    assert [len(b.inputs) for b in batches] == [4, 4, 2] and len(epoch) == 3
    seen = np.concatenate([b.inputs[:, 0] for b in batches])
    assert sorted(seen.tolist()) == list(range(10))
    for batch in batches:
        np.testing.assert_array_equal(batch.targets, batch.inputs[:, 0] * 10)


def test_drop_last_and_len():
    x, y = numbered(10)
    iterator = BatchIterator(batch_size=4, drop_last=True, seed=0)
    epoch = iterator(x, y)
    assert [len(b.inputs) for b in epoch] == [4, 4]
    assert len(epoch) == len(iterator) == iterator.num_batches(10) == 2
    assert list(BatchIterator(16, drop_last=True)(x, y)) == []


def test_no_shuffle_keeps_order_and_unpacks_as_pairs():
    x, y = numbered(5)
    got = [(bx[:, 0].tolist(), by.tolist()) for bx, by in BatchIterator(2, shuffle=False)(x, y)]
    assert got == [([0, 1], [0, 10]), ([2, 3], [20, 30]), ([4], [40])]


def test_reshuffles_each_epoch_and_a_seed_reproduces_the_run():
    x, y = numbered(50)

    def run(seed):
        epochs = BatchIterator(8, seed=seed)(x, y)
        return [np.concatenate([b.targets for b in epochs]) for _ in range(3)]

    first = run(7)
    assert not np.array_equal(first[0], first[1])
    assert not np.array_equal(first[0], np.arange(50) * 10)
    for a, b in zip(first, run(7)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], run(8)[0])


def test_batch_iterator_validation():
    with pytest.raises(DataError, match=r"same length, found 4 inputs \(4, 2\) and 3 targets"):
        BatchIterator(2)(np.zeros((4, 2)), np.zeros(3))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(DataError, match=r"batch_size must be a positive integer"):
            BatchIterator(bad)
    with pytest.raises(DataError, match=r"only after it has been given data"):
        len(BatchIterator(2))
    with pytest.raises(DataError, match=r"leading example axis"):
        BatchIterator(2)(np.float32(1), np.zeros(1))


@given(n=st.integers(0, 60), batch_size=st.integers(1, 17), drop_last=st.booleans(),
       shuffle=st.booleans())
def test_batch_sizes_property(n, batch_size, drop_last, shuffle):
    x, y = numbered(n)
    epoch = BatchIterator(batch_size, shuffle=shuffle, seed=n, drop_last=drop_last)(x, y)
    sizes = [len(b.inputs) for b in epoch]
    full, rest = divmod(n, batch_size)
    assert sizes == [batch_size] * full + ([rest] if rest and not drop_last else [])
    assert len(epoch) == len(sizes)
    targets = np.concatenate([b.targets for b in epoch]) if sizes else np.zeros(0)
    assert len(set(targets.tolist())) == len(targets)   # no example twice in an epoch


# -- one_hot --------------------------------------------------------------------------------------

def test_one_hot_values_shapes_and_dtype():
    np.testing.assert_array_equal(one_hot([2, 0, 1], 3),
                                  [[0, 0, 1], [1, 0, 0], [0, 1, 0]])
    assert one_hot([2, 0, 1], 3).dtype == np.float32
    assert one_hot(np.array([1.0, 0.0]), 2, dtype=np.int64).dtype == np.int64
    grid = one_hot(np.array([[0, 3], [1, 2]], np.uint8), 4)
    assert grid.shape == (2, 2, 4)
    np.testing.assert_array_equal(grid.argmax(-1), [[0, 3], [1, 2]])
    np.testing.assert_array_equal(grid.sum(-1), np.ones((2, 2)))


def test_one_hot_errors_name_the_label_and_its_index():
    with pytest.raises(DataError, match=r"expected labels in 0..9, found label 12 at index 4"):
        one_hot([0, 1, 2, 3, 12, 5], 10)
    with pytest.raises(DataError, match=r"found label -1 at index \(1, 0\)"):
        one_hot([[0, 1], [-1, 1]], 2)
    with pytest.raises(DataError, match=r"integer class labels, found 1.5 at index 1"):
        one_hot([0.0, 1.5], 3)
    with pytest.raises(DataError, match=r"num_classes must be a positive integer"):
        one_hot([0], 0)
