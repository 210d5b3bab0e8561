"""Export bundles: a compiled graph saved ahead of time, loadable from Python or C.

    write_bundle(exe, "out/")      # graphc.export(exe, "out/")
    exe = load_bundle("out/")      # graphc.load("out/"): same call interface, no compiling

A bundle directory (format "graphc-bundle/1"; no pickle anywhere):

    model.o        ONE relocatable ELF object: graphc_entry, graphc_arena_bytes (abi.py) and
                   graphc_init(threads) (starts the thread pool it contains); every other
                   symbol is internal. Needs only libc/libm (+ libpthread before glibc 2.34).
    model.h        C header: prototypes, argument table indices, dtypes, shapes (symbolic
                   dims as expressions over the symbol array), weight offsets, usage.
    weights.bin    the params/state, raw little-endian, each tensor 64-byte aligned.
    model.gir      the final IR after the pass pipeline (+ model.gir.weights.npz for its large
                   constants), for study; also what the Python loader binds arguments with.
    manifest.json  format, versions (graphc, llvmlite, LLVM), target triple/CPU/features,
                   symbols, argument table, tensors (name, role, offset, dtype, shape,
                   sha256), aliases, undefined symbols, link flags, sha256 of every file.
    model.ll       optional: the optimised LLVM IR, for study (not checked).
"""
from .reader import BundleCode, load_bundle, read_manifest
from .writer import FORMAT, write_bundle

__all__ = ["FORMAT", "BundleCode", "load_bundle", "read_manifest", "write_bundle"]
