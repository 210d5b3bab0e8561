"""Loss functions (tinynn names, arguments and conventions), written in graph ops.

A loss is called while tracing, `loss(pred, target) -> f32[]`, and returns the MEAN OVER THE
BATCH of a per-example loss that SUMS over the example's other axes (tinynn's convention:
sum(...) / N), with N the (symbolic) batch size:

    MSE                  0.5 * sum((pred - y)^2) / N
    MAE                  sum(|pred - y|) / N
    Huber(delta)         sum(0.5 e^2 if |e| < delta else delta * (|e| - 0.5 delta)) / N
    SoftmaxCrossEntropy  -sum(w[c] * y[c] * log_softmax(logits / T)[c]) / N
    SigmoidCrossEntropy  sum(w * (max(a, 0) - a * y + log(1 + exp(-|a|)))) / N

SoftmaxCrossEntropy takes integer class indices (N,) or one-hot / probability rows (N, C);
`weight` (C,) weighs each class (with index labels, each example by its class's weight; the
sum is still divided by N, as in tinynn). T is the softmax temperature.
SigmoidCrossEntropy's `weight` multiplies each output column (broadcast over the last axis).

Each loss also checks and converts numpy targets before they reach native code
(`prepare_targets`): the Model calls it on every batch. It is cheap (a dtype/shape test and,
for class indices, one min and one max) and raises DataError naming the bad label and its
index.
"""
from __future__ import annotations

import numbers
from typing import Optional

import numpy as np

from ir import dtypes as _dt
from ir.errors import AttrError, DataError, DTypeError, ShapeError
from ir.location import user_frame_loc
from ir.symbolic import format_shape
from ir.types import TensorType

from . import functional as F
from .tensor import Tensor, as_tensor


def _batch_mean_of_sums(per_element: Tensor) -> Tensor:
    """sum over every axis but the first, then the mean over the first (the batch)."""
    if per_element.ndim == 0:
        return per_element
    if per_element.ndim > 1:
        per_element = F.sum(per_element, tuple(range(1, per_element.ndim)))
    return F.mean(per_element)


