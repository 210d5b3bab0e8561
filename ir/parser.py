"""The `.gir` text format, reading side: `parse(text, weights)` rebuilds what `ir.printer` prints.

Grammar (whitespace and newlines are free; `#` starts a comment that runs to the end of line):

    file     := graph init*
    graph    := 'graph' SYMBOL '(' [param (',' param)*] ')' '{' node* 'return' [ret (',' ret)*] '}'
    param    := VALUE ':' type ['input' | 'param' | 'state']
    node     := VALUE (',' VALUE)* '=' OP '(' [VALUE (',' VALUE)*] ')' ['{' attrs '}']
                ':' type (',' type)* [loc]
    ret      := VALUE 'as' STRING ['updates' VALUE]
    init     := 'init' VALUE '=' tensor
    type     := DTYPE '[' [dim (',' dim)*] ']'              f32[N,784], i64[]
    dim      := ['-'] term (('+' | '-') term)*               N, 784*N, N+M, 2*N-1
    tensor   := 'dense' '<' type '>' '[' scalars ']'  |  SYMBOL 'sha256:'HEX
    loc      := 'loc' '(' (one | 'fused' '[' one (',' one)* ']') ')'
    one      := STRING ':' (INT | '?') [STRING]  |  STRING        file:line path | path
    VALUE    := '%' name | '%' STRING;   SYMBOL := '@' name | '@' STRING

Attribute values are read according to the op's schema (the AttrSpec kind of each attribute),
so `[1, 2]` is ints for `perm` and dims for `shape`. A graph-kind attribute holds a nested
`graph @g(...) {...}` followed by its own `init` lines. Nodes are made through `ir.builder`, so
attributes are checked and types inferred; a declared result type must equal the inferred one.

Every error carries `file:line:col`, the source line and a caret under the offending token.
"""
from __future__ import annotations

import json
import struct
from typing import Mapping, Optional

import numpy as np

from . import dtypes as _dt
from .builder import make_node
from .errors import GraphcError, ParseError
from .graph import INPUT_ROLES, Graph, Value
from .lexer import (AttrParseError, DTypeParseError, ShapeParseError, Token, did_you_mean,
                    error_at, text_error_class, tokenize)
from .location import UNKNOWN, FusedLoc, Loc
from .opdef import get_op, has_op
from .printer import array_hash
from .symbolic import dim_add, dim_mul, sym
from .types import TensorType


class NanBits(int):
    """The raw bits of a 32-bit NaN literal `nan(0x...)` (kept exact, not via a Python float)."""


