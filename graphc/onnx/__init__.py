"""ONNX import, export and an ONNX backend: the optional `graphc[onnx]` extra.

    import graphc.onnx
    graph = graphc.onnx.import_model("model.onnx")     # ONNX -> graphc Graph
    exe = graphc.compile(graph)                        # native code
    proto = graphc.onnx.export_model(graph)            # graphc Graph -> ONNX ModelProto

    from graphc.onnx import backend                    # ONNX's backend interface
    rep = backend.prepare(proto); outputs = rep.run([x])

The importer covers the float32 forms of the common ONNX ops of opsets 13-21 (and the older
and newer versions whose float32 meaning is the same); anything else raises an
UnsupportedOnnxError naming the op, its opset and the node. Importing this package does not
import onnx: the functions below do, with a clear error when the extra is missing.
"""
from __future__ import annotations

from .errors import DataDependentError, OnnxError, UnsupportedOnnxError

__all__ = ["import_model", "export_model", "supported_ops", "OnnxError",
           "UnsupportedOnnxError", "DataDependentError"]


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise OnnxError('ONNX support needs the onnx package: pip install "graphc[onnx]"') \
            from None


def import_model(model, *, frozen: bool = False, constants=None, name=None):
    """ONNX model (path, bytes or ModelProto) -> graphc Graph. See graphc.onnx.importer."""
    _require_onnx()
    from .importer import import_model as _import
    return _import(model, frozen=frozen, constants=constants, name=name)


def export_model(graph, *, opset: int = 17, producer: str = "graphc"):
    """graphc Graph -> onnx.ModelProto. See graphc.onnx.exporter."""
    _require_onnx()
    from .exporter import export_model as _export
    return _export(graph, opset=opset, producer=producer)


def supported_ops() -> dict:
    """ONNX op type -> the op versions (since_version of its schemas) the importer handles."""
    _require_onnx()
    from .context import HANDLERS
    from .importer import import_model as _  # noqa: F401  (registers the handlers)
    return {name: h.versions for name, h in sorted(HANDLERS.items())}
