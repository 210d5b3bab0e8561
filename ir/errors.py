"""The graphc error hierarchy.

Every error a user can see derives from GraphcError. Messages say what was expected, what was
found and, when known, where in the user's code (a Loc). `ir` owns the hierarchy because it is
the bottom layer: passes, runtime and the front end all raise these.
"""
from __future__ import annotations


class GraphcError(Exception):
    """Base of every graphc error. `loc` is the user's source location when known."""

    def __init__(self, message: str, loc=None):
        self.message = message
        self.loc = loc
        super().__init__(self._render())

    def _render(self) -> str:
        if not self.loc:
            return self.message
        return f"{self.loc.describe()}: {self.message}"

    def with_loc(self, loc):
        """Return the same error re-raised with a location (keeps the original message)."""
        if self.loc or not loc:
            return self
        err = type(self).__new__(type(self))
        err.__dict__.update(self.__dict__)
        err.loc = loc
        Exception.__init__(err, err._render())
        return err


class ShapeError(GraphcError):
    """A shape rule could not prove two dims equal, or a shape is invalid for an op."""


class DTypeError(GraphcError):
    """An operand has a dtype the op does not accept."""


class AttrError(GraphcError):
    """A missing, unknown or ill-typed op attribute."""


class UnknownOpError(GraphcError):
    """An op name that is not in the registry."""


class ParseError(GraphcError):
    """Malformed IR text. The message carries line:col and a caret under the offending text."""


class VerifyError(GraphcError):
    """A graph broke a named verifier invariant (`invariant` holds its name)."""

    def __init__(self, invariant: str, message: str, loc=None):
        self.invariant = invariant
        super().__init__(f"[{invariant}] {message}", loc)


class InterpreterError(GraphcError):
    """The reference interpreter was given inputs that do not match the graph."""


class ArgumentError(GraphcError):
    """An argument at a call boundary (interpreter, Executable) is wrong: dtype, rank, dim, missing."""


class CompileError(GraphcError):
    """Lowering or native compilation failed."""


class PassError(GraphcError):
    """A pass failed or produced an invalid graph; names the pass."""


class BundleError(GraphcError):
    """An exported bundle is missing, corrupt, of another version or for another CPU."""


class GradientError(GraphcError):
    """Autodiff could not differentiate the graph (e.g. missing VJP rules, listed all at once)."""


class DataError(GraphcError):
    """Training data is missing or malformed (labels out of range, missing files...)."""


class TrainingError(GraphcError):
    """Training diverged (NaN loss) or was misused."""