class Parser:
    def __init__(self, text: str, weights: Optional[Mapping] = None, filename: str = "<string>"):
        self.text = text
        self.filename = filename
        self.weights = weights
        self.tokens = tokenize(text, filename)
        self.i = 0

    # -- token helpers ------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, k: int = 1) -> Token:
        return self.tokens[min(self.i + k, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "EOF":
            self.i += 1
        return tok

    def error(self, message: str, tok: Optional[Token] = None, cls=ParseError):
        return error_at(cls, self.text, self.filename, tok or self.tok, message)

    def found(self, tok: Optional[Token] = None) -> str:
        tok = tok or self.tok
        if tok.kind == "EOF":
            return "the end of the text"
        prefix = {"VALUE": "%", "SYMBOL": "@"}.get(tok.kind, "")
        return f"'{prefix}{tok.text}'" if tok.kind != "STRING" else json.dumps(tok.text)

    def at(self, text: str) -> bool:
        return self.tok.kind in ("PUNCT", "IDENT") and self.tok.text == text

    def accept(self, text: str) -> bool:
        if self.at(text):
            self.advance()
            return True
        return False

    def expect(self, text: str, what: str = "") -> Token:
        if not self.at(text):
            raise self.error(f"expected '{text}'{' ' + what if what else ''}, "
                             f"found {self.found()}")
        return self.advance()

    def expect_kind(self, kind: str, what: str) -> Token:
        if self.tok.kind != kind:
            raise self.error(f"expected {what}, found {self.found()}")
        return self.advance()

    # -- file ---------------------------------------------------------------------------------
    def parse_file(self) -> Graph:
        if not self.at("graph"):
            raise self.error(f"expected 'graph' to start the file, found {self.found()}")
        g = self.parse_graph_with_inits()
        if self.tok.kind != "EOF":
            raise self.error(f"expected 'init' or the end of the text after the graph, "
                             f"found {self.found()}")
        return g

    def parse_graph_with_inits(self) -> Graph:
        g, scope = self.parse_graph()
        while self.at("init"):
            self.parse_init(g, scope)
        return g

    def parse_graph(self):
        self.expect("graph")
        name = self.expect_kind("SYMBOL", "a graph name like @main").text
        g = Graph(name)
        scope: dict = {}
        self.expect("(", "to open the parameter list")
        if not self.at(")"):
            while True:
                self.parse_param(g, scope)
                if not self.accept(","):
                    break
        self.expect(")", "to close the parameter list")
        self.expect("{", "to open the graph body")
        while not self.at("return"):
            if self.tok.kind != "VALUE":
                raise self.error(f"expected a node ('%name = op(...)') or 'return', "
                                 f"found {self.found()}")
            self.parse_node(g, scope)
        self.expect("return")
        if not self.at("}"):
            while True:
                self.parse_return(g, scope)
                if not self.accept(","):
                    break
        self.expect("}", "to close the graph body")
        g.reserve_names()
        return g, scope

    def define(self, scope: dict, tok: Token, value: Value) -> None:
        if tok.text in scope:
            raise self.error(f"value %{tok.text} is defined twice (SSA values are defined once)",
                             tok)
        scope[tok.text] = value

    def use(self, scope: dict, tok: Token) -> Value:
        if tok.kind != "VALUE":
            raise self.error(f"expected a value like %x, found {self.found(tok)}", tok)
        v = scope.get(tok.text)
        if v is None:
            raise self.error(f"undefined value %{tok.text}"
                             f"{did_you_mean(tok.text, scope)}", tok)
        return v

    def parse_param(self, g: Graph, scope: dict) -> None:
        tok = self.expect_kind("VALUE", "a parameter like %x")
        self.expect(":", "between the parameter and its type")
        t = self.parse_type()
        role = "input"
        if self.tok.kind == "IDENT" and not self.at(","):
            role_tok = self.advance()
            if role_tok.text not in INPUT_ROLES:
                raise self.error(f"unknown input role '{role_tok.text}'; expected one of "
                                 f"{', '.join(INPUT_ROLES)}", role_tok)
            role = role_tok.text
        if tok.text in scope:
            raise self.error(f"parameter %{tok.text} is declared twice", tok)
        self.define(scope, tok, g.add_input(tok.text, t, role))

    def parse_return(self, g: Graph, scope: dict) -> None:
        v = self.use(scope, self.advance())
        self.expect("as", "and an output name")
        name_tok = self.expect_kind("STRING", 'an output name in quotes, like "logits"')
        if name_tok.text in g.output_names:
            raise self.error(f"output name {json.dumps(name_tok.text)} is used twice", name_tok)
        updates = None
        if self.accept("updates"):
            target_tok = self.expect_kind("VALUE", "the input this output updates, like %w")
            target = self.use(scope, target_tok)
            if not target.is_graph_input:
                raise self.error(f"'updates' must name a graph input (a param or state), but "
                                 f"%{target.name} is a node result", target_tok)
            updates = target.name
        g.add_output(v, name_tok.text, updates)

    def parse_init(self, g: Graph, scope: dict) -> None:
        self.expect("init")
        tok = self.expect_kind("VALUE", "the input to initialise, like %w")
        v = self.use(scope, tok)
        if not v.is_graph_input:
            raise self.error(f"'init' must name a graph input, but %{v.name} is a node result",
                             tok)
        if v.name in g.initializers:
            raise self.error(f"%{v.name} is initialised twice", tok)
        self.expect("=")
        g.initializers[v.name] = self.parse_tensor()

    # -- nodes --------------------------------------------------------------------------------
    def parse_node(self, g: Graph, scope: dict) -> None:
        out_toks = [self.advance()]
        while self.accept(","):
            out_toks.append(self.expect_kind("VALUE", "another result name"))
        for k, t in enumerate(out_toks):
            if t.text in scope or any(t.text == o.text for o in out_toks[:k]):
                raise self.error(f"value %{t.text} is defined twice (SSA values are defined "
                                 f"once)", t)
        self.expect("=", "after the result name(s)")
        op_tok = self.expect_kind("IDENT", "an op name")
        if not has_op(op_tok.text):
            try:
                get_op(op_tok.text)
            except GraphcError as e:
                raise self.error(e.message, op_tok, text_error_class(e)) from None
        opdef = get_op(op_tok.text)
        self.expect("(", f"to open the operands of {op_tok.text}")
        operands = []
        if not self.at(")"):
            while True:
                operands.append(self.use(scope, self.advance()))
                if not self.accept(","):
                    break
        self.expect(")", f"to close the operands of {op_tok.text}")
        attrs = self.parse_attrs(opdef) if self.at("{") else {}
        self.expect(":", "and the result type(s)")
        type_toks = [self.tok]
        declared = [self.parse_type()]
        while self.accept(","):
            type_toks.append(self.tok)
            declared.append(self.parse_type())
        loc = self.parse_loc() if self.at("loc") else UNKNOWN
        want = opdef.result_count(attrs)
        if len(out_toks) != want:
            raise self.error(f"op {opdef.name} has {want} result(s), but "
                             f"{len(out_toks)} name(s) are given", out_toks[0])
        if len(declared) != len(out_toks):
            raise self.error(f"{len(out_toks)} result(s) but {len(declared)} type(s)",
                             type_toks[0])
        try:
            node = make_node(g, opdef.name, operands, attrs, loc,
                             names=[t.text for t in out_toks])
        except GraphcError as e:
            raise self.error(e.message, op_tok, text_error_class(e)) from None
        for out, want, tok in zip(node.outputs, declared, type_toks):
            if out.type != want:
                raise self.error(f"declared type {want} of %{out.name} does not match the type "
                                 f"{opdef.name} infers from its operands and attributes: "
                                 f"{out.type}", tok, ShapeParseError)
        for tok, out in zip(out_toks, node.outputs):
            scope[tok.text] = out

    def parse_attrs(self, opdef) -> dict:
        self.expect("{")
        attrs: dict = {}
        if not self.at("}"):
            while True:
                name_tok = self.expect_kind("IDENT", "an attribute name")
                spec = opdef.attrs.get(name_tok.text)
                if spec is None:
                    takes = ", ".join(opdef.attrs) or "no attributes"
                    raise self.error(f"op {opdef.name} has no attribute '{name_tok.text}'"
                                     f"{did_you_mean(name_tok.text, opdef.attrs)} "
                                     f"(it takes {takes})", name_tok, AttrParseError)
                if name_tok.text in attrs:
                    raise self.error(f"attribute '{name_tok.text}' is given twice", name_tok,
                                     AttrParseError)
                self.expect("=", f"after attribute name '{name_tok.text}'")
                attrs[name_tok.text] = self.parse_attr_value(spec.kind, opdef.name,
                                                             name_tok.text)
                if not self.accept(","):
                    break
        self.expect("}", "to close the attributes")
        return attrs

    def parse_attr_value(self, kind: str, op: str, name: str):
        start = self.tok
        what = f"attribute '{name}' of {op}"
        if kind == "bool":
            return self.parse_bool(what)
        if kind == "int":
            return self.parse_int(what)
        if kind == "float":
            return self.parse_float(what)
        if kind == "str":
            return self.expect_kind("STRING", f"a quoted string for {what}").text
        if kind in ("ints", "floats", "dims"):
            item = {"ints": self.parse_int, "floats": self.parse_float,
                    "dims": self.parse_dim}[kind]
            return tuple(self.parse_list(lambda: item(what), what))
        if kind == "dim":
            return self.parse_dim(what)
        if kind == "dtype":
            return self.parse_dtype(what)
        if kind == "tensor":
            return self.parse_tensor()
        if kind == "graph":
            if not self.at("graph"):
                raise self.error(f"expected a nested 'graph @name(...) {{...}}' for {what}, "
                                 f"found {self.found()}", start)
            return self.parse_graph_with_inits()
        raise AssertionError(kind)

    # -- scalars and lists --------------------------------------------------------------------
    def parse_list(self, item, what: str) -> list:
        self.expect("[", f"to open the list for {what}")
        out = []
        if not self.at("]"):
            while True:
                out.append(item())
                if not self.accept(","):
                    break
        self.expect("]", f"to close the list for {what}")
        return out

    def parse_bool(self, what: str) -> bool:
        if self.at("true") or self.at("false"):
            return self.advance().text == "true"
        raise self.error(f"expected true or false for {what}, found {self.found()}")

    def parse_int(self, what: str) -> int:
        neg = self.accept("-")
        tok = self.tok
        if tok.kind != "NUMBER" or not tok.text.isdigit():
            raise self.error(f"expected an integer for {what}, found {self.found()}")
        self.advance()
        return -int(tok.text) if neg else int(tok.text)

    def parse_float(self, what: str, width: int = 64):
        """A float (or, for `nan(0x...)` with width 32, its raw bits as a NanBits)."""
        neg = self.accept("-")
        tok = self.tok
        if tok.kind == "NUMBER" and not tok.text.startswith("0x"):
            value = float(tok.text)
        elif tok.kind == "IDENT" and tok.text in ("nan", "inf"):
            value = float(tok.text)
            if tok.text == "nan" and self.peek().text == "(" and self.peek().kind == "PUNCT":
                self.advance()
                bits = self.parse_nan_bits(width)
                return bits if width == 32 else struct.unpack("<d", struct.pack("<Q", bits))[0]
        else:
            raise self.error(f"expected a number (or nan, inf) for {what}, found {self.found()}")
        self.advance()
        return -value if neg else value

    def parse_nan_bits(self, width: int) -> "NanBits":
        self.expect("(")
        tok = self.tok
        if tok.kind != "NUMBER" or not tok.text.startswith("0x"):
            raise self.error(f"expected the bits of a NaN in hex, like nan(0x7fc00001), found "
                             f"{self.found()}")
        bits = int(tok.text, 16)
        exponent = (0xFF << 23) if width == 32 else (0x7FF << 52)
        mantissa = (1 << (23 if width == 32 else 52)) - 1
        if bits >> width or (bits & exponent) != exponent or not bits & mantissa:
            raise self.error(f"{tok.text} is not the bit pattern of a {width}-bit NaN", tok)
        self.advance()
        self.expect(")", "to close nan(...)")
        return NanBits(bits)

    def parse_dtype(self, what: str):
        tok = self.expect_kind("IDENT", f"a dtype (f32, f64, i32, i64, bool) for {what}")
        if tok.text not in _DTYPES:
            raise self.error(f"unknown dtype '{tok.text}'{did_you_mean(tok.text, _DTYPES)}; "
                             f"expected one of {', '.join(_DTYPES)}", tok,
                             DTypeParseError)
        return _DTYPES[tok.text]

    # -- dims and types -----------------------------------------------------------------------
    def parse_dim(self, what: str = "a dim"):
        """A sum of products of ints and symbols: N, 784*N, N+M, 2*N-1."""
        total, sign = 0, 1
        if self.accept("-"):
            sign = -1
        while True:
            term = self.parse_dim_factor(what)
            while self.accept("*"):
                term = dim_mul(term, self.parse_dim_factor(what))
            total = dim_add(total, dim_mul(term, sign))
            if self.accept("+"):
                sign = 1
            elif self.accept("-"):
                sign = -1
            else:
                return total

    def parse_dim_factor(self, what: str):
        tok = self.tok
        if tok.kind == "NUMBER" and tok.text.isdigit():
            self.advance()
            return int(tok.text)
        if tok.kind == "IDENT":
            self.advance()
            return sym(tok.text)
        raise self.error(f"expected a dim (an integer or a symbol like N) in {what}, "
                         f"found {self.found()}")

    def parse_type(self) -> TensorType:
        start = self.tok
        dt = self.parse_dtype("a tensor type")
        self.expect("[", f"after dtype {dt} (a type looks like f32[N,784])")
        dims = []
        if not self.at("]"):
            while True:
                dim_tok = self.tok
                d = self.parse_dim("a tensor type")
                if isinstance(d, int) and d < 0:
                    raise self.error(f"a dim must be non-negative, found {d}", dim_tok)
                dims.append(d)
                if not self.accept(","):
                    break
        self.expect("]", "to close the shape")
        try:
            return TensorType(tuple(dims), dt)
        except GraphcError as e:
            raise self.error(e.message, start, text_error_class(e)) from None

    # -- tensors ------------------------------------------------------------------------------
    def parse_tensor(self) -> np.ndarray:
        tok = self.tok
        if tok.kind == "SYMBOL":
            return self.parse_weight_ref()
        if not self.at("dense"):
            raise self.error(f"expected a tensor ('dense<f32[2]>[1.0, 2.0]' or a weight "
                             f"reference '@name sha256:...'), found {self.found()}")
        self.advance()
        self.expect("<", "after 'dense'")
        type_tok = self.tok
        t = self.parse_type()
        self.expect(">", "to close the tensor type")
        if not t.is_static:
            raise self.error(f"a literal tensor needs a static shape, found {t}", type_tok)
        npd = t.dtype.np_dtype
        what = f"a {t.dtype} literal"
        width = 8 * t.dtype.itemsize
        item = {"bool": lambda: self.parse_bool(what)}.get(
            t.dtype.name, (lambda: self.parse_int(what)) if t.dtype.is_int
            else (lambda: self.parse_float(what, width)))
        list_tok = self.tok
        values = self.parse_list(item, "the tensor literal")
        count = int(np.prod(t.shape, dtype=np.int64))
        if len(values) != count:
            raise self.error(f"{t} holds {count} element(s), but the literal has "
                             f"{len(values)}", list_tok)
        # f32 literals are read as f64 and rounded once (the shortest f32 text reads back
        # exactly); NaNs written as bits are stored bit for bit.
        raw_nans = [(i, v) for i, v in enumerate(values) if isinstance(v, NanBits)]
        for i, _ in raw_nans:
            values[i] = 0.0
        try:
            with np.errstate(over="ignore"):
                arr = np.array(values, dtype=npd if t.dtype.name != "f32" else np.float64)
                arr = arr.astype(npd)
        except OverflowError:
            raise self.error(f"a value in the literal does not fit in {t.dtype}", list_tok) \
                from None
        for i, bits in raw_nans:
            arr.view(f"u{arr.itemsize}")[i] = bits
        return arr.reshape(t.shape)

    def parse_weight_ref(self) -> np.ndarray:
        tok = self.advance()
        hash_tok = self.expect_kind("HASH", f"the hash of @{tok.text}, like sha256:0123abcd")
        prefix = hash_tok.text.lower()
        if self.weights is None:
            raise self.error(f"@{tok.text} refers to a weight in the sidecar table, but no "
                             f"weights were given (pass weights= or use load_gir)", tok)
        try:
            found = tok.text in self.weights
            arr = self.weights[tok.text] if found else None
        except GraphcError as e:      # a lazily loaded sidecar could not be read
            raise self.error(e.message, tok, text_error_class(e)) from None
        if not found:
            names = list(self.weights.keys())
            raise self.error(f"weight @{tok.text} is missing from the weights table"
                             f"{did_you_mean(tok.text, names)} ({len(names)} weight(s) given)",
                             tok)
        arr = np.asarray(arr)
        digest = array_hash(arr)
        if not digest.startswith(prefix):
            raise self.error(f"weight @{tok.text} has hash sha256:{digest[:len(prefix)]}, but "
                             f"the text expects sha256:{prefix} (the sidecar does not belong "
                             f"to this text, or was modified)", hash_tok)
        try:
            _dt.dtype(arr.dtype)
        except GraphcError as e:
            raise self.error(e.message, tok) from None
        return arr

    # -- locations ----------------------------------------------------------------------------
    def parse_loc(self):
        self.expect("loc")
        self.expect("(", "after 'loc'")
        if self.accept("fused"):
            parts = self.parse_list(self.parse_one_loc, "fused locations")
            loc = FusedLoc(tuple(parts))
        else:
            loc = self.parse_one_loc()
        self.expect(")", "to close the location")
        return loc

    def parse_one_loc(self) -> Loc:
        first = self.expect_kind("STRING", 'a location like "model.py":12 "net/dense1"')
        if not self.accept(":"):
            if self.tok.kind == "STRING":       # "file" "path" (a file without a line)
                return Loc(first.text, None, self.advance().text)
            return Loc(None, None, first.text)
        if self.accept("?"):
            line = None
        else:
            line = self.parse_int("the line number of a location")
        path = self.advance().text if self.tok.kind == "STRING" else None
        return Loc(first.text, line, path)


_DTYPES = {d.name: d for d in _dt.ALL_DTYPES}


def parse(text: str, weights: Optional[Mapping] = None, filename: str = "<string>") -> Graph:
    """Parse `.gir` text into a Graph; `weights` resolves `@name sha256:...` references."""
    return Parser(text, weights, filename).parse_file()
