"""Turn a module's IR text into native code in this process (MCJIT).

`JitModule` parses and verifies the text (or the texts of a module built in parts, compiled
side by side: parallel_compile.py), runs the O-level pipeline, checks that every external
symbol resolves (MCJIT's finalize_object does not fail on an unresolved symbol; the process
would crash on the first call instead), and keeps the engine alive for as long as the
executable that uses its function addresses. Optimised and unoptimised IR text are kept for
study (a module built in parts is shown linked into one); assembly is produced on first
request.
"""
from __future__ import annotations

import ctypes.util
import threading
import time

import llvmlite.binding as llvm
import llvmlite.ir as llvm_ir

from ir import CompileError

from . import objcache, parallel_compile, pool, threads
from .target import LLVM_LOCK, Target, initialise_llvm

# The thread pool's first build in a process (pool.py compiles its module: ~0.03 s), in
# module_builder.llvm_cost units (~0.07 ms each): the multi-part compile fits it in among
# the parts as if it were one (parallel_compile.compile_parts); a compiler child may take
# it (with the on-disk cache: _build_pool_into_the_cache)
POOL_BUILD_COST = 400

def _build_pool_into_the_cache() -> None:
    """In a compiler child (parallel_compile.py): build the thread pool's module there; the
    build stores its object in the on-disk cache (pool.py), so this process's own build
    (threads.ensure_pool, after the child) only loads it (~2 ms instead of ~25)."""
    pool.POOL.ensure(0)


# Functions LLVM may emit calls to while lowering intrinsics (llvm.exp -> expf, ...).
_LIBM_NAMES = ("exp", "expf", "log", "logf", "pow", "powf", "sqrt", "sqrtf")
_libm_loaded = False
_libm_lock = threading.Lock()


def _load_libm() -> None:
    global _libm_loaded
    with _libm_lock:
        if _libm_loaded:
            return
        path = ctypes.util.find_library("m")
        if path:
            llvm.load_library_permanently(path)
        _libm_loaded = True


