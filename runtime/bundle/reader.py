"""Load a bundle directory into an Executable without compiling anything.

Checks, in order, each refused with a BundleError saying what was expected and found:
the manifest (present, JSON, format version), every file it lists (present, sha256), each
tensor of weights.bin (sha256, so an edited byte names its tensor), the target (triple, and
every CPU feature the object was compiled with that this CPU lacks, by name), the IR (parses,
and its argument table is the manifest's), the object (every symbol it needs resolves in
this process; LLVM's loader accepts it). A different llvmlite/LLVM version is not refused by
itself: model.o is a plain ELF object; only if this LLVM cannot load it is the version
mismatch reported.

The object is loaded into an MCJIT engine from bytes (no IR is parsed, optimised or
compiled); its parallel regions run on the process's thread pool (`graphc_bind_pool`).
"""
from __future__ import annotations

import ctypes
import json
import os
import time
from typing import Optional

import llvmlite.binding as llvm
import numpy as np

from ir import BundleError, GraphcError
from ir.serialize import load_gir
from ir.symbolic import format_dim

from .. import abi, pool, threads
from ..compile import ARENA_BYTES_TYPE, ENTRY_TYPE, CompiledGraph, CompileOptions
from ..executable import Executable
from ..jit import _load_libm
from ..plan import call_signature, plan_buffers
from ..target import LLVM_LOCK, host_target, initialise_llvm
from .writer import FORMAT, IR_TEXT, MANIFEST, OBJECT, WEIGHTS, sha256

BIND_TYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_int32)


class BundleCode:
    """The loaded object of a bundle (stands where a JitModule stands in a CompiledGraph)."""
    from_bundle = True
    threads_address = 0          # threads.set_threads calls set_thread_count instead
    has_pool = False
    threads = 1

    def __init__(self, directory: str, obj: bytes, target, opt_level: int, timings: dict):
        self.directory, self.target, self.opt_level = directory, target, opt_level
        self.timings = timings
        self._object = obj
        self.engine = None

    def set_thread_count(self, count: Optional[int] = None) -> int:
        """Threads for the parallel regions (None: GRAPHC_NUM_THREADS, else every CPU this
        process may use), on the process's pool; returns the count now in use (always 1
        for a module without parallel regions)."""
        if not self.has_pool:
            self.threads = 1
            return 1
        count = min(int(count or threads.num_threads()), threads.available_cpus())
        threads.ensure_pool(count)
        bind = BIND_TYPE(self.address("graphc_bind_pool"))
        self.threads = int(bind(pool.POOL.parallel_address, count))
        return self.threads

    def address(self, name: str) -> int:
        with LLVM_LOCK:
            addr = self.engine.get_function_address(name)
        if not addr:
            raise BundleError(f"{os.path.join(self.directory, OBJECT)}: expected a function "
                              f"{name!r} in the object, found none")
        return addr

    def object_codes(self) -> list:
        return [self._object]

    def object_code(self) -> bytes:
        return self._object

    def _no_ir(self, what: str):
        raise BundleError(f"a loaded bundle has no {what}: it holds machine code only (the "
                          f"graph is {os.path.join(self.directory, IR_TEXT)}; export with "
                          "llvm_ir=True to keep model.ll)")

    @property
    def ir_optimized(self) -> str:
        path = os.path.join(self.directory, "model.ll")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                return f.read()
        return self._no_ir("LLVM IR")

    @property
    def ir_unoptimized(self) -> str:
        return self._no_ir("unoptimised LLVM IR")

    @property
    def asm(self) -> str:
        return self._no_ir("assembly")


def _read(directory: str, name: str) -> bytes:
    path = os.path.join(directory, name)
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise BundleError(f"bundle {directory}: expected the file {name}, found none "
                          f"({path} is missing)") from None
    except OSError as e:
        raise BundleError(f"bundle {directory}: cannot read {name}: {e.strerror or e}") \
            from None


def read_manifest(directory: str) -> dict:
    if not os.path.isdir(directory):
        raise BundleError(f"expected a bundle directory, found no directory at {directory}")
    data = _read(directory, MANIFEST)
    try:
        manifest = json.loads(data)
    except ValueError as e:
        raise BundleError(f"bundle {directory}: {MANIFEST} is not valid JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"bundle {directory}: {MANIFEST} must hold a JSON object, found "
                          f"{type(manifest).__name__}")
    found = manifest.get("format")
    if found != FORMAT:
        raise BundleError(f"bundle {directory}: expected format {FORMAT!r}, found {found!r} "
                          f"(written by graphc {manifest.get('graphc_version', '?')}; export it "
                          "again with this graphc)")
    for key in ("files", "target", "argument_table", "tensors", "symbols", "aliases"):
        if key not in manifest:
            raise BundleError(f"bundle {directory}: {MANIFEST} has no {key!r} entry")
    return manifest


