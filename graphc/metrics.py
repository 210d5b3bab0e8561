"""Evaluation metrics on numpy arrays (tinynn-compatible names and argument order).

Every metric takes `(preds, targets)` -- predictions first, as in tinynn (sklearn puts the
truth first) -- and returns a Python float. Shapes are validated: mismatched lengths, wrong
ranks, labels that are not integers and probabilities outside [0, 1] raise DataError naming
the argument and what was found.

Classification inputs may be given in any of the usual forms:
- class indices, shape (N,);
- scores, logits or probabilities, shape (N, K) with K >= 2: the class is the argmax;
- probabilities of class 1 for a binary problem, shape (N,) or (N, 1) with non-integer
  values: thresholded at `threshold` (0.5);
- one-hot (or soft) targets, shape (N, K): the class is the argmax.
"""
from __future__ import annotations

import numpy as np

from ir.errors import DataError

AVERAGES = ("binary", "macro", "micro", "weighted")


# -- input normalisation --------------------------------------------------------------------------

def _array(x, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise DataError(f"{name}: expected a numeric array, found dtype {a.dtype}")
    if a.ndim == 0:
        raise DataError(f"{name}: expected an array with one entry per example, found a scalar")
    if len(a) == 0:
        raise DataError(f"{name}: expected at least one example, found an empty array")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        index = int(np.flatnonzero(~np.isfinite(a))[0])
        raise DataError(f"{name}: expected finite values, found {a.flat[index]} at flat index "
                        f"{index}")
    return a


def _is_integral(a: np.ndarray) -> bool:
    return a.dtype.kind in "biu" or bool(np.all(a == np.round(a)))


def _class_indices(x, name: str, threshold: float = 0.5, scores_allowed: bool = True):
    """Class indices (int64, shape (N,)) from indices, (N, K) scores or binary probabilities."""
    a = _array(x, name)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim == 2:
        return np.argmax(a, axis=1).astype(np.int64)
    if a.ndim != 1:
        raise DataError(f"{name}: expected class indices (N,) or scores (N, K), found shape "
                        f"{a.shape}")
    if _is_integral(a):
        return a.astype(np.int64)
    if not scores_allowed:
        index = int(np.flatnonzero(a != np.round(a))[0])
        raise DataError(f"{name}: expected integer class labels, found {a[index]} at index {index}")
    return (a >= threshold).astype(np.int64)   # probabilities of class 1


def _same_length(a: np.ndarray, b: np.ndarray, a_shape, b_shape) -> None:
    if len(a) != len(b):
        raise DataError(f"preds and targets must hold the same number of examples, found "
                        f"{len(a)} preds {tuple(a_shape)} and {len(b)} targets {tuple(b_shape)}")


def _labels_pair(preds, targets, threshold: float):
    p = _class_indices(preds, "preds", threshold)
    t = _class_indices(targets, "targets", scores_allowed=False)
    _same_length(p, t, np.shape(preds), np.shape(targets))
    return p, t


# -- classification -------------------------------------------------------------------------------

def accuracy(preds, targets, threshold: float = 0.5) -> float:
    """Fraction of examples whose predicted class equals the target class."""
    p, t = _labels_pair(preds, targets, threshold)
    return float(np.mean(p == t))


def precision(preds, targets, average: str = "binary", pos_label: int = 1,
              threshold: float = 0.5) -> float:
    """TP / (TP + FP); 0.0 when nothing was predicted positive. See `f1` for `average`."""
    return _prf(preds, targets, average, pos_label, threshold)[0]


def recall(preds, targets, average: str = "binary", pos_label: int = 1,
           threshold: float = 0.5) -> float:
    """TP / (TP + FN); 0.0 when there are no positive targets. See `f1` for `average`."""
    return _prf(preds, targets, average, pos_label, threshold)[1]


def f1(preds, targets, average: str = "binary", pos_label: int = 1,
       threshold: float = 0.5) -> float:
    """Harmonic mean of precision and recall (0.0 when both are 0).

    average="binary" scores class `pos_label` against the rest and needs at most two classes;
    "macro" is the unweighted mean of the per-class scores, "weighted" weights them by each
    class's support (its count in targets), "micro" pools TP/FP/FN over all classes (for
    single-label problems micro precision = recall = f1 = accuracy). The classes are those
    appearing in preds or targets.
    """
    return _prf(preds, targets, average, pos_label, threshold)[2]


f1_score = f1   # tinynn's name


def _prf(preds, targets, average: str, pos_label: int, threshold: float):
    if average not in AVERAGES:
        raise DataError(f"average must be one of {', '.join(AVERAGES)}, found {average!r}")
    p, t = _labels_pair(preds, targets, threshold)
    classes = np.union1d(p, t)
    if average == "binary":
        if len(classes) > 2:
            raise DataError(f"average='binary' needs at most two classes, found labels "
                            f"{classes.tolist()}; pass average='macro', 'micro' or 'weighted'")
        if len(classes) == 2 and pos_label not in classes:
            raise DataError(f"pos_label={pos_label} is not one of the labels found, "
                            f"{classes.tolist()}; pass pos_label= one of them")
        tp, fp, fn = _counts(p == pos_label, t == pos_label)
        return _ratios(tp, fp, fn)
    # per-class counts: class c is "positive" in its own one-vs-rest problem
    p_idx, t_idx = np.searchsorted(classes, p), np.searchsorted(classes, t)
    k = len(classes)
    tp = np.bincount(t_idx[p_idx == t_idx], minlength=k).astype(np.float64)
    fp = np.bincount(p_idx, minlength=k) - tp
    fn = np.bincount(t_idx, minlength=k) - tp
    if average == "micro":
        return _ratios(tp.sum(), fp.sum(), fn.sum())
    per_class = np.array([_ratios(*c) for c in zip(tp, fp, fn)])   # (k, 3)
    if average == "macro":
        return tuple(float(v) for v in per_class.mean(axis=0))
    support = tp + fn
    return tuple(float(v) for v in (support @ per_class) / support.sum())


def _counts(pred_pos: np.ndarray, true_pos: np.ndarray):
    tp = float(np.count_nonzero(pred_pos & true_pos))
    fp = float(np.count_nonzero(pred_pos & ~true_pos))
    fn = float(np.count_nonzero(~pred_pos & true_pos))
    return tp, fp, fn


def _ratios(tp: float, fp: float, fn: float):
    """(precision, recall, f1) with 0.0 wherever a denominator is zero."""
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return float(prec), float(rec), float(f)


def auc(scores, targets, pos_label: int = 1) -> float:
    """Binary ROC AUC: the probability that a random positive outscores a random negative.

    Computed from ranks (Mann-Whitney U); tied scores get their average rank, so a tie counts
    as half a win. `scores` is (N,), (N, 1), or (N, 2) whose column 1 is the positive class.
    """
    s = _array(scores, "scores").astype(np.float64)
    if s.ndim == 2 and s.shape[1] in (1, 2):
        s = s[:, -1]
    if s.ndim != 1:
        raise DataError(f"scores: expected shape (N,), (N, 1) or (N, 2) for binary AUC, found "
                        f"{s.shape}")
    t = _class_indices(targets, "targets", scores_allowed=False)
    _same_length(s, t, np.shape(scores), np.shape(targets))
    classes = np.unique(t)
    if len(classes) > 2:
        raise DataError(f"auc is for binary problems; targets hold classes {classes.tolist()}")
    positive = t == pos_label
    n_pos = int(np.count_nonzero(positive))
    n_neg = len(t) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise DataError(f"auc needs both classes in targets, found {n_pos} positive (label "
                        f"{pos_label}) and {n_neg} negative examples")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)                       # 1-based rank of each group's last member
    ranks = (ends - (counts - 1) / 2.0)[inverse]   # average rank within ties
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def log_loss(probs, targets, eps: float = 1e-15) -> float:
    """Mean cross-entropy of predicted probabilities, clipped to [eps, 1 - eps].

    Binary: probs (N,) or (N, 1) are P(class 1), targets 0/1 (or soft) of shape (N,) or
    (N, 1). Multiclass: probs (N, K), targets class indices (N,) or one-hot/soft (N, K).
    Probabilities are not renormalised.
    """
    p = _array(probs, "probs").astype(np.float64)
    t_raw = _array(targets, "targets")
    _same_length(p, t_raw, p.shape, t_raw.shape)
    _check_unit_interval(p, "probs", "apply sigmoid/softmax to logits first")
    p = np.clip(p, eps, 1.0 - eps)
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim == 1:
        t = t_raw[:, 0] if t_raw.ndim == 2 and t_raw.shape[1] == 1 else t_raw
        if t.ndim != 1:
            raise DataError(f"targets: binary log_loss expects shape (N,) or (N, 1), found "
                            f"{t_raw.shape}")
        t = t.astype(np.float64)
        _check_unit_interval(t, "targets", "binary targets are 0/1 or probabilities")
        return float(-np.mean(t * np.log(p) + (1.0 - t) * np.log1p(-p)))
    if p.ndim != 2:
        raise DataError(f"probs: expected shape (N,), (N, 1) or (N, K), found {p.shape}")
    k = p.shape[1]
    if t_raw.ndim == 1:
        t = _class_indices(t_raw, "targets", scores_allowed=False)
        if t.min() < 0 or t.max() >= k:
            index = int(np.flatnonzero((t < 0) | (t >= k))[0])
            raise DataError(f"targets: expected class indices in 0..{k - 1} (probs have {k} "
                            f"columns), found {t[index]} at index {index}")
        return float(-np.mean(np.log(p[np.arange(len(t)), t])))
    if t_raw.shape != p.shape:
        raise DataError(f"targets: expected class indices (N,) or one-hot {p.shape}, found "
                        f"{t_raw.shape}")
    t = t_raw.astype(np.float64)
    _check_unit_interval(t, "targets", "one-hot or soft labels are probabilities")
    return float(-np.mean(np.sum(t * np.log(p), axis=1)))


