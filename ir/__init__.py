"""graphc's IR: types, the SSA graph, the op registry, the reference interpreter, text format.

`ir` is the bottom layer: it imports nothing from graphc, passes or runtime.
"""
from . import ops as _ops  # noqa: F401  (registers every primitive)
from .attrs import AttrSpec
from .builder import emit, infer_types, make_node
from .dtypes import DType, bool_, dtype, f32, f64, i32, i64
from .errors import (ArgumentError, AttrError, BundleError, CompileError, DataError, DTypeError,
                     GradientError, GraphcError, InterpreterError, ParseError, PassError,
                     ShapeError, TrainingError, UnknownOpError, VerifyError)
from .equality import structural_diff, structural_equal, structural_hash
from .graph import Graph, Node, Value
from .interpreter import run
from .location import FusedLoc, Loc, fuse_locs, user_frame_loc
from .opdef import Cost, OpDef, all_ops, get_op, has_op, register
from .parser import parse
from .serialize import load_gir, save_gir
from .symbolic import Dim, SymDim, as_dim, as_shape, format_dim, format_shape, parse_dim, sym
from .types import TensorType
from .verifier import verify
