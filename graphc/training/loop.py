"""Model.fit and Model.evaluate: the epoch loop, metrics and progress display.

Per batch the loop does only what must happen in Python: the boundary checks inside
`Model._run_step`, the one native call, and the NaN/inf check of the returned loss (which
names the step, epoch and batch). Progress: a tqdm bar when tqdm is installed (the optional
`progress` extra) and verbose=1, else one line per epoch.
"""
from __future__ import annotations

import numbers
import sys
import time

import numpy as np

from ir.errors import DataError, TrainingError

from .. import metrics as _metrics
from ..data import BatchIterator

try:  # optional extra: pip install graphc[progress]
    from tqdm import tqdm as _tqdm_base

    class _tqdm(_tqdm_base):
        # no monitor thread: graphc leaves no Python thread behind, so a later compile may
        # still fork its LLVM work (runtime/parallel_compile.py forks only when alone)
        monitor_interval = 0
except ImportError:  # pragma: no cover - exercised only without tqdm
    _tqdm = None


def _metric_fns(model, metrics) -> list:
    """[(name, fn(preds, targets) -> float)] from names in graphc.metrics or callables."""
    if metrics is None:
        metrics = model.loss.default_metrics
    if isinstance(metrics, str) or callable(metrics):
        metrics = [metrics]
    out = []
    for m in metrics:
        if callable(m):
            out.append((getattr(m, "__name__", "metric"), m))
            continue
        fn = getattr(_metrics, str(m), None)
        if not isinstance(m, str) or m.startswith("_") or not callable(fn):
            raise TrainingError(f"unknown metric {m!r}; use a name from graphc.metrics "
                                "(accuracy, precision, recall, f1, mse, mae, ...) or a "
                                "function (preds, targets) -> float")
        out.append((m, fn))
    return out


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise TrainingError(f"{name} must be a positive int, found {value!r}")
    return int(value)


def evaluate_model(model, x, y, batch_size: int, metrics) -> dict:
    batch_size = _positive_int(batch_size, "evaluate: batch_size")
    fns = _metric_fns(model, metrics)
    x = model._prepare_x(x)
    y = model._prepare_y(y, len(x))
    entry = model._evaluate_entry(y)
    total, preds = 0.0, []
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        loss, pred = entry({"x": xb, "y": yb})
        total += float(loss) * len(xb)
        preds.append(pred)
    result = {"loss": total / len(x)}
    pred = np.concatenate(preds)
    for name, fn in fns:
        result[name] = float(fn(pred, y))
    return result


def _progress(batches, verbose: int, epoch: int, epochs: int):
    if verbose == 1 and _tqdm is not None:
        return _tqdm(batches, total=len(batches), desc=f"epoch {epoch}/{epochs}", unit="batch",
                     leave=False, file=sys.stderr)
    return None


def fit_model(model, x, y, epochs, batch_size, validation_data, shuffle, seed, verbose,
              metrics, scheduler) -> dict:
    epochs = _positive_int(epochs, "fit: epochs")
    if verbose not in (0, 1, 2):
        raise TrainingError(f"fit: verbose must be 0, 1 or 2, found {verbose!r}")
    x = model._prepare_x(x)                       # converted once, not per batch
    y = model._prepare_y(y, len(x))
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise DataError("fit: validation_data must be a pair (x_val, y_val)")
        _metric_fns(model, metrics)               # refuse a bad metric before training
    iterator = BatchIterator(batch_size, shuffle=shuffle, seed=seed)
    was_training = model.training
    model.training = True                         # fit trains in train mode, then restores
    try:
        return _epochs(model, x, y, iterator, epochs, validation_data, verbose, metrics,
                       scheduler)
    finally:
        model.training = was_training


def _epochs(model, x, y, iterator, epochs, validation_data, verbose, metrics, scheduler):
    history: dict = {"loss": [], "time": [], "lr": []}
    for epoch in range(1, epochs + 1):
        lr = model.optimizer.lr
        start = time.perf_counter()
        batches = iterator(x, y)
        bar = _progress(batches, verbose, epoch, epochs)
        total, seen = 0.0, 0
        try:
            for b, (xb, yb) in enumerate(bar if bar is not None else batches, 1):
                loss = model._run_step(xb, yb)
                model._check_loss(loss, model.step_count, f" (epoch {epoch}, batch {b})")
                total += loss * len(xb)
                seen += len(xb)
                if bar is not None and b % 20 == 0:
                    bar.set_postfix(loss=f"{total / seen:.4f}", refresh=False)
        finally:
            if bar is not None:
                bar.close()
        history["time"].append(time.perf_counter() - start)
        history["loss"].append(total / seen)
        history["lr"].append(lr)
        if validation_data is not None:
            res = evaluate_model(model, validation_data[0], validation_data[1], 1024, metrics)
            for k, v in res.items():
                history.setdefault(f"val_{k}", []).append(v)
        if scheduler is not None:
            scheduler.step()
        if verbose:
            parts = [f"{k} {v[-1]:.4f}" for k, v in history.items() if k not in ("time", "lr")]
            print(f"epoch {epoch}/{epochs}: " + ", ".join(parts)
                  + f" ({history['time'][-1]:.2f} s)", flush=True)
    return history