def _check_unit_interval(a: np.ndarray, name: str, hint: str) -> None:
    outside = (a < 0) | (a > 1)
    if np.any(outside):
        index = int(np.flatnonzero(outside)[0])
        raise DataError(f"{name}: expected values in [0, 1] ({hint}), found {a.flat[index]} at "
                        f"flat index {index}")


# -- regression -----------------------------------------------------------------------------------

def _regression_pair(preds, targets):
    p = _array(preds, "preds").astype(np.float64)
    t = _array(targets, "targets").astype(np.float64)
    if p.shape != t.shape:
        raise DataError(f"preds and targets must have the same shape, found {p.shape} and "
                        f"{t.shape} (no broadcasting: reshape one of them explicitly)")
    return p, t


def _per_example_mean(err: np.ndarray) -> float:
    """tinynn's convention: sum over the output axes, mean over examples."""
    if err.ndim > 1:
        err = err.reshape(len(err), -1).sum(axis=1)
    return float(np.mean(err))


def mse(preds, targets) -> float:
    """Mean squared error. For (N, ...) arrays the squared errors are summed over each
    example's outputs and averaged over examples (tinynn); divide by the outputs per example
    for the per-element mean."""
    p, t = _regression_pair(preds, targets)
    return _per_example_mean(np.square(p - t))


