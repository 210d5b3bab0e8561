"""Passes by name: the `Pass` interface, the pass registry and textual pipelines.

A pass is a named function Graph -> Graph that never mutates its input and reports statistics.
Registering one takes a few lines; a plain function is enough:

    @function_pass("dce", "remove nodes whose results are unused")
    def dce(graph, ctx):
        ...
        return new_graph, {"removed_nodes": n}

    @function_pass("simplify", "algebraic rewrites",
                   options=[PassOption("fast-math", bool, False, "allow x*0 -> 0")])
    def simplify(graph, ctx, fast_math=False): ...

A pass with state or helpers can subclass `Pass` and be registered with
`register_pass(name, factory, options=..., description=...)`; the factory receives the parsed
options as keyword arguments (dashes in option names become underscores).

Pipelines are text, so they can be typed on a command line and replayed from a dump:
    "shape-infer,dce"      "simplify{fast-math=true},cse,dce"      "fuse{max-group=8}"
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from ir import Graph, PassError


class PipelineError(PassError):
    """A pipeline that cannot be built: unknown pass or option, bad option value, bad syntax."""


# -- the pass interface ----------------------------------------------------------------------------

@dataclass
class PassContext:
    """What the PassManager tells a running pass, and what the pass may tell it back.

    `changed`: a pass may set it to state explicitly whether it changed the graph; left None,
    the manager decides by comparing structural hashes before and after.
    `remarks`: human-readable notes (e.g. "unified M with N at add"), kept in the pass record
    and shown by the Statistics instrument."""
    pass_name: str = ""
    index: int = 0          # 1-based position in the pipeline
    total: int = 0
    changed: Optional[bool] = None
    remarks: list = field(default_factory=list)

    def remark(self, message: str) -> None:
        self.remarks.append(message)


class Pass:
    """Base class of passes. Subclasses set `name`/`description` and implement `run`."""

    name: str = ""
    description: str = ""

    info = None   # the PassInfo it was made from (set by PassInfo.create)

    def __init__(self, **options):
        self.options = dict(options)   # option values by keyword (underscore) name

    def run(self, graph: Graph, ctx: PassContext) -> tuple:
        """Return (new graph, stats: dict[str, int | float]). Must not mutate `graph`."""
        raise NotImplementedError(f"pass {self.name!r} does not implement run()")

    def spec(self) -> str:
        """The pipeline text that recreates this pass (options left at their default omitted)."""
        defaults = {o.keyword: o.default for o in self.info.options} if self.info else {}
        items = ",".join(f"{k.replace('_', '-')}={format_option_value(v)}"
                         for k, v in self.options.items()
                         if k not in defaults or defaults[k] != v)
        return f"{self.name}{{{items}}}" if items else self.name

    def __repr__(self):
        return f"<Pass {self.spec()}>"


class FunctionPass(Pass):
    """A pass made from a function fn(graph, ctx, **options) -> (graph, stats)."""

    def __init__(self, name: str, fn: Callable, description: str = "", **options):
        super().__init__(**options)
        self.name = name
        self.fn = fn
        self.description = description

    def run(self, graph: Graph, ctx: PassContext) -> tuple:
        return self.fn(graph, ctx, **self.options)


# -- options ---------------------------------------------------------------------------------------

_OPTION_TYPES = (bool, int, float, str)


@dataclass(frozen=True)
class PassOption:
    """One pass option, spelled with dashes in pipelines ('fast-math')."""
    name: str
    type: type
    default: Any
    doc: str = ""

    def __post_init__(self):
        if self.type not in _OPTION_TYPES:
            raise ValueError(f"pass option {self.name!r}: type must be one of bool, int, "
                             f"float, str, found {self.type!r}")
        if not _NAME_RE.fullmatch(self.name):
            raise ValueError(f"pass option name {self.name!r} is not a dashed identifier")

    @property
    def keyword(self) -> str:
        return self.name.replace("-", "_")

    def convert(self, text: str, pass_name: str):
        """The typed value of `text` (as written in a pipeline) or a PipelineError."""
        want = self.type
        if want is bool:
            if text in ("true", "false"):
                return text == "true"
        elif want is int:
            if re.fullmatch(r"[-+]?\d+", text):
                return int(text)
        elif want is float:
            try:
                return float(text)
            except ValueError:
                pass
        else:
            if len(text) >= 2 and text[0] == text[-1] == '"':
                return text[1:-1]
            return text
        raise PipelineError(f"pass {pass_name!r}: option {self.name!r} expects "
                            f"{self._expected()}, found {text!r}")

    def check(self, value, pass_name: str):
        """`value` (given from Python) if it has the option's type, else a PipelineError."""
        ok = isinstance(value, self.type) and not (self.type is int and isinstance(value, bool))
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise PipelineError(f"pass {pass_name!r}: option {self.name!r} expects "
                                f"{self._expected()}, found {value!r}")
        return value

    def _expected(self) -> str:
        return {bool: "true or false", int: "an integer", float: "a number",
                str: "a string"}[self.type]


