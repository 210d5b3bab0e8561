"""Turn a module's IR text into native code in this process (MCJIT).

`JitModule` parses and verifies the text, runs the O-level pipeline, checks that every external
symbol resolves (MCJIT's finalize_object does not fail on an unresolved symbol; the process
would crash on the first call instead), and keeps the engine alive for as long as the
executable that uses its function addresses. Optimised and unoptimised IR text are kept for
study; assembly is produced on first request.
"""
from __future__ import annotations

import ctypes.util
import threading
import time

import llvmlite.binding as llvm

from ir import CompileError

from . import threads
from .target import LLVM_LOCK, Target, initialise_llvm

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
    """Native code in this process, from IR text (`JitModule(text, ...)`) or from a cached
    object file (`JitModule.from_object`)."""

    def __init__(self, ir_text: str, target: Target, opt_level: int = 2):
        initialise_llvm()
        _load_libm()
        threads.ensure_pool()
        self.target = target
        self.opt_level = opt_level
        self._ir_source, self._ir_optimized, self._asm = None, None, None
        self._ir_optimized_module = None
        self.ir_unoptimized = ir_text
        self.timings: dict = {}
        with LLVM_LOCK:
            t0 = time.perf_counter()
            try:
                mod = llvm.parse_assembly(ir_text)
                mod.verify()
            except RuntimeError as e:
                raise CompileError(f"generated LLVM IR is invalid (a codegen bug): {e}") from None
            t1 = time.perf_counter()
            target.optimise(mod, opt_level)
            t2 = time.perf_counter()
            self._ir_optimized_module = mod      # printed only when someone asks for it
            self._check_symbols(mod)
            # machine code once, as an object file: loaded below, and reusable by the
            # on-disk cache and export bundles without a second codegen
            self._object = self.target.emit_object(mod, opt_level)
            self._load(self._object, has_threads=threads.NUM_THREADS_GLOBAL in ir_text)
            t3 = time.perf_counter()
        self.timings.update(parse=t1 - t0, optimise=t2 - t1, codegen=t3 - t2)
        self._asm = None

    @classmethod
    def from_object(cls, obj: bytes, target: Target, opt_level: int, ir_source) -> "JitModule":
        """Load an object file made by `object_code` (the on-disk cache). `ir_source()`
        returns the module's IR text; it is only called if someone asks for the IR or asm.
        Raises RuntimeError if LLVM cannot load the object (the caller rebuilds)."""
        initialise_llvm()
        _load_libm()
        threads.ensure_pool()
        self = cls.__new__(cls)
        self.target, self.opt_level, self.timings = target, opt_level, {}
        self._ir_source, self._ir_unoptimized, self._ir_optimized, self._asm = (
            ir_source, None, None, None)
        self._ir_optimized_module, self._object = None, obj
        t0 = time.perf_counter()
        self._load(obj)
        self.timings.update(load_object=time.perf_counter() - t0)
        return self

    def _load(self, obj: bytes, has_threads: bool = True) -> None:
        with LLVM_LOCK:
            empty = llvm.parse_assembly(f'target triple = "{self.target.triple}"')
            self.engine = llvm.create_mcjit_compiler(
                empty, self.target.create_target_machine(self.opt_level))
            self.engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
            self.engine.finalize_object()
            self.threads_address = (self.engine.get_global_value_address(
                threads.NUM_THREADS_GLOBAL) if has_threads else 0)
        threads.set_module_threads(self.threads_address)

    @property
    def ir_unoptimized(self) -> str:
        if self._ir_unoptimized is None:
            self._ir_unoptimized = self._ir_source()
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
    def _check_symbols(mod) -> None:
        missing = []
        names = {f.name for f in mod.functions if f.is_declaration}
        for name in sorted(names | set(_LIBM_NAMES)):
            if name.startswith("llvm."):
                continue
            if not llvm.address_of_symbol(name):
                missing.append(name)
        if missing:
            raise CompileError(f"native code needs symbol(s) {', '.join(missing)} that this "
                               "process does not provide (libm not found?)")

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

    def object_code(self) -> bytes:
        """An ELF object of the optimised module (for export bundles and on-disk caches)."""
        obj = getattr(self, "_object", None)
        if obj is None:
            with LLVM_LOCK:
                obj = self._object = self.target.emit_object(
                    llvm.parse_assembly(self.ir_optimized))
        return obj
