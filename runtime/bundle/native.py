"""The bundle's native code: ONE relocatable object a C program links, and its symbols.

`bundle_object(compiled)` rebuilds the module's parts exactly as the compile did (same
part count, each part optimised on its own at the same level, so the machine code computes
what the in-process executable computes), links them into one module together with the
thread pool (runtime/pool.py) when the module has parallel regions, and small glue
functions (below), makes every symbol but the public API internal (no clashes with the C
program's own names), and emits one ELF object.

Public symbols of the object (see cheader.py for the C prototypes):
    graphc_entry, graphc_arena_bytes   the ABI of runtime/abi.py
    graphc_init(int32 threads)         start the bundled pool's workers once and set the
                                       thread count of the module's parallel regions
                                       (at most the CPUs online; returns the count used)
                                       (optional: without it every region runs on the
                                       calling thread). For C programs.
    graphc_bind_pool(fn, int32 threads)  run the regions on a host's pool instead (`fn` is a
                                       graphc_parallel of runtime/pool.py's signature) and
                                       set the thread count: what graphc.load does, so a
                                       loaded bundle shares the process's one pool and its
                                       code can be freed (no worker ever runs inside it).
The kernels' calls to graphc_parallel go to a small dispatcher: the bound host pool if any,
else the bundled one.

`elf_symbols(obj)` lists what the object defines and what it still needs from the C
libraries (read from the ELF symbol table, so whatever LLVM's code generator added, e.g.
memcpy, is listed too).
"""
from __future__ import annotations

import struct

import llvmlite.binding as llvm
import llvmlite.ir as ir

from ir import BundleError

from .. import pool, threads
from ..codegen.module_builder import build_modules
from ..target import LLVM_LOCK, Target

INIT_NAME = "graphc_init"
_SC_NPROCESSORS_ONLN = 84                   # glibc's value (Linux only, as the bundle)
BIND_NAME = "graphc_bind_pool"
OWN_PARALLEL = "graphc_own_parallel"       # the bundled pool's graphc_parallel, renamed
PUBLIC_SYMBOLS = ("graphc_entry", "graphc_arena_bytes", INIT_NAME, BIND_NAME)
I32, I64, PTR, VOID = ir.IntType(32), ir.IntType(64), ir.PointerType(), ir.VoidType()

# libc functions the pool calls (glibc >= 2.34 has pthread_* in libc itself; older
# systems need -lpthread)
PTHREAD_SYMBOLS = ("pthread_create", "pthread_detach")


def _glue_module(target: Target, has_pool: bool, pool_times: tuple) -> ir.Module:
    """The bundle's glue functions (see the module docstring)."""
    m = ir.Module(name="graphc_glue")
    m.triple, m.data_layout = target.triple, target.data_layout()
    one = ir.Constant(I32, 1)
    init = ir.Function(m, ir.FunctionType(I32, [I32]), INIT_NAME)
    bind = ir.Function(m, ir.FunctionType(I32, [PTR, I32]), BIND_NAME)
    if not has_pool:                     # no parallel region: nothing to start or bind
        for fn in (init, bind):
            ir.IRBuilder(fn.append_basic_block("entry")).ret(one)
        return m
    workers = ir.GlobalVariable(m, I32, name="graphc_pool.workers")
    count = ir.GlobalVariable(m, I32, name=threads.NUM_THREADS_GLOBAL)
    host = ir.GlobalVariable(m, I64, name="graphc_host_parallel")     # a function address
    host.initializer = ir.Constant(I64, 0)
    host.align = 8
    reset = ir.Function(m, ir.FunctionType(VOID, [I64] * 4), "graphc_pool_reset")
    start = ir.Function(m, ir.FunctionType(I32, [I32]), "graphc_pool_start")
    task = pool._CalleePointer(ir.FunctionType(VOID, [PTR, I32]))
    region_type = ir.FunctionType(VOID, [task, PTR, I32])
    own = ir.Function(m, region_type, OWN_PARALLEL)

    # int32_t graphc_init(int32_t threads): the bundle's own pool, started once (its timing
    # constants in cycle-counter ticks, measured when the bundle was written)
    b = ir.IRBuilder(init.append_basic_block("entry"))
    (want,) = init.args
    want = b.select(b.icmp_signed("<", want, one), one, want)
    # never more threads than CPUs online (sysconf(_SC_NPROCESSORS_ONLN), 84 in glibc):
    # regions would then wait on descheduled workers
    sysconf = ir.Function(m, ir.FunctionType(I64, [I32]), "sysconf")
    cpus = b.trunc(b.call(sysconf, [ir.Constant(I32, _SC_NPROCESSORS_ONLN)]), I32)
    capped = b.and_(b.icmp_signed(">", cpus, ir.Constant(I32, 0)), b.icmp_signed(">", want, cpus))
    want = b.select(capped, cpus, want)
    fresh = init.append_basic_block("fresh")
    go = init.append_basic_block("start")
    have = b.load_atomic(workers, "seq_cst", 4, typ=I32)
    b.cbranch(b.icmp_signed("==", have, ir.Constant(I32, 0)), fresh, go)
    b.position_at_end(fresh)
    b.call(reset, [ir.Constant(I64, int(t)) for t in pool_times])
    b.branch(go)
    b.position_at_end(go)
    started = b.call(start, [b.sub(want, one)])
    use = b.add(started, one)
    use = b.select(b.icmp_signed("<", want, use), want, use)
    b.store_atomic(use, count, "seq_cst", 4)
    b.ret(use)

    # int32_t graphc_bind_pool(parallel_fn, threads): run regions on a host's pool instead
    b = ir.IRBuilder(bind.append_basic_block("entry"))
    fn_ptr, want = bind.args
    want = b.select(b.icmp_signed("<", want, one), one, want)
    b.store_atomic(b.ptrtoint(fn_ptr, I64), host, "seq_cst", 8)
    b.store_atomic(want, count, "seq_cst", 4)
    b.ret(want)

    # void graphc_parallel(fn, ctx, threads): what the kernels call
    region = ir.Function(m, region_type, pool.PARALLEL_SYMBOL)
    b = ir.IRBuilder(region.append_basic_block("entry"))
    hooked = region.append_basic_block("host")
    local = region.append_basic_block("own")
    hook = b.load_atomic(host, "acquire", 8, typ=I64)
    b.cbranch(b.icmp_unsigned("!=", hook, ir.Constant(I64, 0)), hooked, local)
    b.position_at_end(hooked)
    b.call(b.inttoptr(hook, pool._CalleePointer(region_type)), list(region.args))
    b.ret_void()
    b.position_at_end(local)
    b.call(own, list(region.args))
    b.ret_void()
    return m