def format_option_value(v) -> str:
    """Pipeline spelling of an option value: true/false, numbers, bare or quoted strings."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str) and not re.fullmatch(r"[A-Za-z0-9_.+-]+", v):
        return f'"{v}"'
    return str(v)


# -- the registry ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PassInfo:
    """A registered pass: how to make it and which options it takes."""
    name: str
    factory: Callable
    options: tuple = ()
    description: str = ""

    def option(self, name: str) -> PassOption:
        for opt in self.options:
            if opt.name == name:
                return opt
        known = [o.name for o in self.options]
        if not known:
            raise PipelineError(f"pass {self.name!r} takes no options, found {name!r}")
        raise PipelineError(f"pass {self.name!r} has no option {name!r}{_did_you_mean(name, known)}"
                            f"; its options are {', '.join(known)}")

    def create(self, **options) -> Pass:
        """Make the pass. `options` use keyword spelling (fast_math=True); unset ones default."""
        by_keyword = {o.keyword: o for o in self.options}
        values = {o.keyword: o.default for o in self.options}
        for key, value in options.items():
            if key not in by_keyword:
                self.option(key.replace("_", "-"))    # raises with the list of known options
            values[key] = by_keyword[key].check(value, self.name)
        made = self.factory(**values)
        if not isinstance(made, Pass):
            raise TypeError(f"the factory of pass {self.name!r} returned {made!r}, not a Pass")
        made.name = made.name or self.name
        made.options = values
        made.info = self
        return made


_REGISTRY: dict = {}
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(-[A-Za-z0-9_]+)*")


def register_pass(name: str, factory: Callable, options: Sequence[PassOption] = (),
                  description: str = "") -> PassInfo:
    """Register a pass under `name`. `factory(**options)` returns a Pass instance."""
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"pass name {name!r} must be a dashed identifier like 'shape-infer'")
    if name in _REGISTRY:
        raise ValueError(f"pass {name!r} registered twice")
    info = PassInfo(name, factory, tuple(options), description)
    _REGISTRY[name] = info
    return info


def function_pass(name: str, description: str = "", options: Sequence[PassOption] = ()):
    """Decorator registering fn(graph, ctx, **options) -> (graph, stats) as pass `name`.

    Returns `fn` unchanged, so it stays callable directly from Python."""
    def decorate(fn):
        def factory(**opts):
            return FunctionPass(name, fn, description, **opts)
        register_pass(name, factory, options, description or (fn.__doc__ or "").strip())
        return fn
    return decorate


def unregister_pass(name: str) -> None:
    """Remove a pass (tests use it to clean up test-only passes)."""
    _REGISTRY.pop(name, None)


def get_pass(name: str) -> PassInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = sorted(_REGISTRY)
        raise PipelineError(f"unknown pass {name!r}{_did_you_mean(name, known)}; known passes: "
                            f"{', '.join(known) or 'none'}") from None


def registered_passes() -> dict:
    return dict(sorted(_REGISTRY.items()))


def _did_you_mean(name: str, known) -> str:
    close = difflib.get_close_matches(name, known, n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


# -- textual pipelines -----------------------------------------------------------------------------

@dataclass(frozen=True)
class PipelineEntry:
    """One parsed pipeline element: a pass name and its option texts, with the column."""
    name: str
    options: tuple          # ((option name, value text, column), ...)
    column: int


_TOKEN_RE = re.compile(r'\s*(?:(?P<name>[A-Za-z][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*)'
                       r'|(?P<string>"[^"]*")|(?P<value>[-+A-Za-z0-9_.]+)|(?P<punct>[,{}=]))')


def _syntax_error(text: str, col: int, message: str) -> PipelineError:
    caret = " " * col + "^"
    return PipelineError(f"bad pipeline at column {col + 1}: {message}\n  {text}\n  {caret}")


def _tokens(text: str):
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN_RE.match(text, pos)
        if not m:
            col = len(text[pos:]) - len(text[pos:].lstrip()) + pos
            raise _syntax_error(text, col, f"unexpected character {text[col]!r}")
        kind = m.lastgroup
        col = m.start(kind)
        yield kind, m.group(kind), col
        pos = m.end()
    yield "end", "", len(text)


def parse_pipeline(text: str) -> list:
    """Parse pipeline text into PipelineEntry items (syntax only; names checked by build)."""
    entries = []
    toks = list(_tokens(text))
    i = 0

    def expect(kinds_values, what):
        nonlocal i
        kind, value, col = toks[i]
        if (kind, value) not in kinds_values and kind not in kinds_values:
            found = "the end" if kind == "end" else repr(value)
            raise _syntax_error(text, col, f"expected {what}, found {found}")
        i += 1
        return value, col

    if toks[0][0] == "end":
        return entries
    while True:
        name, col = expect({"name"}, "a pass name")
        options = []
        if toks[i][:2] == ("punct", "{"):
            i += 1
            while True:
                opt, ocol = expect({"name"}, "an option name")
                expect({("punct", "=")}, "'='")
                value, _ = expect({"name", "value", "string"}, "an option value")
                options.append((opt, value, ocol))
                sep, _ = expect({("punct", ","), ("punct", "}")}, "',' or '}'")
                if sep == "}":
                    break
        entries.append(PipelineEntry(name, tuple(options), col))
        sep, _ = expect({("punct", ","), "end"}, "',' between passes")
        if sep != ",":
            return entries


def build_pipeline(pipeline) -> list:
    """Pass instances from pipeline text, or from a list of texts / Pass instances."""
    if isinstance(pipeline, Pass):
        return [pipeline]
    if isinstance(pipeline, str):
        return [_build_entry(pipeline, e) for e in parse_pipeline(pipeline)]
    out = []
    for item in pipeline:
        out.extend(build_pipeline(item))
    return out


def _build_entry(text: str, entry: PipelineEntry) -> Pass:
    try:
        info = get_pass(entry.name)
    except PipelineError as e:
        raise _syntax_error(text, entry.column, e.message) from None
    values = {}
    for opt_name, value_text, col in entry.options:
        try:
            opt = info.option(opt_name)
        except PipelineError as e:
            raise _syntax_error(text, col, e.message) from None
        if opt.keyword in values:
            raise _syntax_error(text, col, f"option {opt_name!r} of pass {info.name!r} "
                                           f"is given twice")
        values[opt.keyword] = opt.convert(value_text, info.name)
    return info.create(**values)


def format_pipeline(passes: Sequence[Pass]) -> str:
    """The pipeline text of a list of passes (parses back to the same pipeline)."""
    return ",".join(p.spec() for p in passes)