def mae(preds, targets) -> float:
    """Mean absolute error, with the same reduction as `mse`."""
    p, t = _regression_pair(preds, targets)
    return _per_example_mean(np.abs(p - t))


def r2(preds, targets) -> float:
    """Coefficient of determination, 1 - SS_res / SS_tot: the fraction of the variance of the
    targets that the predictions explain. For (N, K) arrays, the mean over the K columns. A
    constant target column scores 1.0 if predicted exactly, else 0.0 (as sklearn does)."""
    p, t = _regression_pair(preds, targets)
    _need_two(t)
    ss_res = np.sum(np.square(t - p), axis=0)
    ss_tot = np.sum(np.square(t - t.mean(axis=0)), axis=0)
    return _mean_ratio_score(ss_res, ss_tot)


def explained_variance(preds, targets) -> float:
    """1 - Var[targets - preds] / Var[targets] (ignores a constant bias, unlike r2); for (N, K)
    arrays, the mean over columns; constant target columns are treated as in `r2`."""
    p, t = _regression_pair(preds, targets)
    _need_two(t)
    return _mean_ratio_score(np.var(t - p, axis=0), np.var(t, axis=0))


def _need_two(t: np.ndarray) -> None:
    if t.ndim > 2:
        raise DataError(f"targets: expected shape (N,) or (N, K), found {t.shape}")
    if len(t) < 2:
        raise DataError(f"r2/explained variance need at least two examples, found {len(t)}")


def _mean_ratio_score(residual, total) -> float:
    residual, total = np.atleast_1d(residual), np.atleast_1d(total)
    safe = np.where(total > 0, total, 1.0)
    scores = np.where(total > 0, 1.0 - residual / safe, np.where(residual == 0, 1.0, 0.0))
    return float(np.mean(scores))


# tinynn's names
mean_square_error = mse
mean_absolute_error = mae
r_square = r2
explained_variation = explained_variance
