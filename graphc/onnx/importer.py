"""ONNX ModelProto -> graphc Graph.

    graph = import_model("model.onnx")              # float initializers become params
    graph = import_model(proto, frozen=True)        # ... or constants
    graph = import_model(proto, constants={"shape": np.array([2, 3])})   # bind inputs

Nodes are imported in order through the front end (graphc.functional), inside the scopes
"onnx/<node name>", so every graphc node has checked types and a loc whose file is the model
path and whose path is "onnx/<node name>/<primitive>". `dim_param` dims become symbolic dims
(one symbol per distinct name, sanitised to an identifier); a dim with neither value nor name
gets a fresh symbol.

Import-time constants (see values.py) are known three ways: shape handlers compute on Consts
themselves (symbolic dims included); any other node whose inputs are all small constants is
built normally, evaluated with the ops' numpy references and replaced by its value; and when
a handler needs a shape operand that was built as graph nodes from params only (a shape
computed from an initializer), those nodes are evaluated on the initial values
(`Importer.evaluate`), leaving every other use of the params trainable. Nodes and params used
only for such shapes are swept at the end.
"""
from __future__ import annotations

import os
import re
from typing import Mapping, Optional

import numpy as np
import onnx
from onnx import defs

from ir import dtypes as dt
from ir.errors import GraphcError
from ir.graph import Graph
from ir.interpreter import resolve_attrs
from ir.location import Loc
from ir.opdef import get_op
from ir.symbolic import SymDim, sym
from ir.types import TensorType

from .. import functional as F
from ..scope import scope
from ..tensor import Tensor, building, constant, emit
from . import ops  # noqa: F401  (registers every op handler)
from .context import HANDLERS, NodeContext
from .errors import OnnxError, UnsupportedOnnxError
from .values import Const, graphc_dtype, numpy_dtype, onnx_type_name

# Nodes whose constant inputs hold at most this many elements are folded at import time.
FOLD_LIMIT = 1 << 16
DEFAULT_DOMAINS = ("", "ai.onnx")


def load_model(model) -> tuple:
    """(ModelProto, path or None) from a path, bytes or a ModelProto."""
    if isinstance(model, onnx.ModelProto):
        return model, None
    if isinstance(model, (bytes, bytearray)):
        return onnx.load_from_string(bytes(model)), None
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.exists(path):
            raise OnnxError(f"ONNX model file {path!r} does not exist")
        try:
            return onnx.load(path), path
        except Exception as e:  # protobuf raises its own DecodeError
            raise OnnxError(f"{path}: not a readable ONNX model ({e})") from None
    raise OnnxError(f"import_model expects a path, bytes or an onnx.ModelProto, found "
                    f"{type(model).__name__}")


def _identifier(text: str, fallback: str) -> str:
    out = re.sub(r"\W", "_", text).strip("_")
    if not out:
        return fallback
    return out if not out[0].isdigit() else f"{fallback}_{out}"