def _pool_times() -> tuple:
    """The pool's timing constants (spin, stall, backoff min/max) in cycle-counter ticks of
    this machine (the bundle only runs on a CPU with the same features)."""
    rate = pool.ticks_per_us()
    return (int(rate * pool.SPIN_US), int(rate * pool.STALL_US),
            int(rate * pool.BACKOFF_US[0]), int(rate * pool.BACKOFF_US[1]))


def bundle_object(compiled) -> tuple:
    """(object bytes, has_pool) of a CompiledGraph: its parts (built and optimised as the
    compile did), the pool if it has parallel regions, and the glue, in one object."""
    jit = compiled.jit
    target = jit.target
    n_parts = len(jit.object_codes())
    texts = [str(m) for m in build_modules(compiled.graph, compiled.plan, target, False, n_parts)]
    has_pool = any(threads.NUM_THREADS_GLOBAL in t for t in texts)
    times = _pool_times() if has_pool else (0, 0, 0, 0)
    pool_text = str(pool._PoolIR(target.triple, target.data_layout()).module) if has_pool \
        else None
    glue_text = str(_glue_module(target, has_pool, times))
    with LLVM_LOCK:
        mods = []
        for text in texts:
            mod = llvm.parse_assembly(text)
            mod.verify()
            target.optimise(mod, compiled.options.opt_level)
            mods.append(mod)
        if has_pool:
            # the pool as runtime/pool.py compiles it (no IR pipeline, O2 code generation);
            # its graphc_parallel renamed: the glue's graphc_parallel dispatches to it
            pool_mod = llvm.parse_assembly(pool_text)
            pool_mod.get_function(pool.PARALLEL_SYMBOL).name = OWN_PARALLEL
            mods.append(pool_mod)
        mods.append(llvm.parse_assembly(glue_text))
        linked = mods[0]
        for other in mods[1:]:
            linked.link_in(other)
        _internalise(linked)
        linked.verify()
        obj = _static_target_machine(target, compiled.options.opt_level).emit_object(linked)
    return obj, has_pool


def _static_target_machine(target: Target, opt_level: int):
    """A target machine for an object a linker takes: position-independent, small code
    model (the JIT's default, the large model, puts code in `.ltext` and needs text
    relocations in a PIE). Only addressing differs; the arithmetic is the same."""
    return llvm.Target.from_triple(target.triple).create_target_machine(
        cpu=target.cpu, features=target.features, opt=min(max(opt_level, 0), 3),
        reloc="pic", codemodel="small")


def _internalise(mod) -> None:
    """Every defined function and global but the public API gets internal linkage."""
    for value in list(mod.functions) + list(mod.global_variables):
        if value.is_declaration or value.name in PUBLIC_SYMBOLS:
            continue
        if value.linkage not in (llvm.Linkage.private, llvm.Linkage.internal):
            value.linkage = llvm.Linkage.internal


# -- the ELF symbol table ---------------------------------------------------------------------
def elf_symbols(obj: bytes) -> tuple:
    """(defined global symbol names, undefined symbol names) of an ELF64 little-endian
    relocatable object."""
    try:
        if obj[:4] != b"\x7fELF" or obj[4] != 2 or obj[5] != 1:
            raise BundleError("model.o: expected an ELF64 little-endian object file, found "
                              f"a file starting with {obj[:6]!r}")
        shoff, = struct.unpack_from("<Q", obj, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", obj, 0x3A)
        sections = [struct.unpack_from("<IIQQQQIIQQ", obj, shoff + k * shentsize)
                    for k in range(shnum)]
        defined, undefined = set(), set()
        for sh in sections:
            if sh[1] != 2:                        # SHT_SYMTAB
                continue
            strtab = sections[sh[6]]
            str_off = strtab[4]
            for at in range(sh[4], sh[4] + sh[5], sh[9]):
                name_off, info, _, shndx, _, _ = struct.unpack_from("<IBBHQQ", obj, at)
                end = obj.index(b"\0", str_off + name_off)
                name = obj[str_off + name_off:end].decode("utf-8", "replace")
                binding = info >> 4
                if not name or binding == 0:      # STB_LOCAL
                    continue
                (undefined if shndx == 0 else defined).add(name)
        return sorted(defined), sorted(undefined)
    except (struct.error, ValueError, IndexError) as e:
        raise BundleError(f"model.o: cannot read its ELF symbol table ({e})") from None


def libraries_for(undefined) -> list:
    """The C libraries a program must link for these undefined symbols (beyond libc)."""
    libs = ["-lm"]
    if any(name in PTHREAD_SYMBOLS for name in undefined):
        libs.append("-lpthread")
    return libs
