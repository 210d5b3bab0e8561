"""Graph -> native code, with an in-memory compile cache.

`compile_graph(graph)` plans buffers, builds the LLVM module, JIT-compiles it and returns a
`CompiledGraph`: the immutable, shareable part of an executable (native code, buffer plan,
ABI layout, ctypes entry points). Each `Executable` wraps one and adds what is per instance:
parameter buffers, arenas, the argument checks bound to its graph's names.

With the on-disk cache (objcache.py; GRAPHC_CACHE_DIR, GRAPHC_CACHE=0 to disable), a graph
compiled by an earlier process is loaded from its object file: no IR is built and LLVM does
not run (the IR text is rebuilt only if someone asks for it).

The cache key is the structural hash of the graph without its initializers (parameter values
live in runtime buffers, not in the code), the target (CPU name, features, llvmlite version)
and the compile options. The ABI is positional (inputs, outputs, params in graph order), so a
cached module serves any structurally equal graph whatever its value names.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import struct
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional

from ir import CompileError
from ir.equality import structural_hash
from ir.graph import Graph

from . import abi, objcache, parallel_compile
from . import profile as profiling
from . import codegen  # noqa: F401  (registers every lowering)
from .codegen.module_builder import build_module, build_modules, check_lowerings
from .jit import JitModule
from .plan import BufferPlan, placement_of, plan_buffers
from .target import Target, host_target

ENTRY_TYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p)
ARENA_BYTES_TYPE = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p)


@dataclass(frozen=True)
class CompileOptions:
    opt_level: int = 2
    profile: bool = False          # per-kernel cycle counters (runtime/profile.py)

    def key(self) -> tuple:
        return (self.opt_level, self.profile)


@dataclass
class CompiledGraph:
    graph: Graph                   # the graph this code was compiled from
    plan: BufferPlan
    table: abi.ArgTable
    jit: JitModule
    entry: object                  # ctypes function (releases the GIL while native code runs)
    arena_bytes_fn: object
    options: CompileOptions
    timings: dict = field(default_factory=dict)
    profile_counters: object = None      # int64 [kernels + 1, 2] (cycles, calls) when profiling

    @property
    def llvm_ir(self) -> str:
        return self.jit.ir_optimized

    @property
    def llvm_ir_unoptimized(self) -> str:
        return self.jit.ir_unoptimized

    @property
    def asm(self) -> str:
        return self.jit.asm

    def arena_bytes(self, symbol_values) -> int:
        arr = (ctypes.c_int64 * max(1, len(symbol_values)))(*symbol_values)
        return int(self.arena_bytes_fn(ctypes.addressof(arr)))


class CompileCache:
    """Thread-safe in-memory LRU cache; concurrent requests for one key compile it once.

    Evicting an entry only drops the cache's reference: executables keep their code alive."""

    def __init__(self, capacity: int = 256):
        self.capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict = OrderedDict()
        self._key_locks: dict = {}
        self.hits = 0
        self.misses = 0

    def get_or_compile(self, key, build):
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self.hits += 1
                self._entries.move_to_end(key)
                return found
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                found = self._entries.get(key)
                if found is not None:
                    self.hits += 1
                    return found
            value = build()
            with self._lock:
                self._entries[key] = value
                while len(self._entries) > self.capacity:
                    self._entries.popitem(last=False)
                self.misses += 1
                self._key_locks.pop(key, None)
            return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


COMPILE_CACHE = CompileCache()


def cache_key(graph: Graph, target: Target, options: CompileOptions) -> tuple:
    code_graph = graph.clone()
    code_graph.initializers = {}
    return (structural_hash(code_graph), target.key, options.key(), objcache.codegen_knobs())