class Importer:
    def __init__(self, model: onnx.ModelProto, path: Optional[str], frozen: bool,
                 constants: Optional[Mapping], name: Optional[str]):
        self.model = model
        self.path = path
        self.frozen = frozen
        self.constants = dict(constants or {})
        self.opset = self._default_opset(model)
        onnx_graph = model.graph
        self.onnx_graph = onnx_graph
        self.graph = Graph(_identifier(name or onnx_graph.name or "", "onnx_model"))
        self.env: dict = {}                 # ONNX value name -> Tensor | Const
        self.producers: dict = {}           # ONNX value name -> producing NodeProto
        self.data_inputs: set = set()
        self.symbols: dict = {}             # dim_param -> symbol name
        self.params: dict = {}              # initializer name -> param Tensor
        self.const_tensors: dict = {}       # id(Const) -> materialised Tensor
        self.folding = False

    # -- driver --------------------------------------------------------------------------------
    def run(self) -> Graph:
        g = self.onnx_graph
        unknown = sorted(set(self.constants) - {v.name for v in g.input})
        if unknown:
            raise OnnxError(f"constants= names {', '.join(unknown)}, which are not inputs of "
                            f"the model (its inputs are {', '.join(v.name for v in g.input)})")
        with building(self.graph):
            for init in g.initializer:
                arr = onnx.numpy_helper.to_array(init)
                param = init.name if (arr.dtype.kind == "f" and not self.frozen) else None
                self.env[init.name] = Const(arr, param=param)
            for sparse in g.sparse_initializer:
                raise UnsupportedOnnxError(f"sparse initializer {sparse.values.name!r} is not "
                                           "supported")
            for vi in g.input:
                if vi.name in self.env:          # an initializer listed as an input (IR < 4)
                    continue
                self.env[vi.name] = self._graph_input(vi)
            for index, node in enumerate(g.node):
                for out in node.output:
                    if out:
                        self.producers[out] = node
                self._import_node(node, index)
            for vi in g.output:
                self._graph_output(vi)
        self._sweep()
        return self.graph

    def _sweep(self) -> None:
        """Drop nodes and params only used to compute shape operands now known as constants
        (pure nodes whose results nothing uses)."""
        g = self.graph
        live = {id(v) for v in g.outputs}
        kept = []
        for node in reversed(g.nodes):
            if get_op(node.op).purity == "pure" and not any(id(v) in live
                                                            for v in node.outputs):
                continue
            kept.append(node)
            live.update(id(v) for v in node.inputs)
        g.nodes = kept[::-1]
        unused = [v for v in g.inputs if v.role == "param" and id(v) not in live]
        for v in unused:
            g.inputs.remove(v)
            g.initializers.pop(v.name, None)
        for k, v in enumerate(g.inputs):
            v.index = k

    @staticmethod
    def _default_opset(model) -> int:
        for imp in model.opset_import:
            if imp.domain in DEFAULT_DOMAINS:
                return imp.version
        raise OnnxError("the model imports no version of the default ONNX domain (opset_import "
                        "has no entry for '' / 'ai.onnx')")

    def node_loc(self, node_name: str) -> Loc:
        return Loc(self.path, None, f"onnx/{node_name}")

    # -- graph inputs and outputs --------------------------------------------------------------
    def _input_type(self, vi, what: str) -> TensorType:
        t = vi.type
        if not t.HasField("tensor_type"):
            raise UnsupportedOnnxError(f"{what} {vi.name!r} is not a tensor (sequence, map and "
                                       "optional types are not supported)")
        tt = t.tensor_type
        dtype = graphc_dtype(tt.elem_type, f"{what} {vi.name!r}")
        if not tt.HasField("shape"):
            raise UnsupportedOnnxError(f"{what} {vi.name!r} has no shape; graphc needs the rank "
                                       "of every input")
        dims = []
        for axis, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            else:
                label = d.dim_param or f"{vi.name}_{axis}"
                if label not in self.symbols:
                    base = _identifier(label, "d")
                    taken = set(self.symbols.values())
                    name, k = base, 1
                    while name in taken:
                        k += 1
                        name = f"{base}_{k}"
                    self.symbols[label] = name
                dims.append(sym(self.symbols[label]))
        return TensorType(tuple(dims), dtype)

    def _graph_input(self, vi):
        if vi.name in self.constants:
            arr = np.asarray(self.constants[vi.name])
            want = numpy_dtype(vi.type.tensor_type.elem_type)
            if arr.dtype != want:
                raise OnnxError(f"constants[{vi.name!r}] has dtype {arr.dtype}, but the model "
                                f"declares {onnx_type_name(vi.type.tensor_type.elem_type)}")
            return Const(arr)
        ttype = self._input_type(vi, "graph input")
        value = self.graph.add_input(self.graph.fresh_name(vi.name), ttype, "input")
        self.graph.reserve_names()
        self.data_inputs.add(vi.name)
        return Tensor(value, self.graph)

    def _graph_output(self, vi) -> None:
        if vi.name not in self.env:
            raise OnnxError(f"graph output {vi.name!r} is not produced by any node or input")
        value = self.env[vi.name]
        t = value if isinstance(value, Tensor) else self.materialize(value)
        tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
        if tt is not None and tt.elem_type:
            want = graphc_dtype(tt.elem_type, f"graph output {vi.name!r}")
            if t.dtype is not want:
                raise OnnxError(f"graph output {vi.name!r}: the model declares {want}, the "
                                f"imported graph computes {t.type} (an importer bug)")
            if tt.HasField("shape"):
                declared = [d.dim_value if d.HasField("dim_value") else None
                            for d in tt.shape.dim]
                found = list(t.shape)
                if len(declared) != len(found) or any(
                        isinstance(f, int) and w is not None and f != w
                        for w, f in zip(declared, found)):
                    raise OnnxError(f"graph output {vi.name!r}: the model declares shape "
                                    f"{declared}, the imported graph computes {t.type}")
        self.graph.add_output(t.value, vi.name)

    # -- values --------------------------------------------------------------------------------
    def value(self, name: str, ctx: NodeContext):
        try:
            return self.env[name]
        except KeyError:
            raise OnnxError(f"{ctx.describe()} uses {name!r}, which no earlier node, input or "
                            "initializer defines (nodes must be in topological order)",
                            ctx.loc) from None

    def data_roots(self, name: str) -> list:
        """The graph data inputs whose values value `name` is computed from (sorted); Shape
        and Size read only an input's (static or symbolic) shape, not its values."""
        roots, seen, stack = set(), set(), [name]
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            if n in self.data_inputs:
                roots.add(n)
            node = self.producers.get(n)
            if node is not None and node.op_type not in ("Shape", "Size"):
                stack.extend(i for i in node.input if i)
        return sorted(roots)

    def evaluate(self, t: Tensor) -> Optional[np.ndarray]:
        """The value of `t` when it depends on no data input (only constants and the initial
        values of params), computed with the ops' references; else None. This is how a shape
        operand computed from a parameter's initializer is known at import time, while every
        other use of that parameter stays trainable."""
        needed, stack, seen = [], [t.value], set()
        while stack:
            v = stack.pop()
            if id(v) in seen:
                continue
            seen.add(id(v))
            if v.producer is None:
                if v.role == "input" or v.name not in self.graph.initializers:
                    return None
                continue
            node = v.producer
            if get_op(node.op).purity != "pure" or not all(
                    isinstance(d, int) for d in v.type.shape):
                return None
            needed.append(node)
            stack.extend(node.inputs)
        values = {id(v): self.graph.initializers[v.name] for v in self.graph.inputs
                  if v.name in self.graph.initializers}
        order = {id(n): k for k, n in enumerate(self.graph.nodes)}
        for node in sorted(set(needed), key=lambda n: order[id(n)]):
            opdef = get_op(node.op)
            attrs = resolve_attrs(opdef, node.attrs, {}, dt.f32)
            try:
                with np.errstate(all="ignore"):
                    result = opdef.reference([values[id(v)] for v in node.inputs], attrs)
            except GraphcError:
                return None
            results = result if isinstance(result, (tuple, list)) else (result,)
            for v, arr in zip(node.outputs, results):
                values[id(v)] = np.asarray(arr)
        return values[id(t.value)]

    def materialize(self, c: Const) -> Tensor:
        """A Const as a Tensor: a parameter, a constant node, or dims computed at runtime."""
        if c.param is not None:
            t = self.params.get(c.param)
            if t is None:
                arr = c.array
                dtype = self._array_dtype(arr, f"initializer {c.param!r}")
                name = self.graph.fresh_name(c.param)
                value = self.graph.add_input(name, TensorType(arr.shape, dtype), "param",
                                             initializer=np.array(arr, dtype.np_dtype))
                self.graph.reserve_names()
                t = self.params[c.param] = Tensor(value, self.graph)
            return t
        if not self.folding:
            cached = self.const_tensors.get(id(c))
            if cached is not None and cached[0] is c:
                return cached[1]
        if c.symbolic:
            t = self._dims_tensor(c)
        else:
            dtype = self._array_dtype(c.array, "a constant")
            t = constant(np.array(c.array, dtype.np_dtype), dtype)
        if not self.folding:
            self.const_tensors[id(c)] = (c, t)
        return t

    @staticmethod
    def _array_dtype(arr: np.ndarray, what: str):
        try:
            return dt.dtype(arr.dtype)
        except GraphcError:
            raise UnsupportedOnnxError(f"{what} has dtype {arr.dtype}; graphc supports float32, "
                                       "float64, int32, int64 and bool") from None

    def _dims_tensor(self, c: Const) -> Tensor:
        """An int tensor holding symbolic dims: one dim_value node per symbolic entry."""
        out_dtype = dt.dtype(c.dtype)
        parts = []
        for d in c.array.reshape(-1):
            if isinstance(d, SymDim):
                parts.append(emit("dim_value", [], {"dim": d, "dtype": out_dtype}))
            else:
                parts.append(constant(np.array(int(d), out_dtype.np_dtype)))
        flat = F.stack(parts) if len(parts) > 1 else F.reshape(parts[0], (1,))
        return F.reshape(flat, c.shape)

    # -- nodes ---------------------------------------------------------------------------------
    def _import_node(self, node, index: int) -> None:
        domain = node.domain
        if domain not in DEFAULT_DOMAINS:
            raise UnsupportedOnnxError(
                f"ONNX node {node.name or node.op_type!r} is op {node.op_type} of domain "
                f"{domain!r}; graphc imports only the default ONNX domain",
                self.node_loc(node.name or f"{node.op_type}_{index}"))
        handler = HANDLERS.get(node.op_type)
        try:
            version = defs.get_schema(node.op_type, self.opset, "").since_version
        except Exception:  # onnx.defs.SchemaError: no such op at this opset
            version = None
        ctx = NodeContext(self, node, version or 0, index)
        if handler is None or version is None:
            ctx.unsupported("graphc's ONNX importer does not support this op "
                            f"(supported: {', '.join(sorted(HANDLERS))})")
        if version not in handler.versions:
            known = ", ".join(str(v) for v in handler.versions)
            ctx.unsupported(f"graphc implements versions {known} of {node.op_type}, and opset "
                            f"{self.opset} uses version {version}")
        outs = self._run_handler(handler, ctx)
        leftover = ctx.unread_attrs()
        if leftover:
            ctx.unsupported(f"attribute(s) {', '.join(leftover)} are not supported")
        for i, name in enumerate(node.output):
            if not name:
                continue
            if i >= len(outs) or outs[i] is None:
                ctx.unsupported(f"output {i} ({name!r}) is not supported")
            self.env[name] = outs[i]

    def _foldable(self, ctx: NodeContext) -> bool:
        total = 0
        for i in range(ctx.n_inputs):
            if not ctx.has(i):
                continue
            v = ctx.value(i)
            if not isinstance(v, Const) or v.param is not None or v.symbolic:
                return False
            total += v.array.size
        return total <= FOLD_LIMIT

    def _run_handler(self, handler, ctx: NodeContext) -> list:
        start = len(self.graph.nodes)
        self.folding = self._foldable(ctx)
        try:
            with scope("onnx"), scope(ctx.name):
                result = handler.fn(ctx)
        except UnsupportedOnnxError:
            raise
        except GraphcError as e:
            raise _renamed(e, f"{ctx.describe()}: {e.message}", ctx.loc) from None
        finally:
            folding, self.folding = self.folding, False
        outs = list(result) if isinstance(result, (list, tuple)) else [result]
        new_nodes = self.graph.nodes[start:]
        if folding and new_nodes:
            folded = _evaluate(new_nodes, outs)
            if folded is not None:
                del self.graph.nodes[start:]
                return folded
        for node in new_nodes:
            node.loc = Loc(self.path, None, node.loc.path if node.loc else f"onnx/{ctx.name}")
        return outs


