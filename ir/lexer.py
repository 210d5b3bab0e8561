"""Tokens of the `.gir` text format and errors that point into the text.

Errors show `file:line:col`, the source line and a caret under the offending token:

    mlp.gir:3:8: unknown op 'matmull'; did you mean matmul?
      %0 = matmull(%x, %w)
           ^~~~~~~
"""
from __future__ import annotations

import difflib
import json
import re
from typing import NamedTuple

from .errors import AttrError, DTypeError, GraphcError, ParseError, ShapeError, UnknownOpError


# Errors found in text are ParseErrors; those that are also a shape/dtype/attribute/op problem
# keep that class too, so callers can catch either.
class ShapeParseError(ParseError, ShapeError):
    pass


class DTypeParseError(ParseError, DTypeError):
    pass


class AttrParseError(ParseError, AttrError):
    pass


class UnknownOpParseError(ParseError, UnknownOpError):
    pass


_IN_TEXT = {ShapeError: ShapeParseError, DTypeError: DTypeParseError, AttrError: AttrParseError,
            UnknownOpError: UnknownOpParseError}


def text_error_class(err: GraphcError):
    """The ParseError subclass that also carries the class of `err`."""
    for cls in type(err).__mro__:
        if cls in _IN_TEXT:
            return _IN_TEXT[cls]
    return ParseError


class Token(NamedTuple):
    kind: str    # VALUE SYMBOL STRING HASH NUMBER IDENT PUNCT EOF
    text: str    # the token's value: decoded name/string, number text, punctuation
    pos: int     # offset of the token's first character in the source
    length: int


_STRING = r'"(?:[^"\\\n]|\\.)*"'
_PLAIN = r"[A-Za-z0-9_.]+"
_TOKEN_RE = re.compile(
    rf"(?P<ws>[ \t\r\n]+|#[^\n]*)"
    rf"|%(?P<value>{_PLAIN}|{_STRING})"
    rf"|@(?P<symbol>{_PLAIN}|{_STRING})"
    rf"|(?P<string>{_STRING})"
    rf"|sha256:(?P<hash>[0-9a-fA-F]+)"
    rf"|(?P<number>0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
    rf"|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)"
    rf"|(?P<punct>[(){{}}\[\]<>,:=*+\-?])")


def tokenize(text: str, filename: str = "<string>") -> list:
    tokens = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            bad = Token("PUNCT", text[pos], pos, 1)
            hint = " (an unterminated string?)" if text[pos] in "\"%@" else ""
            raise error_at(ParseError, text, filename, bad,
                         f"unexpected character {text[pos]!r}{hint}")
        kind = m.lastgroup
        if kind != "ws":
            raw = m.group(kind)
            if kind in ("value", "symbol", "string") and raw.startswith('"'):
                try:
                    raw = json.loads(raw)
                except ValueError as e:
                    bad = Token("STRING", raw, m.start(), m.end() - m.start())
                    raise error_at(ParseError, text, filename, bad,
                                 f"bad string literal ({e.msg})") from None
            tokens.append(Token(kind.upper(), raw, m.start(), m.end() - m.start()))
        pos = m.end()
    tokens.append(Token("EOF", "", len(text), 1))
    return tokens


def _line_col(text: str, pos: int) -> tuple:
    line = text.count("\n", 0, pos) + 1
    start = text.rfind("\n", 0, pos) + 1
    return line, pos - start + 1, start


def error_at(cls, text: str, filename: str, tok: Token, message: str):
    """An error of class `cls` whose message shows file:line:col, the line and a caret."""
    line, col, start = _line_col(text, tok.pos)
    end = text.find("\n", start)
    source = text[start:end if end >= 0 else len(text)]
    width = max(1, min(tok.length, len(source) - (col - 1)))
    caret = " " * (col - 1) + "^" + "~" * (width - 1)
    err = cls(f"{filename}:{line}:{col}: {message}\n  {source}\n  {caret}")
    err.filename, err.line, err.col = filename, line, col
    return err


def did_you_mean(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=3)
    return f"; did you mean {', '.join(close)}?" if close else ""
