"""Write a bundle directory from an Executable (the format is described in __init__.py).

The code is the executable's own module rebuilt into one object (native.py); the weights are
the executable's CURRENT parameter values (after training, the trained ones); the IR is the
graph the code was compiled from, printed without its initializers (those are weights.bin).
Files are written first and manifest.json last: a directory without a manifest is not a
bundle, so an interrupted export never looks complete.
"""
from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata

import llvmlite
import llvmlite.binding as llvm
import numpy as np

from ir import BundleError
from ir.constraints import dim_constraints
from ir.printer import dump
from ir.symbolic import format_dim
from ir.serialize import SIDECAR_SUFFIX

from .. import abi
from ..plan import call_signature, placement_of
from . import native
from .cheader import header_text

FORMAT = "graphc-bundle/1"
OBJECT, HEADER, WEIGHTS, IR_TEXT, MANIFEST = (
    "model.o", "model.h", "weights.bin", "model.gir", "manifest.json")
IR_SIDECAR = IR_TEXT + SIDECAR_SUFFIX
LLVM_TEXT = "model.ll"
ALIGN = 64


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def graphc_version() -> str:
    try:
        return metadata.version("graphc")
    except metadata.PackageNotFoundError:
        return "unknown"


def _tensor_entry(name: str, index: int, v) -> dict:
    return {"name": name, "index": index, "dtype": v.type.dtype.name,
            "shape": [format_dim(d) for d in v.type.shape]}


def _weights(params: list, values: dict) -> tuple:
    """(weights.bin bytes, per-tensor entries): raw little-endian, each tensor at a 64-byte
    aligned offset (zero padding between)."""
    blob, entries = bytearray(), []
    for v in params:
        arr = np.ascontiguousarray(values[v.name], dtype=v.type.dtype.np_dtype)
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        blob.extend(b"\0" * (-len(blob) % ALIGN))
        raw = arr.tobytes()
        entries.append({"name": v.name, "role": v.role, "offset": len(blob),
                        "nbytes": len(raw), "dtype": v.type.dtype.name,
                        "shape": [int(d) for d in v.type.shape], "sha256": sha256(raw)})
        blob.extend(raw)
    return bytes(blob), entries


def write_bundle(exe, directory, llvm_ir: bool = False) -> dict:
    """Export `exe` (a runtime Executable) to `directory`; returns the manifest. `llvm_ir`:
    also write the optimised LLVM IR (model.ll, for study; not checked at load)."""
    compiled = getattr(exe, "compiled", None)
    if compiled is None or not hasattr(compiled, "plan"):
        raise BundleError(f"export expects a compiled Executable (graphc.compile(...)), found "
                          f"{type(exe).__name__}")
    if getattr(compiled.jit, "from_bundle", False):
        raise BundleError("this executable was loaded from a bundle; copy that bundle's "
                          "directory instead of exporting it again")
    graph = exe.graph
    sig = call_signature(graph)
    if exe.param_store.unset & {v.name for v in sig.params}:
        raise BundleError("export: param(s) " + ", ".join(sorted(exe.param_store.unset))
                          + " have no value; set them (exe.set_params) before exporting")
    os.makedirs(directory, exist_ok=True)
    stale = os.path.join(directory, MANIFEST)
    if os.path.exists(stale):
        os.remove(stale)            # not a bundle again until every file below is written

    obj, has_pool = native.bundle_object(compiled)
    _, undefined = native.elf_symbols(obj)
    weights, tensors = _weights(sig.params, exe.params)
    text, constants = dump(graph, show_locs=True, include_initializers=False)
    files = {OBJECT: obj, WEIGHTS: weights}
    if constants:
        text = f"# weights: {IR_SIDECAR}\n" + text
        import io
        buf = io.BytesIO()
        np.savez(buf, **{k: np.ascontiguousarray(a) for k, a in constants.items()})
        files[IR_SIDECAR] = buf.getvalue()
    files[IR_TEXT] = text.encode("utf-8")

    table = abi.ArgTable(len(sig.data_inputs), len(sig.returned), len(sig.params))
    params = []
    for k, (v, t) in enumerate(zip(sig.params, tensors)):
        params.append({**_tensor_entry(v.name, table.param(k), v), "role": v.role,
                       "offset": t["offset"], "nbytes": t["nbytes"]})
    target = compiled.jit.target
    manifest = {
        "format": FORMAT,
        "graphc_version": graphc_version(),
        "llvmlite_version": llvmlite.__version__,
        "llvm_version": ".".join(str(x) for x in llvm.llvm_version_info),
        "target": {"triple": target.triple, "cpu": target.cpu, "features": target.features},
        "graph": graph.name,
        "opt_level": compiled.options.opt_level,
        "symbols": list(sig.symbols),
        # dims a binding could make negative (ir/constraints.py); a C caller must keep
        # each >= 0 (model.h: GRAPHC_SYMBOLS_VALID), Python's boundary checks them itself
        "symbol_constraints": [format_dim(c.dim) for c in dim_constraints(graph)],
        "argument_table": {
            "inputs": [_tensor_entry(v.name, table.input(k), v)
                       for k, v in enumerate(sig.data_inputs)],
            "outputs": [_tensor_entry(name, table.output(k), v)
                        for k, (name, v) in enumerate(sig.returned)],
            "params": params,
            "arena": table.arena, "errinfo": table.errinfo, "size": table.size},
        "errinfo_words": abi.ERRINFO_WORDS,
        "entry_points": list(native.PUBLIC_SYMBOLS),
        "aliases": {name: sig.params[p].name for name, _, p in sig.updates},
        "tensors": tensors,
        "weights_bytes": len(weights),
        "thread_pool": has_pool,
        "undefined_symbols": undefined,
        "link": native.libraries_for(undefined),
        "placement": placement_of(compiled.plan),
    }
    header = header_text(manifest).encode("utf-8")
    files[HEADER] = header
    if llvm_ir:
        files[LLVM_TEXT] = exe.llvm_ir.encode("utf-8")
    for name, data in files.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)
    manifest["files"] = {name: {"bytes": len(data), "sha256": sha256(data)}
                         for name, data in files.items() if name != LLVM_TEXT}
    with open(os.path.join(directory, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    return manifest
