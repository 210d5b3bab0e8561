"""The calling thread's stack must hold compiled code's frames.

A matrix product keeps its packed operand on the stack (runtime/codegen/gemm.py: up to 512
KiB per call), without stack probes: on a thread whose stack is smaller, the frame would
reach past the guard page and the packing would write over whatever lies below. So before
compiled code first runs on a thread, the call boundary checks that the thread's stack is
at least MIN_STACK_BYTES (1 MiB, what model.h asks of C callers of a bundle too) and refuses
the call with a clear error otherwise. Threads get 8 MiB by default on Linux; a thread
started after `threading.stack_size(256 * 1024)` is refused.

The answer is cached per thread (the C boundary keeps its own per-thread flag). Where the
stack size cannot be read (no glibc), the check passes: nothing is known to be wrong.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import threading
from typing import Optional

from ir import GraphcError

MIN_STACK_BYTES = 1 << 20
_ATTR_BYTES = 128                 # >= sizeof(pthread_attr_t) (56 on x86-64 glibc)


class StackError(GraphcError):
    """The calling thread's stack is too small for compiled code."""


def _libc():
    try:
        libc = ctypes.CDLL(None)
        getattr_np = libc.pthread_getattr_np
    except (OSError, AttributeError):
        return None
    getattr_np.argtypes = [ctypes.c_ulong, ctypes.c_void_p]
    libc.pthread_attr_getstack.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                                           ctypes.POINTER(ctypes.c_size_t)]
    libc.pthread_attr_destroy.argtypes = [ctypes.c_void_p]
    libc.pthread_self.restype = ctypes.c_ulong
    return libc


_LIBC = _libc()
_checked = threading.local()


def thread_stack_bytes() -> Optional[int]:
    """The calling thread's stack size in bytes, or None where it cannot be read."""
    if _LIBC is None:
        return None
    attr = ctypes.create_string_buffer(_ATTR_BYTES)
    if _LIBC.pthread_getattr_np(_LIBC.pthread_self(), attr) != 0:
        return None
    try:
        addr, size = ctypes.c_void_p(), ctypes.c_size_t()
        if _LIBC.pthread_attr_getstack(attr, ctypes.byref(addr), ctypes.byref(size)) != 0:
            return None
        return size.value
    finally:
        _LIBC.pthread_attr_destroy(attr)


def require_stack(graph_name: str) -> None:
    """Raise StackError when the calling thread's stack is under MIN_STACK_BYTES."""
    if getattr(_checked, "ok", False):
        return
    size = thread_stack_bytes()
    if size is not None and size < MIN_STACK_BYTES:
        raise StackError(
            f"graph '{graph_name}': the calling thread "
            f"({threading.current_thread().name}) has a {size // 1024} KiB stack; compiled "
            f"code needs at least {MIN_STACK_BYTES // 1024} KiB (a matrix product keeps its "
            f"packed operand, up to 512 KiB, on the stack). Call it from a thread started "
            f"after threading.stack_size({MIN_STACK_BYTES * 8}) or from the main thread")
    _checked.ok = True