def _renamed(err: GraphcError, message: str, loc) -> GraphcError:
    """The same kind of error with a new message and location."""
    new = type(err).__new__(type(err))
    new.__dict__.update(err.__dict__)
    new.message, new.loc = message, loc
    Exception.__init__(new, new._render())
    return new


def _evaluate(nodes: list, outs: list) -> Optional[list]:
    """Evaluate freshly built nodes that depend on nothing else; None if they cannot fold."""
    values: dict = {}
    for node in nodes:
        opdef = get_op(node.op)
        if opdef.purity != "pure" or any(id(v) not in values for v in node.inputs):
            return None
        attrs = resolve_attrs(opdef, node.attrs, {}, dt.f32)
        with np.errstate(all="ignore"):
            try:
                result = opdef.reference([values[id(v)] for v in node.inputs], attrs)
            except GraphcError:
                return None          # e.g. an index out of range: leave it to run time
        results = result if isinstance(result, (tuple, list)) else (result,)
        for v, arr in zip(node.outputs, results):
            arr = np.asarray(arr)
            if arr.size > FOLD_LIMIT:
                return None
            values[id(v)] = arr
    folded = []
    for o in outs:
        if isinstance(o, Tensor):
            if id(o.value) not in values:
                return None
            folded.append(Const(values[id(o.value)]))
        else:
            folded.append(o)
    return folded


def import_model(model, *, frozen: bool = False, constants: Optional[Mapping] = None,
                 name: Optional[str] = None) -> Graph:
    """Import an ONNX model (a path, bytes or an onnx.ModelProto) as a graphc Graph.

    frozen: floating initializers become constants instead of trainable params (role
    "param", initialised from the model). constants: values for graph inputs that must be
    known at import time (e.g. a Reshape shape fed as an input); those inputs are removed from
    the graph. name: the graph's name (default: the ONNX graph's name).

    Raises UnsupportedOnnxError naming the op, its opset and the node for anything graphc does
    not implement, and DataDependentError (a subclass) when a shape operand depends on data."""
    proto, path = load_model(model)
    return Importer(proto, path, frozen, constants, name).run()
