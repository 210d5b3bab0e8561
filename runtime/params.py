"""Runtime-owned memory: 64-byte-aligned blocks, and the parameter store.

All params and state of an executable live in ONE aligned block (each tensor at a 64-byte
aligned offset), initialised from `graph.initializers`. Their addresses never change, so the
argument tables written once at setup stay valid; `set_params` copies new values in. Keeping
them contiguous also gives the distributed-training work one buffer to reduce.
"""
from __future__ import annotations

import ctypes
from typing import Mapping

import numpy as np

from ir import ArgumentError
from ir.symbolic import evaluate

ALIGN = 64


def aligned_empty(nbytes: int, align: int = ALIGN) -> np.ndarray:
    """An uninitialised uint8 array of `nbytes` (at least 1) whose data is `align`-aligned."""
    nbytes = max(int(nbytes), 1)
    raw = np.empty(nbytes + align, dtype=np.uint8)
    shift = (-raw.ctypes.data) % align
    return raw[shift:shift + nbytes]


def data_address(arr: np.ndarray) -> int:
    """Address of an array's first byte. `c_char.from_buffer` costs ~1 us where
    `__array_interface__` and `arr.ctypes.data` cost ~3 us; it needs a writeable buffer."""
    if arr.flags.writeable and arr.nbytes:
        return ctypes.addressof(ctypes.c_char.from_buffer(arr))
    return arr.__array_interface__["data"][0]


class ParamStore:
    """The param/state buffers of one executable, by name, in argument-table order."""

    def __init__(self, params: list, initializers: Mapping):
        self.values = list(params)
        offsets, total = [], 0
        for v in self.values:
            offsets.append(total)
            nbytes = evaluate(v.type.nbytes, {})
            total += -(-nbytes // ALIGN) * ALIGN
        self.block = aligned_empty(total)
        self.block[:] = 0
        self.views: dict = {}
        for v, off in zip(self.values, offsets):
            shape = tuple(v.type.shape)
            nbytes = evaluate(v.type.nbytes, {})
            view = self.block[off:off + nbytes].view(v.type.dtype.np_dtype).reshape(shape)
            self.views[v.name] = view
        self.addresses = [data_address(self.views[v.name]) for v in self.values]
        base = data_address(self.block)
        self.span = (base, base + self.block.nbytes)   # every param lives in this range
        self.unset = {v.name for v in self.values}
        self.set({k: a for k, a in initializers.items() if k in self.views}, source="initializer")

    def set(self, mapping: Mapping, source: str = "set_params") -> None:
        """Validate every entry first (so a bad one changes nothing), then copy them in."""
        staged = []
        for name, value in mapping.items():
            if name not in self.views:
                known = ", ".join(self.views) or "none"
                raise ArgumentError(f"{source}: the graph has no param or state named {name!r}; "
                                    f"its params and state are: {known}")
            view = self.views[name]
            arr = np.asarray(value)
            if arr.dtype != view.dtype:
                raise ArgumentError(f"{source}: param %{name}: expected dtype "
                                    f"{view.dtype} with shape {view.shape}, found {arr.dtype}")
            if arr.shape != view.shape:
                raise ArgumentError(f"{source}: param %{name}: expected shape {view.shape}, "
                                    f"found {arr.shape}")
            staged.append((name, arr))
        for name, arr in staged:
            np.copyto(self.views[name], arr)
            self.unset.discard(name)

    def addresses_for(self, values: list, graph_name: str) -> list:
        """Buffer addresses for another graph's params (in its order), checking that each is
        in this store with the same dtype and shape: how executables share one store."""
        out = []
        for v in values:
            view = self.views.get(v.name)
            want = (v.type.dtype.np_dtype, tuple(v.type.shape))
            if view is None or (view.dtype, view.shape) != want:
                found = "nothing" if view is None else f"{view.dtype}{list(view.shape)}"
                raise ArgumentError(f"graph {graph_name!r}: param %{v.name}: {v.type} is not "
                                    f"in the shared param store (found {found} under that name)")
            out.append(data_address(view))
        return out

    def check_all_set(self) -> None:
        if self.unset:
            raise ArgumentError(f"param(s) {', '.join(sorted(self.unset))} have no value: give "
                                "the graph initializers for them or call exe.set_params")