class JitModule:
    """Native code in this process, from IR text (`JitModule(text or [part texts], ...)`) or
    from cached object files (`JitModule.from_object`)."""

    def __init__(self, ir_text, target: Target, opt_level: int = 2, ir_source=None):
        """`ir_text`: the module as IR text or llvmlite.ir module, or a list of its parts.
        `ir_source()`, if given, returns the part texts again (rebuilt on request) so that
        parts given as modules need not be kept for `ir_unoptimized`."""
        initialise_llvm()
        _load_libm()
        self.target = target
        self.opt_level = opt_level
        parts = [ir_text] if isinstance(ir_text, (str, llvm_ir.Module)) else list(ir_text)
        self._ir_source, self._ir_optimized, self._asm = ir_source, None, None
        self._ir_optimized_module = None
        self._ir_unoptimized = None
        self.timings: dict = {}
        t0 = time.perf_counter()
        if len(parts) == 1:
            threads.ensure_pool()
            text = parallel_compile.text_of(parts[0])
            mod, obj = parallel_compile.compile_one(text, target, opt_level)
            objects = [obj]
            self._ir_unoptimized = text
            self._ir_optimized_module = mod      # printed only when someone asks for it
            with LLVM_LOCK:
                self._check_symbols([_Symbols.of_parsed(mod)])
        else:
            def while_children_compile():        # in its place among our parts
                # (the check needs the pool: it provides graphc_parallel)
                threads.ensure_pool()
                with LLVM_LOCK:
                    self._check_symbols([_Symbols.of(p) for p in parts])
            building = pool.POOL.engine is None
            objects = parallel_compile.compile_parts(
                parts, target, opt_level, while_children_compile,
                POOL_BUILD_COST if building else 0,
                _build_pool_into_the_cache if building and objcache.enabled() else None)
        # kept for ir_unoptimized: texts, or modules only when they cannot be rebuilt
        self._parts = (None if ir_source is not None and not all(isinstance(p, str)
                                                                  for p in parts)
                       else parts)
        t1 = t2 = time.perf_counter()
        # machine code once, as object files: loaded below, and reusable by the on-disk
        # cache without a second codegen
        self._objects = objects
        self._load(objects, has_threads=any(_Symbols.mentions(p, threads.NUM_THREADS_GLOBAL)
                                            for p in parts))
        t3 = time.perf_counter()
        self.timings.update(optimise_and_codegen=t1 - t0, load=t3 - t2, parts=len(parts))

    @classmethod
    def from_object(cls, objects, target: Target, opt_level: int, ir_source) -> "JitModule":
        """Load object files made by `object_codes` (the on-disk cache; one object or a
        list). `ir_source()` returns the module's IR text (or its part texts); it is only
        called if someone asks for the IR or asm. Raises RuntimeError if LLVM cannot load
        the objects (the caller rebuilds)."""
        initialise_llvm()
        _load_libm()
        threads.ensure_pool()
        self = cls.__new__(cls)
        self.target, self.opt_level, self.timings = target, opt_level, {}
        self._parts = None
        self._ir_source, self._ir_unoptimized, self._ir_optimized, self._asm = (
            ir_source, None, None, None)
        objects = [objects] if isinstance(objects, (bytes, bytearray)) else list(objects)
        self._ir_optimized_module, self._objects = None, objects
        t0 = time.perf_counter()
        self._load(objects)
        self.timings.update(load_object=time.perf_counter() - t0)
        return self

    def _load(self, objects: list, has_threads: bool = True) -> None:
        with LLVM_LOCK:
            empty = llvm.parse_assembly(f'target triple = "{self.target.triple}"')
            self.engine = llvm.create_mcjit_compiler(
                empty, self.target.create_target_machine(self.opt_level))
            for obj in objects:
                self.engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
            self.engine.finalize_object()
            self.threads_address = (self.engine.get_global_value_address(
                threads.NUM_THREADS_GLOBAL) if has_threads else 0)
        threads.set_module_threads(self.threads_address)

    def _linked_text(self, parts: list) -> str:
        """One module's text from the part texts (LLVM's linker renames the duplicated
        internal helpers and resolves the cross-part calls)."""
        parts = [parallel_compile.text_of(p) for p in parts]
        if len(parts) == 1:
            return parts[0]
        with LLVM_LOCK:
            mods = [llvm.parse_assembly(t) for t in parts]
            for other in mods[1:]:
                mods[0].link_in(other)
            return str(mods[0])

    @property
    def ir_unoptimized(self) -> str:
        if self._ir_unoptimized is None:
            parts = self._parts if self._parts is not None else self._ir_source()
            self._ir_unoptimized = self._linked_text([parts] if isinstance(parts, str)
                                                     else list(parts))
        return self._ir_unoptimized

    @ir_unoptimized.setter
    def ir_unoptimized(self, text: str) -> None:
        self._ir_unoptimized = text

    @property
    def ir_optimized(self) -> str:
        if self._ir_optimized is None and self._ir_optimized_module is not None:
            with LLVM_LOCK:
                self._ir_optimized = str(self._ir_optimized_module)
                self._ir_optimized_module = None
        if self._ir_optimized is None:
            with LLVM_LOCK:
                mod = llvm.parse_assembly(self.ir_unoptimized)
                self.target.optimise(mod, self.opt_level)
                self._ir_optimized = str(mod)
        return self._ir_optimized

    @ir_optimized.setter
    def ir_optimized(self, text: str) -> None:
        self._ir_optimized = text

    @staticmethod
    def _check_symbols(parts: list) -> None:
        """`parts`: the _Symbols of every part."""
        missing = []
        defined = {name for p in parts for name in p.functions_defined}
        names = {name for p in parts for name in p.functions_declared} - defined
        for name in sorted(names | set(_LIBM_NAMES)):
            if name.startswith("llvm."):
                continue
            if not llvm.address_of_symbol(name):
                missing.append(name)
        if missing:
            raise CompileError(f"native code needs symbol(s) {', '.join(missing)} that this "
                               "process does not provide (libm not found?)")
        # a global one part declares and no part defines would load as address 0 (MCJIT
        # does not fail): the parts of a module must define what they share
        defined = {name for p in parts for name in p.globals_defined}
        lost = sorted({name for p in parts for name in p.globals_declared} - defined)
        lost = [name for name in lost if not llvm.address_of_symbol(name)]
        if lost:
            raise CompileError(f"generated code declares global(s) {', '.join(lost)} that no "
                               "part of the module defines (a codegen bug)")

    def global_address(self, name: str) -> int:
        """Address of a global variable of the module (0 when it has none by that name)."""
        with LLVM_LOCK:
            return self.engine.get_global_value_address(name)

    def address(self, name: str) -> int:
        with LLVM_LOCK:
            addr = self.engine.get_function_address(name)
        if not addr:
            raise CompileError(f"compiled module has no function {name!r}")
        return addr

    @property
    def asm(self) -> str:
        """Assembly of the optimised module for this target (produced on first use)."""
        if self._asm is None:
            with LLVM_LOCK:
                mod = llvm.parse_assembly(self.ir_optimized)
                self._asm = self.target.emit_assembly(mod)
        return self._asm

    def object_codes(self) -> list:
        """The ELF objects this module was loaded from (one per part: the on-disk cache)."""
        return list(self._objects)

    def object_code(self) -> bytes:
        """ONE ELF object of the whole optimised module (export): the loaded object when the
        module was built in one part, else the parts linked and compiled again."""
        if len(self._objects) == 1:
            return self._objects[0]
        with LLVM_LOCK:
            return self.target.emit_object(llvm.parse_assembly(self.ir_optimized))


class _Symbols:
    """The functions and globals a part defines and declares, read from the llvmlite.ir
    module it was built as (no printing, no parsing) or from a parsed module."""

    def __init__(self, functions: list, globals_: list):
        self.functions_defined = [n for n, declared in functions if not declared]
        self.functions_declared = [n for n, declared in functions if declared]
        self.globals_defined = [n for n, declared in globals_ if not declared]
        self.globals_declared = [n for n, declared in globals_ if declared]

    @classmethod
    def of(cls, part) -> "_Symbols":
        if isinstance(part, str):
            return cls.of_parsed(parallel_compile.parse(part))
        values = part.global_values
        return cls([(v.name, v.is_declaration) for v in values
                    if isinstance(v, llvm_ir.Function)],
                   [(v.name, v.initializer is None) for v in values
                    if isinstance(v, llvm_ir.GlobalVariable)])

    @classmethod
    def of_parsed(cls, mod) -> "_Symbols":
        return cls([(f.name, f.is_declaration) for f in mod.functions],
                   [(g.name, g.is_declaration) for g in mod.global_variables])

    @staticmethod
    def mentions(part, name: str) -> bool:
        return name in part if isinstance(part, str) else name in part.globals
