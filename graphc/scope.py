"""Layer scopes: the `net/dense1` part of every node's location.

    with graphc.scope("net"):
        with graphc.scope("dense1"):
            y = x @ w          # the matmul node's loc path is "net/dense1/matmul"

The stack is per thread, so two threads can trace two graphs at once. A node's path is the
active scopes joined by "/" followed by the primitive op's name (`node_path`).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from ir.errors import GraphcError

_LOCAL = threading.local()


def _stack() -> list:
    stack = getattr(_LOCAL, "stack", None)
    if stack is None:
        stack = _LOCAL.stack = []
    return stack


@contextmanager
def scope(name: str) -> Iterator[str]:
    """Enter a layer scope `name`; yields the full path ("net/dense1") while active."""
    if not isinstance(name, str) or not name.strip("/"):
        raise GraphcError(f"a scope name must be a non-empty string like 'dense1', found {name!r}")
    stack = _stack()
    stack.append(name.strip("/"))
    try:
        yield current_path()
    finally:
        stack.pop()


def current_path() -> str:
    """The active scopes joined by '/' ('' outside every scope)."""
    return "/".join(_stack())


def node_path(op: str) -> str:
    """The loc path of a node made now: the active scopes followed by the op name."""
    path = current_path()
    return f"{path}/{op}" if path else op