def _checked_files(directory: str, manifest: dict) -> dict:
    """Every listed file's bytes, after its size and sha256 matched the manifest. Weights are
    checked per tensor first, so an edited byte is reported with the tensor it is in."""
    listed = manifest["files"]
    unlisted = [name for name in (OBJECT, WEIGHTS, IR_TEXT) if name not in listed]
    if unlisted:
        raise BundleError(f"bundle {directory}: {MANIFEST} must list {', '.join(unlisted)} "
                          f"with its checksum; it lists {', '.join(sorted(listed)) or 'none'}")
    for name in sorted(listed):
        if not os.path.exists(os.path.join(directory, name)):
            raise BundleError(f"bundle {directory}: expected the file {name}, found none "
                              f"(the manifest lists: {', '.join(sorted(listed))})")
    data = {name: _read(directory, name) for name in listed}
    weights = data.get(WEIGHTS, b"")
    for t in manifest["tensors"]:
        raw = weights[t["offset"]:t["offset"] + t["nbytes"]]
        if len(raw) != t["nbytes"] or sha256(raw) != t["sha256"]:
            raise BundleError(f"bundle {directory}: {WEIGHTS}: tensor {t['name']!r} at offset "
                              f"{t['offset']} ({t['nbytes']} bytes) expected sha256 "
                              f"{t['sha256'][:16]}..., found {sha256(raw)[:16]}... (the "
                              "weights were changed after export)")
    for name in sorted(listed):
        want = listed[name]
        got = sha256(data[name])
        if got != want["sha256"] or len(data[name]) != want["bytes"]:
            raise BundleError(f"bundle {directory}: {name}: expected sha256 "
                              f"{want['sha256'][:16]}... ({want['bytes']} bytes), found "
                              f"{got[:16]}... ({len(data[name])} bytes): the file was changed "
                              "after export")
    return data


def check_target(manifest: dict, directory: str) -> None:
    """Refuse a bundle whose code this CPU cannot run (names every missing feature)."""
    host = host_target()
    want = manifest["target"]
    if want.get("triple") != host.triple:
        raise BundleError(f"bundle {directory}: compiled for {want.get('triple')}, but this "
                          f"machine is {host.triple}")
    have = {f[1:] for f in host.features.split(",") if f.startswith("+")}
    needed = {f[1:] for f in str(want.get("features", "")).split(",") if f.startswith("+")}
    missing = sorted(needed - have)
    if missing:
        raise BundleError(f"bundle {directory}: its code needs CPU feature(s) "
                          f"{', '.join(missing)} (compiled for {want.get('cpu')}), which this "
                          f"CPU ({host.cpu}) lacks; export the bundle on (or for) a CPU like "
                          "this one")


def _graph(directory: str, manifest: dict, weights: bytes):
    """The bundle's graph (model.gir) with its params' values from weights.bin, after
    checking that its calling convention is the manifest's."""
    path = os.path.join(directory, IR_TEXT)
    try:
        graph = load_gir(path)
    except GraphcError as e:
        raise BundleError(f"bundle {directory}: cannot read {IR_TEXT} (written by graphc "
                          f"{manifest.get('graphc_version')}): {e}") from None
    sig = call_signature(graph)
    table = manifest["argument_table"]
    expected = ([(e["name"], e["dtype"], list(e["shape"])) for e in table["inputs"]],
                [(e["name"], e["dtype"], list(e["shape"])) for e in table["outputs"]],
                [(e["name"], e["dtype"], list(e["shape"])) for e in table["params"]])
    found = ([(v.name, v.type.dtype.name, [format_dim(d) for d in v.type.shape])
              for v in sig.data_inputs],
             [(n, v.type.dtype.name, [format_dim(d) for d in v.type.shape])
              for n, v in sig.returned],
             [(v.name, v.type.dtype.name, [format_dim(d) for d in v.type.shape])
              for v in sig.params])
    for what, want, got in zip(("inputs", "outputs", "params"), expected, found):
        if want != got:
            raise BundleError(f"bundle {directory}: {IR_TEXT} does not match the manifest's "
                              f"argument table: {what} expected {want}, found {got}")
    if list(sig.symbols) != list(manifest["symbols"]):
        raise BundleError(f"bundle {directory}: symbols expected {manifest['symbols']}, "
                          f"found {list(sig.symbols)} in {IR_TEXT}")
    values = {}
    for t in manifest["tensors"]:
        raw = weights[t["offset"]:t["offset"] + t["nbytes"]]
        dt = np.dtype({"f32": "<f4", "f64": "<f8", "i32": "<i4", "i64": "<i8",
                       "bool": "?"}[t["dtype"]])
        values[t["name"]] = np.frombuffer(raw, dt).reshape(t["shape"]).astype(
            dt.newbyteorder("="))
    graph.initializers = values
    return graph


