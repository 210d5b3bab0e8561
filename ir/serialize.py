"""`.gir` files: the IR text plus, when it references large arrays, a `.weights.npz` sidecar.

`save_gir(g, "mlp.gir")` writes `mlp.gir` and, if any constant or initializer is too large to
print inline, `mlp.gir.weights.npz` (plain `np.savez`: no pickle). `load_gir("mlp.gir")` reads
both back; the parser checks every referenced weight's sha256 prefix against the sidecar.
"""
from __future__ import annotations

import os
import zipfile
from typing import Iterator, Mapping, Optional

import numpy as np

from .errors import ParseError
from .graph import Graph
from .parser import parse
from .printer import DEFAULT_INLINE_LIMIT, dump

SIDECAR_SUFFIX = ".weights.npz"


def sidecar_path(path) -> str:
    """Where the weights of the .gir file at `path` live: `<path>.weights.npz`."""
    return os.fspath(path) + SIDECAR_SUFFIX


def save_gir(graph: Graph, path, inline_limit: int = DEFAULT_INLINE_LIMIT,
             show_locs: bool = True) -> None:
    """Write `graph` as .gir text to `path`, and its large arrays to the sidecar if any."""
    path = os.fspath(path)
    text, weights = dump(graph, inline_limit=inline_limit, show_locs=show_locs)
    side = sidecar_path(path)
    if weights:
        text = f"# weights: {os.path.basename(side)}\n" + text
        with open(side, "wb") as f:
            np.savez(f, **{name: np.ascontiguousarray(arr) for name, arr in weights.items()})
    elif os.path.exists(side):
        os.remove(side)       # a stale sidecar from an earlier save would mislead readers
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


class SidecarWeights(Mapping):
    """The weights table of a .gir file, loaded from its sidecar on first use.

    Loading lazily lets a text without weight references load without a sidecar, and lets the
    parser report a missing sidecar at the first reference (with line, column and caret)."""

    def __init__(self, gir_path: str):
        self.gir_path = gir_path
        self.path = sidecar_path(gir_path)
        self._arrays: Optional[dict] = None

    def _load(self) -> dict:
        if self._arrays is None:
            if not os.path.exists(self.path):
                raise ParseError(f"{self.gir_path} references weights stored in a sidecar file, "
                                 f"but {self.path} does not exist (save_gir writes both files; "
                                 f"copy the sidecar along with the .gir file)")
            try:
                with np.load(self.path, allow_pickle=False) as npz:
                    self._arrays = {name: npz[name] for name in npz.files}
            except (OSError, ValueError, zipfile.BadZipFile) as e:
                raise ParseError(f"cannot read the weights sidecar {self.path}: {e}") from None
        return self._arrays

    def __getitem__(self, name):
        return self._load()[name]

    def __iter__(self) -> Iterator:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


def load_gir(path, weights: Optional[Mapping] = None) -> Graph:
    """Read a .gir file (and its sidecar, or the given `weights` table) into a Graph."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ParseError(f"cannot read IR file {path}: {e.strerror or e}") from None
    return parse(text, weights if weights is not None else SidecarWeights(path), filename=path)
