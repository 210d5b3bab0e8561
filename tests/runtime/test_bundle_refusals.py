"""Every refusal of graphc.load, each a BundleError whose message says what was expected and
what was found: format version, edited weights, edited object, missing files, a CPU feature
this CPU lacks, another target, an edited IR, and export of something that is no
executable."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

import graphc
from ir import BundleError
from runtime import host_target

from bundle_cases import export_example


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    directory = tmp_path_factory.mktemp("mlp_bundle")
    exe, manifest = export_example("mlp", directory)
    return directory, manifest


@pytest.fixture
def bundle(original, tmp_path):
    """A fresh copy of the exported bundle to damage."""
    directory, manifest = original
    copy = tmp_path / "bundle"
    shutil.copytree(directory, copy)
    return str(copy), manifest


def _edit_manifest(directory, change):
    path = os.path.join(directory, "manifest.json")
    with open(path) as f:
        manifest = json.load(f)
    change(manifest)
    with open(path, "w") as f:
        json.dump(manifest, f)


def _flip_byte(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x5A]))


def _refusal(directory) -> str:
    with pytest.raises(BundleError) as info:
        graphc.load(directory)
    return str(info.value)


def test_the_untouched_copy_loads(bundle):
    directory, _ = bundle
    exe = graphc.load(directory)
    assert exe(np.zeros((2, 784), np.float32)).shape == (2, 10)


def test_wrong_format_version(bundle):
    directory, _ = bundle
    _edit_manifest(directory, lambda m: m.update(format="graphc-bundle/0"))
    msg = _refusal(directory)
    assert "expected format 'graphc-bundle/1'" in msg and "found 'graphc-bundle/0'" in msg


def test_edited_weights_byte_names_the_tensor(bundle):
    directory, manifest = bundle
    t = next(t for t in manifest["tensors"] if t["name"] == "dense2_w")
    _flip_byte(os.path.join(directory, "weights.bin"), t["offset"] + 1001)
    msg = _refusal(directory)
    assert "weights.bin" in msg and "'dense2_w'" in msg and "expected sha256" in msg
    assert t["sha256"][:16] in msg


def test_edited_padding_byte_of_the_weights(bundle):
    directory, manifest = bundle
    t = next(t for t in manifest["tensors"] if t["nbytes"] % 64)   # padding follows it
    pad = t["offset"] + t["nbytes"]
    _flip_byte(os.path.join(directory, "weights.bin"), pad)
    msg = _refusal(directory)
    assert "weights.bin: expected sha256" in msg and "changed after export" in msg


def test_edited_object_byte(bundle):
    directory, manifest = bundle
    _flip_byte(os.path.join(directory, "model.o"), 200)
    msg = _refusal(directory)
    assert "model.o: expected sha256 " + manifest["files"]["model.o"]["sha256"][:16] in msg


def test_edited_ir(bundle):
    directory, _ = bundle
    path = os.path.join(directory, "model.gir")
    with open(path, "a") as f:
        f.write("\n")
    assert "model.gir: expected sha256" in _refusal(directory)


@pytest.mark.parametrize("name", ["weights.bin", "model.o", "model.gir"])
def test_missing_file(bundle, name):
    directory, _ = bundle
    os.remove(os.path.join(directory, name))
    msg = _refusal(directory)
    assert f"expected the file {name}, found none" in msg


def test_missing_manifest_and_directory(bundle, tmp_path):
    directory, _ = bundle
    os.remove(os.path.join(directory, "manifest.json"))
    assert "expected the file manifest.json, found none" in _refusal(directory)
    msg = _refusal(str(tmp_path / "nowhere"))
    assert "expected a bundle directory" in msg and "nowhere" in msg


def test_missing_cpu_feature_is_named(bundle):
    directory, _ = bundle
    lacking = [f[1:] for f in host_target().features.split(",") if f.startswith("-")]
    assert lacking, "this CPU has every feature LLVM knows"
    feature = lacking[0]

    def add(m):
        m["target"]["features"] = m["target"]["features"].replace(f"-{feature}", f"+{feature}")
    _edit_manifest(directory, add)
    msg = _refusal(directory)
    assert f"needs CPU feature(s) {feature}" in msg and "which this CPU" in msg


def test_other_target_triple(bundle):
    directory, _ = bundle
    _edit_manifest(directory, lambda m: m["target"].update(triple="aarch64-unknown-linux-gnu"))
    msg = _refusal(directory)
    assert "compiled for aarch64-unknown-linux-gnu" in msg and host_target().triple in msg


def test_manifest_argument_table_must_match_the_ir(bundle):
    directory, _ = bundle
    _edit_manifest(directory, lambda m: m["argument_table"]["inputs"][0].update(
        shape=["N", "785"]))
    msg = _refusal(directory)
    assert "does not match the manifest's argument table" in msg and "785" in msg


def test_invalid_manifest_json(bundle):
    directory, _ = bundle
    with open(os.path.join(directory, "manifest.json"), "w") as f:
        f.write("{not json")
    assert "manifest.json is not valid JSON" in _refusal(directory)


def test_export_refuses_what_is_not_an_executable(tmp_path):
    with pytest.raises(BundleError, match="expects an Executable"):
        graphc.export(object(), str(tmp_path / "b"))


def test_a_loaded_bundle_is_not_exported_again(original, tmp_path):
    directory, _ = original
    loaded = graphc.load(directory)
    with pytest.raises(BundleError, match="loaded from a bundle"):
        graphc.export(loaded, str(tmp_path / "again"))


def test_malformed_manifest_entries(bundle):
    directory, _ = bundle
    _edit_manifest(directory, lambda m: m["tensors"][0].pop("offset"))
    assert "manifest.json is malformed" in _refusal(directory)


def test_manifest_must_list_the_object(bundle):
    directory, _ = bundle
    _edit_manifest(directory, lambda m: m["files"].pop("model.o"))
    assert "must list model.o with its checksum" in _refusal(directory)
