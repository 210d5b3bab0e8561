"""The `graphc` command line.

    graphc opt FILE.gir [FILE2.gir ...] --passes=shape-infer,dce [--print-after-change] ...
    graphc compile MODEL.onnx [-O2] [--export DIR] [--print-after-all] ...
    graphc export MODEL.{gir,onnx} -o DIR [-O2]   a bundle for graphc.load or a C program
    graphc opt FILE.gir -O2 --explain-fusion     fused groups and refusals with reasons
    graphc passes            the registered passes and their options
    graphc ops [NAME]        the op registry (inputs, attributes, fusion kind, purity)

Each subcommand is an entry in COMMANDS (name -> help, argument setup, run function), so
adding one (`compile`, `export`) is one `register_command` call. Errors a user can cause
print as one clean message on stderr (no traceback): exit status 2 for a bad command line or
pipeline, 1 for a file that cannot be read, parsed or transformed.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Optional

from ir import GraphcError, all_ops, get_op
from ir.printer import dump
from ir.serialize import load_gir, save_gir
from passes.registry import format_option_value
from passes import (Diff, DumpDir, PassManager, PipelineError, PrintIR, ReferenceCheck,
                    Statistics, Timing, Verify, build_pipeline, format_table, registered_passes)

COMMANDS: dict = {}


def register_command(name: str, help: str, add_arguments: Callable, run: Callable) -> None:
    """Add a subcommand: `add_arguments(parser)` declares its options, `run(args) -> int`."""
    COMMANDS[name] = (help, add_arguments, run)


class UsageError(Exception):
    """A bad command line found after argparse (exit status 2)."""


# -- graphc opt --------------------------------------------------------------------------------

def _instrument_arguments(p: argparse.ArgumentParser) -> None:
    """The pass-instrument options shared by `opt` and `compile`."""
    p.add_argument("--print-before-all", action="store_true", help="print the IR before each pass")
    p.add_argument("--print-before", metavar="NAMES", help="print the IR before the named passes")
    after = p.add_mutually_exclusive_group()
    after.add_argument("--print-after-all", action="store_true", help="print the IR after each pass")
    after.add_argument("--print-after-change", action="store_true",
                       help="print the IR after each pass that changed it")
    after.add_argument("--print-after", metavar="NAMES", help="print the IR after the named passes")
    p.add_argument("--diff", action="store_true",
                   help="show a unified diff of the IR across each pass that changed it")
    p.add_argument("--dump-dir", metavar="DIR",
                   help="write numbered .gir files (input and after each pass) to DIR")
    p.add_argument("--timing", action="store_true", help="report per-pass wall time")
    p.add_argument("--stats", action="store_true", help="report every pass's statistics")
    p.add_argument("--verify-each", action="store_true",
                   help="run the IR verifier after each pass")
    p.add_argument("--check-numerics", action="store_true",
                   help="run the reference interpreter on random inputs after each pass and "
                        "name the first pass that changes the outputs")
    p.add_argument("--no-locs", action="store_true", help="print IR without source locations")


def _opt_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE.gir", help="IR files to optimize")
    p.add_argument("--passes", default="", metavar="PIPELINE",
                   help='pass pipeline, e.g. "shape-infer,dce" or "simplify{fast-math=true}"')
    p.add_argument("-o", "--output", metavar="OUT",
                   help="write the result here (a directory when several files are given) "
                        "instead of printing it")
    _instrument_arguments(p)
    p.add_argument("-O", dest="opt_level", type=int, choices=(0, 1, 2, 3), default=None,
                   help="use the default pipeline of this optimisation level (when --passes "
                        "is not given)")
    p.add_argument("--explain-fusion", action="store_true",
                   help="print the fused groups and every refused fusion with its reason "
                        "(on stderr; runs the -O2 pipeline when no pipeline is given)")


def _explain_fusion(result) -> None:
    """The fuse pass's groups and refusals (its remarks), on stderr next to other reports."""
    records = [r for r in result.records if r.name == "fuse"]
    if not records:
        raise UsageError("--explain-fusion needs a pipeline with the fuse pass (e.g. -O2)")
    for r in records:
        sys.stderr.write(f"# fusion ({r.label}): {r.stats.get('fused_groups', 0)} groups, "
                         f"{r.stats.get('kernels_before', 0)} -> "
                         f"{r.stats.get('kernels_after', 0)} kernels, "
                         f"{r.stats.get('refusals', 0)} refusals\n")
        for line in r.remarks:
            sys.stderr.write(f"  {line}\n")


