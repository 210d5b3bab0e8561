"""The `.gir` text format, printing side. `ir.parser.parse` reads it back.

    graph @mlp(%x: f32[N,784], %w1: f32[784,400] param) {
      %0 = matmul(%x, %w1) {transpose_a=false, transpose_b=false} : f32[N,400] loc("mlp.py":12 "net/dense1/matmul")
      %1 = relu(%0) : f32[N,400]
      return %1 as "logits"
    }

Constants with more than `inline_limit` elements print as references (`@name sha256:<12 hex>`)
and their arrays go into a sidecar weights table (a dict name -> array; saved next to the text
as .npz). So dumps stay readable and `parse(text, weights)` rebuilds the graph exactly.
Float literals print the shortest text that reads back to the same bits (nan, inf, -0.0 too;
a NaN other than the canonical quiet one prints its bits: nan(0xffc00000)).
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Optional

import numpy as np

from .graph import Graph, Node, Value
from .location import FusedLoc, Loc
from .opdef import get_op
from .symbolic import format_dim

FORMAT_VERSION = 1
DEFAULT_INLINE_LIMIT = 16
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.]+\Z")


def value_ref(v: Value) -> str:
    return "%" + (v.name if _PLAIN_NAME.match(v.name) else json.dumps(v.name))


def quote(s: str) -> str:
    return json.dumps(s)


def symbol_ref(name: str) -> str:
    """`@name` for a graph or weight name; quoted when it is not a plain identifier."""
    return "@" + (name if _PLAIN_NAME.match(name) else quote(name))


def format_scalar(x, dtype: np.dtype) -> str:
    if dtype == np.bool_:
        return "true" if x else "false"
    if dtype.kind in "iu":
        return str(int(x))
    x = dtype.type(x)
    if np.isnan(x):
        return format_nan(x)
    if np.isinf(x):
        return "inf" if x > 0 else "-inf"
    text = np.format_float_positional(x, unique=True, trim="-") if abs(x) < 1e16 and \
        (x == 0 or abs(x) >= 1e-5) else np.format_float_scientific(x, unique=True, trim="-")
    if not any(c in text for c in ".en"):
        text += ".0"
    return text


def format_nan(x) -> str:
    """'nan' for the canonical quiet NaN; other NaNs (negative, with a payload: e.g. what x86
    computes for 0*inf) keep their exact bits as nan(0x7fc00001)."""
    arr = np.array(x)
    bits = int(arr.view(f"u{arr.itemsize}"))
    canonical = int(np.array(np.nan, arr.dtype).view(f"u{arr.itemsize}"))
    return "nan" if bits == canonical else f"nan(0x{bits:0{2 * arr.itemsize}x})"


def array_hash(arr: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(str(arr.dtype).encode())
    h.update(str(arr.shape).encode())
    h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def format_type_of_array(arr: np.ndarray) -> str:
    from .dtypes import dtype as to_dtype
    return f"{to_dtype(arr.dtype).name}[{','.join(str(d) for d in arr.shape)}]"


class Printer:
    def __init__(self, weights: Optional[dict] = None, inline_limit: int = DEFAULT_INLINE_LIMIT,
                 show_locs: bool = True):
        self.weights = weights if weights is not None else {}
        self.inline_limit = inline_limit
        self.show_locs = show_locs
        self._names_by_hash: dict = {}

    # -- attributes ---------------------------------------------------------------------------
    def tensor(self, arr: np.ndarray, hint: str) -> str:
        if arr.size <= self.inline_limit:
            flat = ", ".join(format_scalar(x, arr.dtype) for x in arr.reshape(-1))
            return f"dense<{format_type_of_array(arr)}>[{flat}]"
        digest = array_hash(arr)
        name = self._names_by_hash.get(digest)
        if name is None:
            name = hint
            n = 0
            while name in self.weights and array_hash(self.weights[name]) != digest:
                n += 1
                name = f"{hint}_{n}"
            self.weights[name] = arr
            self._names_by_hash[digest] = name
        return f"{symbol_ref(name)} sha256:{digest[:12]}"

    def attr(self, kind: str, value, hint: str, indent: str) -> str:
        if kind == "bool":
            return "true" if value else "false"
        if kind == "int":
            return str(value)
        if kind == "float":
            return format_scalar(value, np.dtype(np.float64))
        if kind == "str":
            return quote(value)
        if kind == "ints":
            return "[" + ", ".join(str(v) for v in value) + "]"
        if kind == "floats":
            return "[" + ", ".join(format_scalar(v, np.dtype(np.float64)) for v in value) + "]"
        if kind == "dim":
            return format_dim(value)
        if kind == "dims":
            return "[" + ", ".join(format_dim(d) for d in value) + "]"
        if kind == "dtype":
            return value.name
        if kind == "tensor":
            return self.tensor(value, hint)
        if kind == "graph":
            # a nested graph keeps its own initializers, printed right after its body
            text = self.graph(value, indent + "  ").lstrip()
            inits = self.initializers(value)
            return text + "".join(f"\n{indent}  {line}" for line in inits)
        raise AssertionError(kind)

    # -- nodes and graphs ---------------------------------------------------------------------
    def loc(self, loc) -> str:
        if not self.show_locs or not loc:
            return ""
        if isinstance(loc, FusedLoc):
            return " loc(fused[" + ", ".join(self._one_loc(p) for p in loc.parts) + "])"
        return f" loc({self._one_loc(loc)})"

    @staticmethod
    def _one_loc(loc: Loc) -> str:
        parts = []
        if loc.file is not None:
            # ':?' marks an unknown line, so a lone string always means a layer path
            parts.append(quote(loc.file) + (f":{loc.line}" if loc.line is not None else ":?"))
        if loc.path:
            parts.append(quote(loc.path))
        return " ".join(parts)

    def node(self, node: Node, indent: str) -> str:
        opdef = get_op(node.op)
        outs = ", ".join(value_ref(v) for v in node.outputs)
        ins = ", ".join(value_ref(v) for v in node.inputs)
        attrs = ""
        if node.attrs:
            items = []
            # a large array is named after the value it defines: @c_5 for %5
            hint = "c_" + re.sub(r"[^A-Za-z0-9_]", "_", node.outputs[0].name)
            for name, spec in opdef.attrs.items():
                if name in node.attrs:
                    text = self.attr(spec.kind, node.attrs[name], hint, indent)
                    items.append(f"{name}={text}")
            attrs = " {" + ", ".join(items) + "}"
        types = ", ".join(str(v.type) for v in node.outputs)
        return f"{indent}{outs} = {node.op}({ins}){attrs} : {types}{self.loc(node.loc)}"

    def graph(self, g: Graph, indent: str = "") -> str:
        params = []
        for v in g.inputs:
            role = "" if v.role in (None, "input") else f" {v.role}"
            params.append(f"{value_ref(v)}: {v.type}{role}")
        lines = [f"{indent}graph {symbol_ref(g.name)}({', '.join(params)}) {{"]
        for node in g.nodes:
            lines.append(self.node(node, indent + "  "))
        rets = []
        for v, name in zip(g.outputs, g.output_names):
            text = f"{value_ref(v)} as {quote(name)}"
            if name in g.aliases:
                text += f" updates {value_ref(Value(g.aliases[name], None))}"
            rets.append(text)
        lines.append(f"{indent}  return {', '.join(rets)}")
        lines.append(f"{indent}}}")
        return "\n".join(lines)

    def initializers(self, g: Graph) -> list:
        lines = []
        for name, arr in g.initializers.items():
            ref = self.tensor(np.asarray(arr), f"init_{name}")
            lines.append(f"init {value_ref(Value(name, None))} = {ref}")
        return lines


def dump(g: Graph, inline_limit: int = DEFAULT_INLINE_LIMIT, show_locs: bool = True,
         include_initializers: bool = True):
    """(text, weights): the IR text and the sidecar table of the large arrays it references."""
    printer = Printer({}, inline_limit, show_locs)
    text = printer.graph(g)
    if include_initializers:
        inits = printer.initializers(g)
        if inits:
            text += "\n" + "\n".join(inits)
    return text + "\n", printer.weights


def print_graph(g: Graph, show_locs: bool = True, inline_limit: int = DEFAULT_INLINE_LIMIT) -> str:
    """The readable text of `g` (large arrays shown as hashed references)."""
    return dump(g, inline_limit, show_locs)[0]