def _first_bad_index(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


class Loss:
    """Base class. Subclasses define `compute(pred, target)` (Tensors) and may override
    `prepare_targets`. `default_metrics` are the metrics Model.fit reports by default."""

    default_metrics: tuple = ()

    def __call__(self, pred, target) -> Tensor:
        pred = as_tensor(pred, op=type(self).__name__)
        if not pred.dtype.is_float:
            raise DTypeError(f"{type(self).__name__}: predictions must be float, found "
                             f"{pred.type}", user_frame_loc())
        target = as_tensor(target, pred, type(self).__name__)
        return self.compute(pred, target)

    def compute(self, pred: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    # -- numpy targets at the Python boundary --------------------------------------------------
    def prepare_targets(self, y, pred_type: TensorType) -> np.ndarray:
        """Float targets shaped like the predictions (a (N,) target for (N, 1) predictions is
        reshaped), as float32."""
        y = np.asarray(y)
        if y.dtype.kind not in "biuf":
            raise DataError(f"{type(self).__name__}: targets must be numbers, found dtype "
                            f"{y.dtype}")
        want = tuple(pred_type.shape[1:])
        if y.ndim == 1 and want == (1,):
            y = y.reshape(-1, 1)
        if y.ndim == 0 or tuple(y.shape[1:]) != want:
            raise DataError(f"{type(self).__name__}: expected targets of shape "
                            f"{format_shape(pred_type.shape)} like the predictions, found "
                            f"{y.shape}")
        return y if y.dtype == np.float32 else y.astype(np.float32)

    def target_type(self, y: np.ndarray, pred_type: TensorType) -> TensorType:
        """The graph input type for targets like `y` (already prepared)."""
        return TensorType((pred_type.shape[0],) + tuple(y.shape[1:]), _dt.dtype(y.dtype))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k.lstrip('_')}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class MSE(Loss):
    def compute(self, pred, target):
        err = pred - target
        return _batch_mean_of_sums(err * err) * 0.5


class MAE(Loss):
    def compute(self, pred, target):
        return _batch_mean_of_sums(F.abs(pred - target))


class Huber(Loss):
    def __init__(self, delta: float = 1.0):
        if isinstance(delta, bool) or not isinstance(delta, numbers.Real) or not delta > 0:
            raise AttrError(f"Huber: delta must be a positive number, found {delta!r}",
                            user_frame_loc())
        self.delta = float(delta)

    def compute(self, pred, target):
        a = F.abs(pred - target)
        quadratic = a * a * 0.5
        linear = (a - 0.5 * self.delta) * self.delta
        return _batch_mean_of_sums(F.where(a < self.delta, quadratic, linear))


def _class_weight(weight, who: str) -> Optional[np.ndarray]:
    if weight is None:
        return None
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != 1 or w.size == 0 or not np.all(np.isfinite(w)):
        raise AttrError(f"{who}: weight must be a 1-D array of finite numbers (one per class), "
                        f"found {weight!r:.80}", user_frame_loc())
    return w.astype(np.float32)


class SoftmaxCrossEntropy(Loss):
    """Softmax cross entropy of logits (N, C) against class indices (N,) or one-hot /
    probability rows (N, C); see the module docstring for T and weight."""

    default_metrics = ("accuracy",)

    def __init__(self, T: float = 1.0, weight=None):
        if isinstance(T, bool) or not isinstance(T, numbers.Real) or not T > 0:
            raise AttrError(f"SoftmaxCrossEntropy: the temperature T must be a positive "
                            f"number, found {T!r}", user_frame_loc())
        self.T = float(T)
        self.weight = _class_weight(weight, "SoftmaxCrossEntropy")

    def compute(self, logits, labels):
        if logits.ndim != 2:
            raise ShapeError(f"SoftmaxCrossEntropy: expected logits (N, C), found {logits.type}",
                             user_frame_loc())
        classes = logits.shape[1]
        if self.weight is not None and self.weight.shape != (classes,):
            raise ShapeError(f"SoftmaxCrossEntropy: weight has {self.weight.size} entries but "
                             f"the logits have {classes} classes", user_frame_loc())
        if labels.dtype.is_int:
            if labels.ndim != 1:
                raise ShapeError(f"SoftmaxCrossEntropy: integer labels must be (N,), found "
                                 f"{labels.type}", user_frame_loc())
            labels = F.one_hot(labels, classes, logits.dtype)
        elif tuple(labels.shape) != tuple(logits.shape):
            raise ShapeError(f"SoftmaxCrossEntropy: one-hot labels must have the logits' shape "
                             f"{logits.type}, found {labels.type}", user_frame_loc())
        z = logits if self.T == 1.0 else logits * (1.0 / self.T)
        picked = F.log_softmax(z, axis=-1) * labels
        if self.weight is not None:
            picked = picked * self.weight.astype(logits.dtype.np_dtype)
        return -F.mean(F.sum(picked, axis=1))

    def prepare_targets(self, y, pred_type):
        y = np.asarray(y)
        classes = pred_type.shape[1]
        if y.dtype.kind in "iu" and y.ndim == 1:
            if y.size:
                lo, hi = y.min(), y.max()
                if lo < 0 or hi >= classes:
                    i = _first_bad_index((y < 0) | (y >= classes))
                    raise DataError(f"labels: expected class indices in 0..{classes - 1}, found "
                                    f"label {y[i]} at index {i}")
            return y if y.dtype == np.int64 else y.astype(np.int64)
        if y.dtype.kind == "f" and y.ndim == 2 and y.shape[1] == classes:
            return y if y.dtype == np.float32 else y.astype(np.float32)
        raise DataError(f"labels: expected integer class indices of shape (N,) or one-hot rows "
                        f"of shape (N, {classes}), found {y.dtype} labels of shape {y.shape}")


class SigmoidCrossEntropy(Loss):
    """Binary cross entropy of logits against targets in [0, 1] of the same shape, computed
    stably as max(a, 0) - a y + log1p(exp(-|a|))."""

    default_metrics = ()

    def __init__(self, weight=None):
        self.weight = _class_weight(weight, "SigmoidCrossEntropy")

    def compute(self, logits, labels):
        if tuple(labels.shape) != tuple(logits.shape):
            raise ShapeError(f"SigmoidCrossEntropy: labels must have the logits' shape "
                             f"{logits.type}, found {labels.type}", user_frame_loc())
        cost = F.relu(logits) - logits * labels + F.log1p(F.exp(-F.abs(logits)))
        if self.weight is not None:
            if logits.ndim == 0 or logits.shape[-1] != self.weight.shape[0]:
                raise ShapeError(f"SigmoidCrossEntropy: weight has {self.weight.size} entries, "
                                 f"the logits' last axis has {logits.shape[-1:]}",
                                 user_frame_loc())
            cost = cost * self.weight.astype(logits.dtype.np_dtype)
        return _batch_mean_of_sums(cost)


BY_NAME = {"mse": MSE, "mae": MAE, "huber": Huber, "softmax_cross_entropy": SoftmaxCrossEntropy,
           "sigmoid_cross_entropy": SigmoidCrossEntropy}


def get(spec) -> Loss:
    """A Loss from an instance, a Loss subclass or a name ("mse", "softmax_cross_entropy")."""
    if isinstance(spec, Loss):
        return spec
    if isinstance(spec, type) and issubclass(spec, Loss):
        return spec()
    if isinstance(spec, str) and spec.lower() in BY_NAME:
        return BY_NAME[spec.lower()]()
    raise AttrError(f"unknown loss {spec!r}; expected a graphc.losses.Loss or one of "
                    f"{', '.join(BY_NAME)}")