def _pipeline_text(args) -> str:
    if args.passes:
        return args.passes
    if args.opt_level is not None or args.explain_fusion:
        from passes import pipeline_for
        return pipeline_for(2 if args.opt_level is None else args.opt_level)
    return ""


def _instruments(args, dump_dir: Optional[str]) -> list:
    show_locs = not args.no_locs
    out = []
    before = "all" if args.print_before_all else args.print_before
    after = ("all" if (args.print_after_all or args.print_after_change) else args.print_after)
    if before or after:
        out.append(PrintIR(before=before, after=after, only_on_change=args.print_after_change,
                           show_locs=show_locs))
    if args.diff:
        out.append(Diff())
    if dump_dir:
        out.append(DumpDir(dump_dir))
    if args.verify_each:
        out.append(Verify())
    if args.check_numerics:
        out.append(ReferenceCheck())
    if args.timing:
        out.append(Timing())
    if args.stats:
        out.append(Statistics())
    return out


def _run_opt(args) -> int:
    args.passes = _pipeline_text(args)
    try:
        build_pipeline(args.passes)       # report a bad pipeline before reading any file
    except PipelineError as e:
        raise UsageError(str(e)) from None
    several = len(args.files) > 1
    if several and args.output:
        os.makedirs(args.output, exist_ok=True)
    for path in args.files:
        stem = os.path.splitext(os.path.basename(path))[0]
        if several:
            sys.stderr.write(f"# ===== {path} =====\n")
        graph = load_gir(path)
        dump_dir = args.dump_dir and (os.path.join(args.dump_dir, stem) if several
                                      else args.dump_dir)
        result = PassManager(args.passes, _instruments(args, dump_dir)).run(graph)
        if args.explain_fusion:
            _explain_fusion(result)
        if args.output:
            target = os.path.join(args.output, os.path.basename(path)) if several else args.output
            save_gir(result.graph, target, show_locs=not args.no_locs)
        else:
            text, _ = dump(result.graph, show_locs=not args.no_locs)
            if several:
                sys.stdout.write(f"# ===== {path} =====\n")
            sys.stdout.write(text)
            sys.stdout.flush()      # keep the order with reports on stderr when both go to a tty
    return 0


register_command("opt", "run a pass pipeline over .gir files and print (or save) the result",
                 _opt_arguments, _run_opt)


# -- graphc compile -----------------------------------------------------------------------------

def _model_arguments(p: argparse.ArgumentParser) -> None:
    """MODEL, -O, --passes, --frozen: what `compile` and `export` both take."""
    p.add_argument("model", metavar="MODEL", help="an ONNX model (.onnx) or graphc IR (.gir)")
    p.add_argument("-O", dest="opt_level", type=int, choices=(0, 1, 2, 3), default=2,
                   help="optimisation level: its pass pipeline and LLVM level (default 2)")
    p.add_argument("--passes", default=None, metavar="PIPELINE",
                   help="run this pass pipeline instead of the -O level's")
    p.add_argument("--frozen", action="store_true",
                   help="ONNX initializers become constants instead of trainable params")


def _compile_arguments(p: argparse.ArgumentParser) -> None:
    _model_arguments(p)
    p.add_argument("--export", metavar="DIR",
                   help="write a bundle to DIR (as `graphc export`), with the optimised LLVM "
                        "IR (model.ll) for study")
    _instrument_arguments(p)


def _load_model(path: str, frozen: bool):
    if path.endswith(".gir"):
        return load_gir(path)
    from graphc.onnx import import_model     # needs the onnx extra; says so if missing
    return import_model(path, frozen=frozen)