def _load_object(directory: str, manifest: dict, obj: bytes, target):
    """An MCJIT engine holding the object (no IR: nothing is optimised or compiled)."""
    initialise_llvm()
    _load_libm()
    missing = [name for name in manifest.get("undefined_symbols", [])
               if not llvm.address_of_symbol(name)]
    if missing:
        raise BundleError(f"bundle {directory}: {OBJECT} needs symbol(s) "
                          f"{', '.join(missing)} that this process does not provide")
    try:
        with LLVM_LOCK:
            empty = llvm.parse_assembly(f'target triple = "{target.triple}"')
            engine = llvm.create_mcjit_compiler(
                empty, target.create_target_machine(manifest.get("opt_level", 2)))
            engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
            engine.finalize_object()
    except RuntimeError as e:
        raise BundleError(f"bundle {directory}: LLVM {_llvm_version()} cannot load {OBJECT} "
                          f"(written with llvmlite {manifest.get('llvmlite_version')}, LLVM "
                          f"{manifest.get('llvm_version')}): {e}") from None
    return engine


def _llvm_version() -> str:
    return ".".join(str(x) for x in llvm.llvm_version_info)


def load_bundle(directory, threads_count: Optional[int] = None) -> Executable:
    """The Executable of the bundle in `directory` (see the module docstring for the checks).
    `threads_count`: threads for its parallel regions (default: GRAPHC_NUM_THREADS, else
    the CPUs this process may use)."""
    directory = os.fspath(directory)
    t0 = time.perf_counter()
    manifest = read_manifest(directory)
    try:
        data = _checked_files(directory, manifest)
        check_target(manifest, directory)
        t1 = time.perf_counter()
        graph = _graph(directory, manifest, data[WEIGHTS])
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise BundleError(f"bundle {directory}: {MANIFEST} is malformed (expected the "
                          f"entries graphc export writes; {type(e).__name__}: {e})") from None
    t2 = time.perf_counter()
    target = host_target()
    engine = _load_object(directory, manifest, data[OBJECT], target)
    timings = {"check_files": t1 - t0, "read_ir": t2 - t1}
    code = BundleCode(directory, data[OBJECT], target, manifest.get("opt_level", 2), timings)
    code.engine = engine
    entry = ENTRY_TYPE(code.address(abi.ENTRY_NAME))
    arena_fn = ARENA_BYTES_TYPE(code.address(abi.ARENA_BYTES_NAME))
    # the parallel regions run on the process's thread pool (runtime/pool.py, shared with
    # every compiled graph; loaded from the on-disk cache when there), not on the pool
    # bundled for C programs: no worker ever runs inside the bundle's code, so the code can
    # be freed with its executable
    code.has_pool = bool(manifest.get("thread_pool"))
    code.set_thread_count(threads_count)
    t3 = time.perf_counter()
    plan = plan_buffers(graph, manifest.get("placement"))
    sig_table = abi.ArgTable(len(plan.data_inputs), len(plan.returned), len(plan.params))
    if sig_table.size != manifest["argument_table"]["size"]:
        raise BundleError(f"bundle {directory}: argument table of {sig_table.size} entries "
                          f"expected from {IR_TEXT}, the manifest says "
                          f"{manifest['argument_table']['size']}")
    timings.update(load_object=t3 - t2, plan=time.perf_counter() - t3)
    timings["total"] = time.perf_counter() - t0
    compiled = CompiledGraph(graph, plan, sig_table, code, entry, arena_fn,
                             CompileOptions(manifest.get("opt_level", 2), False), timings)
    exe = Executable(compiled, graph)
    exe.bundle = manifest
    return exe