def compile_graph(graph: Graph, opt_level: int = 2, target: Optional[Target] = None,
                  cache: bool = True, profile: Optional[bool] = None) -> CompiledGraph:
    """Compile `graph` for `target` (the host by default); reuse a cached result if any.
    `profile` (default: the GRAPHC_PROFILE environment variable) adds per-kernel timing
    counters: `Executable.profile()` reports them, and with GRAPHC_PROFILE=1 every profiled
    graph that ran prints its report to stderr at exit."""
    if not isinstance(graph, Graph):
        raise CompileError(f"compile expects an ir.Graph, found {type(graph).__name__}")
    if opt_level not in (0, 1, 2, 3):
        raise CompileError(f"opt_level must be 0, 1, 2 or 3, found {opt_level!r}")
    target = target or host_target()
    options = CompileOptions(opt_level, profiling.enabled() if profile is None else profile)
    key = cache_key(graph, target, options)
    if not cache:
        return _compile(graph, target, options, key)
    return COMPILE_CACHE.get_or_compile(key, lambda: _compile(graph, target, options, key))


_gc_lock = threading.Lock()
_gc_state = {"pauses": 0, "was_enabled": True}


@contextlib.contextmanager
def gc_paused():
    """Python's cyclic garbage collector off while a compile runs: building and printing an
    LLVM module creates ~10^5 llvmlite objects (all in reference cycles), and the full
    collections they trigger each traverse every object of the process (0.1-0.3 s of a
    LeNet step's compile). Their garbage is collected once, by the first collection
    afterwards. Nested and concurrent compiles keep it off until the last one ends."""
    with _gc_lock:
        if _gc_state["pauses"] == 0:
            _gc_state["was_enabled"] = gc.isenabled()
            gc.disable()
        _gc_state["pauses"] += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_state["pauses"] -= 1
            if _gc_state["pauses"] == 0 and _gc_state["was_enabled"]:
                gc.enable()


def _release(modules: list) -> None:
    """Break the reference cycles of compiled llvmlite.ir modules (instruction <-> block <->
    function) so reference counting frees most of their objects now, instead of a garbage
    collection traversing them all later."""
    for module in modules:
        for fn in module.functions:
            for block in fn.blocks:
                for inst in block.instructions:
                    inst.operands = []
                    inst.parent = None
                block.instructions = []
            fn.blocks = []
        module.globals.clear()


def _compile(graph: Graph, target: Target, options: CompileOptions, key=None) -> CompiledGraph:
    with gc_paused():
        return _compile_paused(graph, target, options, key)


def _compile_paused(graph: Graph, target: Target, options: CompileOptions,
                    key=None) -> CompiledGraph:
    t0 = time.perf_counter()
    check_lowerings(graph)
    jit = None
    if key is None:
        key = cache_key(graph, target, options)
    disk_key = objcache.entry_key(key) if objcache.enabled() else None
    placement = objcache.load_json(disk_key, "plan") if disk_key is not None else None
    plan = plan_buffers(graph, placement)
    if disk_key is not None and placement is None:
        objcache.store_json(disk_key, "plan", placement_of(plan))
    if disk_key is not None:
        payload = objcache.load(disk_key)
        if payload is not None:
            try:
                jit = JitModule.from_object(parallel_compile.unpack_objects(payload), target,
                                            options.opt_level,
                                            lambda: str(build_module(graph, plan, target,
                                                                     options.profile)))
            except (RuntimeError, ValueError, struct.error):   # unloadable: rebuild it
                jit = None
    t1 = time.perf_counter()
    if jit is None:
        parts = parallel_compile.parts_for(len(plan.kernel_nodes))
        modules = build_modules(graph, plan, target, options.profile, parts)
        t1 = time.perf_counter()
        # the modules themselves: each part's text is printed by the process compiling it
        jit = JitModule(modules, target, options.opt_level,
                        lambda: [str(m) for m in build_modules(graph, plan, target,
                                                               options.profile, parts)])
        _release(modules)
        if disk_key is not None:
            objcache.store(disk_key, parallel_compile.pack_objects(jit.object_codes()))
    entry = ENTRY_TYPE(jit.address(abi.ENTRY_NAME))
    arena_fn = ARENA_BYTES_TYPE(jit.address(abi.ARENA_BYTES_NAME))
    table = abi.ArgTable(len(plan.data_inputs), len(plan.returned), len(plan.params))
    timings = dict(build_ir=t1 - t0, **jit.timings, total=time.perf_counter() - t0)
    compiled = CompiledGraph(graph, plan, table, jit, entry, arena_fn, options, timings)
    if options.profile:
        compiled.profile_counters = profiling.counters(jit, len(plan.kernel_nodes) + 1)
        profiling.track(compiled)
    return compiled