def _run_compile(args) -> int:
    import time

    from graphc.compiler import compile as compile_graph
    from passes import pipeline_for
    text = args.passes if args.passes is not None else pipeline_for(args.opt_level)
    try:
        build_pipeline(text)
    except PipelineError as e:
        raise UsageError(str(e)) from None
    graph = _load_model(args.model, args.frozen)
    imported = len(graph.nodes)
    result = PassManager(text, _instruments(args, args.dump_dir)).run(graph)
    start = time.perf_counter()
    exe = compile_graph(result.graph, opt_level=args.opt_level, pipeline="")
    seconds = time.perf_counter() - start
    g = result.graph
    params = [v for v in g.inputs if v.role != "input"]
    nbytes = sum(int(g.initializers[v.name].nbytes) for v in params if v.name in g.initializers)
    out = sys.stdout
    out.write(f"{args.model}: graph @{g.name}\n")
    for v in g.inputs_with_role("input"):
        out.write(f"  input   {v.name}: {v.type}\n")
    for name, v in zip(g.output_names, g.outputs):
        out.write(f"  output  {name}: {v.type}\n")
    out.write(f"  params  {len(params)} ({nbytes / 1024:.1f} KiB)\n")
    out.write(f"  nodes   {imported} imported, {len(g.nodes)} after passes "
              f"({text or 'no passes'})\n")
    out.write(f"  native  compiled in {seconds:.2f} s at -O{args.opt_level}\n")
    if args.export:
        from runtime.bundle import write_bundle
        manifest = write_bundle(exe, args.export, llvm_ir=getattr(args, "llvm_ir", True))
        files = ", ".join(f"{name} ({info['bytes'] / 1024:.1f} KiB)"
                          for name, info in sorted(manifest["files"].items()))
        out.write(f"  bundle  {args.export}: {files}\n")
        out.write(f"  link    cc main.c {os.path.join(args.export, 'model.o')} "
                  f"{' '.join(manifest['link'])}\n")
    out.flush()
    return 0


register_command("compile", "import a model (.onnx or .gir), optimise it and compile it to "
                 "native code; optionally export the results", _compile_arguments, _run_compile)


# -- graphc export -----------------------------------------------------------------------------

def _export_arguments(p: argparse.ArgumentParser) -> None:
    _model_arguments(p)
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="the bundle directory to write (created if needed)")
    p.add_argument("--llvm-ir", action="store_true",
                   help="also write the optimised LLVM IR (model.ll) for study")
    _instrument_arguments(p)


def _run_export(args) -> int:
    args.export = args.output
    return _run_compile(args)


register_command("export", "compile a model (.onnx or .gir) and write a bundle (model.o, "
                 "model.h, weights.bin, model.gir, manifest.json) that graphc.load or a C "
                 "program runs", _export_arguments, _run_export)


# -- graphc passes / graphc ops ----------------------------------------------------------------

def _run_passes(args) -> int:
    rows = []
    for name, info in registered_passes().items():
        rows.append((name, "", info.description))
        for opt in info.options:
            rows.append(("", f"{opt.name}={format_option_value(opt.default)}", opt.doc))
    print(format_table(["pass", "option=default", "description"], rows))
    return 0


register_command("passes", "list the registered passes and their options",
                 lambda p: None, _run_passes)


def _ops_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="show one op in detail")


def _run_ops(args) -> int:
    if args.name:
        try:
            op = get_op(args.name)
        except GraphcError as e:
            raise UsageError(str(e)) from None
        print(f"{op.name}({', '.join(op.inputs)})  fusion={op.fusion}  purity={op.purity}  "
              f"outputs={op.num_outputs if isinstance(op.num_outputs, int) else 'variable'}")
        if op.doc:
            print(f"  {op.doc}")
        rows = [(name, spec.kind, "required" if spec.required else _show_default(spec.default),
                 spec.doc) for name, spec in op.attrs.items()]
        if rows:
            print(format_table(["attribute", "kind", "default", "meaning"], rows))
        return 0
    rows = [(op.name, ", ".join(op.inputs), ", ".join(op.attrs), op.fusion, op.purity, op.doc)
            for op in sorted(all_ops().values(), key=lambda o: o.name)]
    print(format_table(["op", "inputs", "attributes", "fusion", "purity", "doc"], rows))
    return 0


def _show_default(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


register_command("ops", "list the op registry (or describe one op)", _ops_arguments, _run_ops)


# -- entry point -------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graphc", description="graphc: a static-graph "
                                     "deep-learning compiler")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, add_arguments, run) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(run=run)
    return parser


def _report(prog: str, err: BaseException) -> None:
    sys.stderr.write(f"{prog}: error: {err}\n")
    for note in getattr(err, "__notes__", ()):
        sys.stderr.write(f"  ({note})\n")


def main(argv: Optional[list] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = f"graphc {args.command}"
    try:
        return args.run(args)
    except UsageError as e:
        _report(prog, e)
        return 2
    except GraphcError as e:
        _report(prog, e)
        return 1
    except OSError as e:
        _report(prog, f"{e.filename}: {e.strerror}" if e.filename else e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
