"""The host target: CPU name and features, vector width, LLVM's optimisation pipeline.

Everything that depends on the machine is decided here, so the rest of the runtime asks
`host_target()` instead of assuming AVX-512: the vector width W (f32 lanes per register: 16
with AVX-512, 8 with AVX2, 4 otherwise) is derived from the CPU features and never hard-coded
elsewhere. llvmlite 0.50 has no legacy pass manager; the new-pass-manager pipeline is built
from PipelineTuningOptions (SLP vectorisation is off by default there, so it is set
explicitly).
"""
from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

import llvmlite
import llvmlite.binding as llvm

from ir import CompileError

# llvmlite serialises binding calls behind one process-wide lock anyway; this lock makes the
# compile steps (parse, optimise, JIT) explicit critical sections for our own threads too.
LLVM_LOCK = threading.RLock()

_initialised = False


def initialise_llvm() -> None:
    """Initialise the native target once (llvm.initialize() itself raises in 0.50)."""
    global _initialised
    with LLVM_LOCK:
        if not _initialised:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            llvm.initialize_native_asmparser()
            _initialised = True


def _vector_width_f32(features: str) -> int:
    flags = set(features.split(","))
    if "+avx512f" in flags:
        return 16
    if "+avx2" in flags or "+avx" in flags:
        return 8
    return 4


@dataclass(frozen=True)
class Target:
    """What codegen needs to know about the machine it compiles for."""
    triple: str
    cpu: str
    features: str            # LLVM feature string, e.g. "+avx2,+avx512f,..."
    vector_bits: int         # widest vector register used: 512, 256 or 128

    @property
    def key(self) -> tuple:
        """Identity for compile caches: code for one target must not run on another."""
        return (self.triple, self.cpu, self.features, llvmlite.__version__)

    def vector_width(self, itemsize: int = 4) -> int:
        """Lanes of an `itemsize`-byte element in one vector register (W for f32)."""
        return max(1, self.vector_bits // (8 * itemsize))

    def create_target_machine(self, opt_level: int = 2):
        """A fresh TargetMachine (an MCJIT engine takes ownership of the one it is given)."""
        initialise_llvm()
        with LLVM_LOCK:
            target = llvm.Target.from_triple(self.triple)
            return target.create_target_machine(cpu=self.cpu, features=self.features,
                                                opt=min(max(opt_level, 0), 3), jit=True)

    def optimise(self, module, opt_level: int = 2) -> None:
        """Run LLVM's standard O`opt_level` module pipeline (vectorisers on) in place."""
        if opt_level not in (0, 1, 2, 3):
            raise CompileError(f"opt_level must be 0, 1, 2 or 3, found {opt_level!r}")
        with LLVM_LOCK:
            tm = self.create_target_machine(opt_level)
            pto = llvm.create_pipeline_tuning_options(speed_level=opt_level)
            pto.loop_vectorization = opt_level >= 2
            pto.slp_vectorization = opt_level >= 2
            pb = llvm.create_pass_builder(tm, pto)
            pb.getModulePassManager().run(module, pb)

    def emit_assembly(self, module) -> str:
        with LLVM_LOCK:
            return self.create_target_machine().emit_assembly(module)

    def emit_object(self, module, opt_level: int = 2) -> bytes:
        with LLVM_LOCK:
            return self.create_target_machine(opt_level).emit_object(module)

    def data_layout(self) -> str:
        with LLVM_LOCK:
            return str(self.create_target_machine().target_data)


@functools.lru_cache(maxsize=1)
def host_target() -> Target:
    """The machine this process runs on (CPU name and every feature LLVM detects)."""
    initialise_llvm()
    with LLVM_LOCK:
        features = llvm.get_host_cpu_features().flatten()
        cpu = llvm.get_host_cpu_name()
        triple = llvm.get_process_triple()
    width = _vector_width_f32(features)
    return Target(triple=triple, cpu=cpu, features=features, vector_bits=width * 32)
