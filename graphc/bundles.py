"""`graphc.export` / `graphc.load`: ship a compiled graph as a bundle directory.

    exe = graphc.compile(graph)
    graphc.export(exe, "mlp_bundle")          # model.o, model.h, weights.bin, model.gir, ...
    exe2 = graphc.load("mlp_bundle")          # no recompiling: same call interface
    model.export("step_bundle", what="train_step", y=y_example)   # a Model's executable

The format and the checks made at load are described in runtime/bundle/.
"""
from __future__ import annotations

from typing import Optional

from ir import BundleError
from runtime import Executable
from runtime.bundle import load_bundle, write_bundle


def export(obj, directory, llvm_ir: bool = False, **model_options) -> dict:
    """Write the bundle of `obj` (an Executable from graphc.compile, or a graphc.Model with
    `what=` and, for training graphs, `y=`) to `directory`; returns its manifest.
    `llvm_ir`: also write model.ll (the optimised LLVM IR, for study)."""
    if isinstance(obj, Executable):
        if model_options:
            raise BundleError(f"export of an Executable takes no {', '.join(model_options)} "
                              "(those are for a graphc.Model)")
        return write_bundle(obj, directory, llvm_ir=llvm_ir)
    from .training import Model
    if isinstance(obj, Model):
        return obj.export(directory, llvm_ir=llvm_ir, **model_options)
    raise BundleError(f"graphc.export expects an Executable (graphc.compile(...)) or a "
                      f"graphc.Model, found {type(obj).__name__}")


def load(directory, threads: Optional[int] = None) -> Executable:
    """The Executable stored in a bundle directory (checked: format, checksums, CPU
    features). `threads`: threads for its parallel regions (default GRAPHC_NUM_THREADS,
    else every CPU this process may use)."""
    return load_bundle(directory, threads)
