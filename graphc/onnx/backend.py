"""graphc as an ONNX backend (the `onnx.backend.base` interface).

    from graphc.onnx import backend
    rep = backend.prepare(model)              # import + compile to native code
    outputs = rep.run([x])                    # a tuple (also indexable by output name)
    outputs = backend.run_model(model, [x])

ONNX's own test runner drives it: `onnx.backend.test.BackendTest(backend, __name__)`.

graphc compiles static graphs, so an operand that fixes a shape (Reshape's shape, Slice's
starts, ...) must be known when the model is imported. When a model feeds such an operand
from a graph input, `prepare` defers: each `run` binds those inputs to the values it is given
(import_model(..., constants=...)) and compiles one specialisation per distinct value, cached.

Options (keyword arguments of prepare/run_model, or `GraphcBackend.configured(...)`):
engine="native" (graphc.compile, the default) or "interpreter" (the numpy reference
interpreter, ir.run); opt_level (graphc.compile's level: its pass pipeline and LLVM level,
default 2).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import onnx
from onnx import helper
from onnx.backend.base import Backend, BackendRep, namedtupledict

from ir.interpreter import run as interpret

from ..compiler import compile as compile_graph
from .errors import DataDependentError, OnnxError
from .importer import import_model

ENGINES = ("native", "interpreter")


class GraphcRep(BackendRep):
    """A prepared model: its imported graph(s) compiled and ready to run."""

    def __init__(self, model: onnx.ModelProto, engine: str = "native", opt_level: int = 2):
        if engine not in ENGINES:
            raise OnnxError(f"engine must be one of {ENGINES}, found {engine!r}")
        self.model = model
        self.engine = engine
        self.opt_level = opt_level
        initialisers = {t.name for t in model.graph.initializer}
        self.input_names = [vi.name for vi in model.graph.input if vi.name not in initialisers]
        self.output_names = [vi.name for vi in model.graph.output]
        self.specialise_on: tuple = ()
        self._runners: dict = {}
        try:
            self._runners[()] = self._build({})
        except DataDependentError as e:
            if not e.inputs or not set(e.inputs) <= set(self.input_names):
                raise
            self.specialise_on = tuple(e.inputs)

    @property
    def graph(self):
        """The imported graph (of the first specialisation when there are several)."""
        return next(iter(self._runners.values()))[0] if self._runners else None

    def _build(self, constants: Mapping):
        graph = import_model(self.model, constants=constants)
        if self.engine == "native":
            return graph, compile_graph(graph, opt_level=self.opt_level)
        return graph, None

    def _runner(self, feeds: Mapping):
        key = tuple((n, feeds[n].dtype.str, feeds[n].shape, feeds[n].tobytes())
                    for n in self.specialise_on)
        found = self._runners.get(key)
        if found is not None:
            return found
        names = list(self.specialise_on)
        while True:
            try:
                found = self._build({n: feeds[n] for n in names})
                break
            except DataDependentError as e:
                more = [n for n in e.inputs if n in feeds and n not in names]
                if not more:
                    raise
                names += more
        self.specialise_on = tuple(names)
        key = tuple((n, feeds[n].dtype.str, feeds[n].shape, feeds[n].tobytes()) for n in names)
        self._runners[key] = found
        return found

    def run(self, inputs, **kwargs):
        if isinstance(inputs, Mapping):
            feeds = {k: np.asarray(v) for k, v in inputs.items()}
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            inputs = list(inputs)
            if len(inputs) != len(self.input_names):
                raise OnnxError(f"the model takes {len(self.input_names)} input(s) "
                                f"({', '.join(self.input_names)}), found {len(inputs)}")
            feeds = {n: np.asarray(v) for n, v in zip(self.input_names, inputs)}
        graph, exe = self._runner(feeds)
        bound = set(self.specialise_on)
        data = graph.inputs_with_role("input")
        remaining = [n for n in self.input_names if n not in bound]
        args = {v.name: feeds[n] for v, n in zip(data, remaining)}
        results = exe.run(args) if exe is not None else interpret(graph, args)
        values = [results[n] for n in self.output_names]
        return namedtupledict("Outputs", self.output_names)(*values)


class GraphcBackend(Backend):
    """The ONNX backend interface (class methods, as onnx.backend.base expects)."""

    engine = "native"
    opt_level = 2

    @classmethod
    def configured(cls, **options) -> type:
        """A backend class with other defaults, e.g. configured(engine="interpreter")."""
        unknown = sorted(set(options) - {"engine", "opt_level"})
        if unknown:
            raise OnnxError(f"unknown backend option(s) {', '.join(unknown)}")
        return type("GraphcBackend", (cls,), dict(options))

    @classmethod
    def prepare(cls, model, device: str = "CPU", **kwargs) -> GraphcRep:
        if not cls.supports_device(device):
            raise OnnxError(f"graphc runs on the CPU, not {device!r}")
        if isinstance(model, (bytes, bytearray)):
            model = onnx.load_from_string(bytes(model))
        onnx.checker.check_model(model)
        return GraphcRep(model, engine=kwargs.get("engine", cls.engine),
                         opt_level=kwargs.get("opt_level", cls.opt_level))

    @classmethod
    def run_model(cls, model, inputs, device: str = "CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node, inputs, device: str = "CPU", outputs_info=None, **kwargs):
        """Run one NodeProto on numpy inputs (wrapped in a one-node model)."""
        arrays = [np.asarray(x) for x in inputs]
        graph_inputs = [helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
            for name, a in zip(node.input, arrays) if name]
        graph_outputs = [helper.make_empty_tensor_value_info(name) for name in node.output
                         if name]
        opset = kwargs.pop("opset_version", onnx.defs.onnx_opset_version())
        model = helper.make_model(
            helper.make_graph([node], "run_node", graph_inputs, graph_outputs),
            opset_imports=[helper.make_opsetid("", opset)])
        rep = GraphcRep(model, engine=kwargs.get("engine", cls.engine),
                        opt_level=kwargs.get("opt_level", cls.opt_level))
        return rep.run([a for name, a in zip(node.input, arrays) if name])

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device.split(":")[0].upper() == "CPU"


prepare = GraphcBackend.prepare
run_model = GraphcBackend.run_model
run_node = GraphcBackend.run_node
supports_device = GraphcBackend.supports_device
