"""graphc Graph -> ONNX ModelProto.

    proto = export_model(graph)            # opset 17 by default
    onnx.checker.check_model(proto, full_check=True)

Graph inputs become ONNX inputs (symbolic dims as dim_param), params and state become
initializers holding graph.initializers (ONNX inputs when they have no initial value),
outputs keep their names. Each primitive maps to one
or a few ONNX ops (export_ops.py); fused nodes are inlined. Symbolic dims that an op needs as
a value (a reshape to (N, 784), a broadcast to N rows, dim_value) are computed in the model
from Shape(input) slices, so the exported model serves every batch size like the graph did.

Export is for inference graphs: ops with no ONNX equivalent that computes the same numbers
(random_uniform's counter-based RNG, pooling gradients) raise UnsupportedOnnxError naming
the node. Each ONNX node is named after the graphc node's layer path, with its source line in
doc_string.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ir.graph import Graph, Value
from ir.location import FusedLoc
from ir.symbolic import SymDim, format_dim, substitute

from .errors import OnnxError, UnsupportedOnnxError
from .values import GRAPHC_TO_ONNX


class Exporter:
    def __init__(self, graph: Graph, opset: int, producer: str):
        graph = getattr(graph, "graph", graph)       # a @graphc.function exposes .graph
        if not isinstance(graph, Graph):
            raise OnnxError(f"export_model expects an ir.Graph or a @graphc.function, found "
                            f"{type(graph).__name__}")
        if opset < 13:
            raise OnnxError(f"graphc exports opset 13 or newer, found {opset}")
        self.graph = graph
        self.opset = opset
        self.producer = producer
        self.nodes: list = []
        self.initializers: list = []
        self.names: dict = {}                  # id(Value) -> ONNX name
        self.used: set = set()
        self.const_cache: dict = {}
        self.dim_cache: dict = {}
        self.symbol_source = self._symbol_sources()
        self.current = None                    # the graphc node being exported (for errors)
        self.binding: dict = {}                # fused-body symbol -> outer dim

    # -- naming --------------------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        name, k = hint, 1
        while name in self.used:
            k += 1
            name = f"{hint}_{k}"
        self.used.add(name)
        return name

    def name_of(self, v: Value) -> str:
        return self.names[id(v)]

    # -- building blocks -----------------------------------------------------------------------
    def add(self, op_type: str, inputs, n_outputs: int = 1, outputs=None, **attrs) -> list:
        """Append one ONNX node; returns its output names."""
        outs = list(outputs) if outputs is not None else \
            [self.fresh(f"_{op_type.lower()}") for _ in range(n_outputs)]
        node = self.current
        path = None
        if node is not None:
            loc = node.loc
            first = loc.parts[0] if isinstance(loc, FusedLoc) and loc.parts else loc
            path = getattr(first, "path", None)
        name = self.fresh(f"{path or (node.op if node is not None else op_type)}:{op_type}")
        n = helper.make_node(op_type, list(inputs), outs, name=name,
                             **{k: v for k, v in attrs.items() if v is not None})
        if node is not None and node.loc:
            n.doc_string = node.loc.describe()
        self.nodes.append(n)
        return outs

    def const(self, arr: np.ndarray, hint: str = "_const") -> str:
        """An initializer holding `arr` (small ones shared)."""
        arr = np.asarray(arr)
        key = (arr.dtype.str, arr.shape, arr.tobytes()) if arr.size <= 64 else None
        if key is not None and key in self.const_cache:
            return self.const_cache[key]
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(arr, name))
        if key is not None:
            self.const_cache[key] = name
        return name

    def ints(self, values) -> str:
        return self.const(np.array(list(values), np.int64), "_ints")

    def unsupported(self, message: str):
        node = self.current
        where = f"node %{node.outputs[0].name} ({node.op})" if node is not None else "the graph"
        raise UnsupportedOnnxError(f"cannot export {where} to ONNX: {message}",
                                   node.loc if node is not None else None)

    # -- dims as values ------------------------------------------------------------------------
    def _symbol_sources(self) -> dict:
        """symbol -> (ONNX input name, axis) of an input dim that is exactly that symbol."""
        out = {}
        for v in self.graph.inputs:
            for axis, d in enumerate(v.type.shape):
                if isinstance(d, SymDim) and len(d.terms) == 1:
                    (mono, coeff), = d.terms
                    if coeff == 1 and len(mono) == 1 and mono[0] not in out:
                        out[mono[0]] = (v.name, axis)
        return out

    def outer(self, d):
        """A dim of the node being exported in terms of the outer graph's symbols."""
        return substitute(d, self.binding) if self.binding else d

    def dim_1d(self, d) -> str:
        """A 1-D int64 tensor [d] (computed from input shapes when d is symbolic)."""
        d = self.outer(d)
        if isinstance(d, int):
            return self.ints([d])
        key = ("dim", d)
        if key in self.dim_cache:
            return self.dim_cache[key]
        total = None
        for mono, coeff in d.terms:
            term = self.ints([coeff]) if (coeff != 1 or not mono) else None
            for s in mono:
                src = self.symbol_source.get(s)
                if src is None:
                    self.unsupported(f"the symbolic dim {s} is not a dim of any graph input, "
                                     "so the exported model could not compute it")
                piece = self.add("Shape", [src[0]], start=src[1], end=src[1] + 1)[0]
                term = piece if term is None else self.add("Mul", [term, piece])[0]
            total = term if total is None else self.add("Add", [total, term])[0]
        self.dim_cache[key] = total
        return total

    def shape_tensor(self, dims) -> str:
        dims = [self.outer(d) for d in dims]
        if all(isinstance(d, int) for d in dims):
            return self.ints(dims)
        key = ("shape", tuple(dims))
        if key not in self.dim_cache:
            parts = [self.dim_1d(d) for d in dims]
            self.dim_cache[key] = self.add("Concat", parts, axis=0)[0]
        return self.dim_cache[key]

    def dim_scalar(self, d) -> str:
        """A 0-d int64 tensor holding dim d."""
        d = self.outer(d)
        if isinstance(d, int):
            return self.const(np.array(d, np.int64), "_dim")
        return self.add("Squeeze", [self.dim_1d(d), self.ints([0])])[0]

    # -- the graph -----------------------------------------------------------------------------
    def run(self) -> onnx.ModelProto:
        from .export_ops import export_node
        g = self.graph
        input_names = {v.name for v in g.inputs}
        returned = {}
        for name, v in zip(g.output_names, g.outputs):
            if v.producer is not None and id(v) not in returned and name not in input_names:
                returned[id(v)] = name
        self.used.update(g.output_names)
        inputs = []
        for v in g.inputs:
            self.used.add(v.name)
            self.names[id(v)] = v.name
            init = g.initializers.get(v.name)
            if v.role == "input" or init is None:    # a param without a value is fed too
                inputs.append(value_info(v.name, v.type))
                continue
            self.initializers.append(numpy_helper.from_array(
                np.asarray(init, v.type.dtype.np_dtype), v.name))
        for node in g.nodes:
            for v in node.outputs:
                self.names[id(v)] = returned.get(id(v)) or self.fresh(v.name)
            self.current = node
            export_node(self, node)
        self.current = None
        outputs = []
        for name, v in zip(g.output_names, g.outputs):
            if self.names[id(v)] != name:
                self.add("Identity", [self.names[id(v)]], outputs=[name])
            outputs.append(value_info(name, v.type))
        graph = helper.make_graph(self.nodes, g.name, inputs, outputs, self.initializers)
        opsets = [helper.make_opsetid("", self.opset)]
        model = helper.make_model(graph, opset_imports=opsets, producer_name=self.producer,
                                  ir_version=helper.find_min_ir_version_for(opsets))
        return model

    def inline(self, body: Graph, operands: list, results: list) -> None:
        """Export a fused node's body in place: its inputs are `operands` (ONNX names) and its
        outputs become `results` (ONNX names)."""
        from .export_ops import export_node
        from ir.ops.fused import _instance_of
        outer_node, saved = self.current, self.binding
        binding: dict = {}
        for v, t in zip(body.inputs, [w.type for w in outer_node.inputs]):
            _instance_of(t, v.type, binding)
        self.binding = binding
        for v, name in zip(body.inputs, operands):
            self.names[id(v)] = name
        wanted = {id(v): name for v, name in zip(body.outputs, results)}
        for node in body.nodes:
            for v in node.outputs:
                self.names[id(v)] = wanted.pop(id(v), None) or self.fresh(f"_{v.name}")
            self.current = node
            export_node(self, node)
        for v, name in zip(body.outputs, results):      # outputs that are body inputs
            if self.names[id(v)] != name:
                self.add("Identity", [self.names[id(v)]], outputs=[name])
        self.current, self.binding = outer_node, saved


def value_info(name: str, ttype) -> onnx.ValueInfoProto:
    dims = [d if isinstance(d, int) else format_dim(d) for d in ttype.shape]
    return helper.make_tensor_value_info(name, GRAPHC_TO_ONNX[ttype.dtype], dims)


def onnx_dtype(dtype) -> int:
    return GRAPHC_TO_ONNX[dtype]


def export_model(graph: Graph, *, opset: int = 17, producer: str = "graphc",
                 check: bool = True) -> onnx.ModelProto:
    """Export `graph` as an ONNX model (see the module docstring)."""
    exporter = Exporter(graph, opset, producer)
    graph = exporter.graph
    model = exporter.run()
    if check:
        try:
            onnx.checker.check_model(model, full_check=True)
        except Exception as e:   # onnx.checker.ValidationError, shape inference errors
            raise OnnxError(f"the exported model of graph {graph.name!r} fails ONNX's checker "
                            f"(an exporter bug): {e}") from None
    return model

