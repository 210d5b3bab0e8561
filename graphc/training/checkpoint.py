"""Model checkpoints: parameters, optimizer state and the step count in one .npz file.

Keys are the parameter names ("net.dense1.w"), the optimizer's slot names
("opt.m.net.dense1.w") and "meta.step_count". Files are written with numpy's savez and read
with allow_pickle=False: no pickle, ever. Loading names every difference between the file
and the model at once (missing, unexpected, wrong shape) instead of stopping at the first.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from ir.errors import DataError

STEP_KEY = "meta.step_count"
STATE_PREFIX = "opt."


def save_arrays(path, arrays: Mapping[str, np.ndarray], step_count: int) -> None:
    """Write exactly `path` (numpy would append .npz to a name without it)."""
    payload = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    payload[STEP_KEY] = np.asarray(step_count, dtype=np.int64)
    try:
        with open(path, "wb") as f:
            np.savez(f, **payload)
    except OSError as e:
        raise DataError(f"cannot write checkpoint {path}: {e.strerror or e}") from None


def load_arrays(path) -> dict:
    """{key: array} of an .npz checkpoint."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise DataError(f"checkpoint not found: expected an .npz file at {path}") from None
    except ValueError as e:   # object arrays (pickled data) are refused
        raise DataError(f"{path}: cannot load without pickle ({e}); graphc checkpoints hold "
                        "only numeric arrays") from None
    except (OSError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz checkpoint ({e})") from None


def _shape_problems(loaded: Mapping, expected: Mapping) -> list:
    out = []
    for name, arr in loaded.items():
        want = expected[name]
        if arr.shape != want.shape:
            out.append(f"{name} has shape {arr.shape} in the file but {want.shape} in the model")
        elif arr.dtype.kind not in "biuf":
            out.append(f"{name} holds {arr.dtype} data, expected numbers")
    return out


def split_loaded(arrays: Mapping[str, np.ndarray], params: Mapping[str, np.ndarray],
                 state: Mapping[str, np.ndarray], with_state: bool):
    """(param values, optimizer state values, step count or None) from a loaded file,
    converted to the model's dtypes; raises DataError listing every mismatch."""
    file_params = {k: v for k, v in arrays.items()
                   if k != STEP_KEY and not k.startswith(STATE_PREFIX)}
    file_state = {k: v for k, v in arrays.items() if k.startswith(STATE_PREFIX)}
    problems = []
    missing = [k for k in params if k not in file_params]
    unexpected = [k for k in file_params if k not in params]
    if missing:
        problems.append("missing parameters: " + ", ".join(missing))
    if unexpected:
        problems.append("parameters the model does not have: " + ", ".join(unexpected))
    problems += _shape_problems({k: v for k, v in file_params.items() if k in params}, params)
    # restore the optimizer (slots and step count) when the file has its state, or when it
    # has none to restore (SGD); a weights-only file leaves the optimizer as it is
    use_state = with_state and (bool(file_state) or not state)
    if use_state:
        s_missing = [k for k in state if k not in file_state]
        s_unexpected = [k for k in file_state if k not in state]
        if s_missing or s_unexpected:
            problems.append("the optimizer state does not match this optimizer (missing "
                            f"{s_missing or 'none'}, unexpected {s_unexpected or 'none'}); "
                            "load(path, optimizer_state=False) loads only the parameters")
        else:
            problems += _shape_problems(file_state, state)
    if problems:
        raise DataError("the checkpoint does not match the model:\n  " + "\n  ".join(problems))
    values = {k: v.astype(params[k].dtype, copy=False) for k, v in file_params.items()}
    slots = {k: v.astype(state[k].dtype, copy=False) for k, v in file_state.items()} \
        if use_state else {}
    step: Optional[int] = int(arrays[STEP_KEY]) if use_state and STEP_KEY in arrays else None
    return values, slots, step
