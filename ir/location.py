"""Source locations: where in the user's code a node came from.

A `Loc` is the user's file:line plus a layer path (`net/dense1/matmul`). Nodes made by passes
inherit the location of what they replace; a fused node keeps every location it absorbed
(`FusedLoc`), so an error in fused code still points at the user's lines.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Loc:
    file: Optional[str] = None
    line: Optional[int] = None
    path: Optional[str] = None   # layer path, e.g. "net/dense1/matmul"

    def describe(self) -> str:
        parts = []
        if self.file is not None:
            parts.append(f"{self.file}:{self.line}" if self.line is not None else self.file)
        if self.path:
            parts.append(f"({self.path})" if parts else self.path)
        return " ".join(parts) if parts else "<unknown location>"

    @property
    def locs(self) -> tuple:
        return (self,)

    def __bool__(self):
        return self.file is not None or self.path is not None


UNKNOWN = Loc()


@dataclass(frozen=True)
class FusedLoc:
    """The locations of every node a fused node was made from, in program order."""
    parts: tuple

    def describe(self) -> str:
        inner = "; ".join(p.describe() for p in self.parts)
        return f"fused[{inner}]"

    @property
    def locs(self) -> tuple:
        return self.parts

    def __bool__(self):
        return bool(self.parts)


def fuse_locs(locs) -> "Loc | FusedLoc":
    """Merge locations (flattening nested fused locs, dropping unknown and duplicate ones)."""
    parts = []
    for loc in locs:
        for p in (loc.locs if loc is not None else ()):
            if p and p not in parts:
                parts.append(p)
    if not parts:
        return UNKNOWN
    if len(parts) == 1:
        return parts[0]
    return FusedLoc(tuple(parts))


# Frames inside graphc's own packages are skipped when looking for the user's line.
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_INTERNAL_DIRS = tuple(os.path.join(_PACKAGE_ROOT, p) + os.sep
                       for p in ("graphc", "ir", "passes", "runtime"))


def user_frame_loc(path: Optional[str] = None) -> Loc:
    """The Loc of the innermost stack frame outside graphc's packages (the user's line)."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not filename.startswith(_INTERNAL_DIRS) and not _is_library_frame(filename):
            return Loc(_short_path(filename), frame.f_lineno, path)
        frame = frame.f_back
    return Loc(None, None, path)


def _is_library_frame(filename: str) -> bool:
    # functools/contextlib wrappers between the user and graphc are not the user's code.
    return os.sep + "functools.py" in filename or os.sep + "contextlib.py" in filename


def _short_path(filename: str) -> str:
    try:
        rel = os.path.relpath(filename)
    except ValueError:
        return filename
    return rel if not rel.startswith(".." + os.sep + "..") else filename
