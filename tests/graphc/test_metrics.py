"""graphc.metrics against hand computations and independent brute-force formulas."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from graphc import metrics
from graphc.metrics import (accuracy, auc, explained_variance, f1, log_loss, mae, mse, precision,
                            r2, recall)
from ir.errors import DataError

# -- accuracy -------------------------------------------------------------------------------------


def test_accuracy_from_indices_scores_probabilities_and_one_hot():
    assert accuracy([0, 1, 2, 2], [0, 2, 2, 1]) == 0.5
    scores = np.array([[2.0, 1.0, 0.1], [0.1, 0.2, 3.0], [0.0, 5.0, 1.0]])
    one_hot = np.eye(3)[[0, 2, 2]]
    assert accuracy(scores, [0, 2, 1]) == 1.0
    assert accuracy(scores, one_hot) == pytest.approx(2 / 3)     # row 3 predicts 1, not 2
    probs = np.array([0.2, 0.7, 0.5, 0.49])          # P(class 1), thresholded at 0.5
    assert accuracy(probs, [0, 1, 1, 1]) == 0.75
    assert accuracy(probs[:, None], np.array([[0], [1], [1], [1]])) == 0.75
    assert accuracy(probs, [0, 1, 1, 1], threshold=0.45) == 1.0
    assert accuracy(np.array([0.0, 1.0, 1.0]), [0, 1, 0]) == pytest.approx(2 / 3)


def test_every_metric_returns_a_python_float():
    y = np.array([0, 1, 1, 0])
    results = [accuracy(y, y), precision(y, y), recall(y, y), f1(y, y),
               auc(np.array([0.1, 0.9, 0.8, 0.3]), y), log_loss(np.full(4, 0.5), y),
               mse(y * 1.0, y * 2.0), mae(y, y), r2(y + 0.5, y), explained_variance(y, y)]
    assert all(type(r) is float for r in results)


def test_accuracy_validation():
    with pytest.raises(DataError, match=r"same number of examples, found 3 preds \(3,\) and 2 "
                                        r"targets \(2,\)"):
        accuracy([0, 1, 2], [0, 1])
    with pytest.raises(DataError, match=r"targets: expected integer class labels, found 0.5 at "
                                        r"index 1"):
        accuracy([0, 1], [0, 0.5])
    with pytest.raises(DataError, match=r"expected class indices \(N,\) or scores \(N, K\), found "
                                        r"shape \(2, 2, 2\)"):
        accuracy(np.zeros((2, 2, 2)), [0, 1])
    with pytest.raises(DataError, match=r"at least one example"):
        accuracy([], [])
    with pytest.raises(DataError, match=r"preds: expected finite values, found nan"):
        accuracy(np.array([[0.1, np.nan]]), [0])
    with pytest.raises(DataError, match=r"numeric array"):
        accuracy(["a"], [0])


# -- precision / recall / f1 ----------------------------------------------------------------------

BIN_PREDS = [1, 1, 1, 0, 1, 0]
BIN_TARGETS = [1, 0, 0, 1, 1, 0]   # TP = 2, FP = 2, FN = 1


def test_binary_precision_recall_f1_by_hand():
    assert precision(BIN_PREDS, BIN_TARGETS) == pytest.approx(2 / 4)
    assert recall(BIN_PREDS, BIN_TARGETS) == pytest.approx(2 / 3)
    assert f1(BIN_PREDS, BIN_TARGETS) == pytest.approx(4 / 7)
    assert metrics.f1_score(BIN_PREDS, BIN_TARGETS) == pytest.approx(4 / 7)
    # class 0 as the positive class: TP = 1, FP = 1, FN = 2
    assert precision(BIN_PREDS, BIN_TARGETS, pos_label=0) == pytest.approx(1 / 2)
    assert recall(BIN_PREDS, BIN_TARGETS, pos_label=0) == pytest.approx(1 / 3)
    assert f1(BIN_PREDS, BIN_TARGETS, pos_label=0) == pytest.approx(0.4)


def test_binary_zero_division_gives_zero():
    assert precision([0, 0, 0], [1, 0, 1]) == 0.0       # nothing predicted positive
    assert recall([1, 0, 1], [0, 0, 0]) == 0.0          # no positive targets
    assert f1([0, 0], [0, 0]) == 0.0


MC_PREDS = [0, 1, 1, 1, 2, 0, 2]
MC_TARGETS = [0, 0, 1, 1, 2, 2, 2]
# per class (P, R, F1, support): 0: (1/2, 1/2, 1/2, 2); 1: (2/3, 1, 4/5, 2); 2: (1, 2/3, 4/5, 3)


def test_multiclass_averages_by_hand():
    assert precision(MC_PREDS, MC_TARGETS, average="macro") == pytest.approx((1/2 + 2/3 + 1) / 3)
    assert recall(MC_PREDS, MC_TARGETS, average="macro") == pytest.approx((1/2 + 1 + 2/3) / 3)
    assert f1(MC_PREDS, MC_TARGETS, average="macro") == pytest.approx((1/2 + 4/5 + 4/5) / 3)
    assert precision(MC_PREDS, MC_TARGETS, average="weighted") == \
        pytest.approx((2 * 1/2 + 2 * 2/3 + 3 * 1) / 7)
    assert recall(MC_PREDS, MC_TARGETS, average="weighted") == pytest.approx(5 / 7)
    assert f1(MC_PREDS, MC_TARGETS, average="weighted") == \
        pytest.approx((2 * 1/2 + 2 * 4/5 + 3 * 4/5) / 7)
    for fn in (precision, recall, f1):
        assert fn(MC_PREDS, MC_TARGETS, average="micro") == pytest.approx(5 / 7)


def confusion_by_loops(preds, targets, classes):
    """Independent per-class TP/FP/FN by explicit loops."""
    counts = {c: [0, 0, 0] for c in classes}
    for p, t in zip(preds, targets):
        if p == t:
            counts[p][0] += 1
        else:
            counts[p][1] += 1
            counts[t][2] += 1
    return counts


def safe_div(a, b):
    return a / b if b else 0.0


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=40))
def test_multiclass_matches_loop_formula(pairs):
    preds, targets = [p for p, _ in pairs], [t for _, t in pairs]
    classes = sorted(set(preds) | set(targets))
    counts = confusion_by_loops(preds, targets, classes)
    per = {c: (safe_div(tp, tp + fp), safe_div(tp, tp + fn)) for c, (tp, fp, fn) in counts.items()}
    f1s = {c: safe_div(2 * p * r, p + r) for c, (p, r) in per.items()}
    support = {c: targets.count(c) for c in classes}
    assert precision(preds, targets, average="macro") == \
        pytest.approx(np.mean([per[c][0] for c in classes]))
    assert recall(preds, targets, average="macro") == \
        pytest.approx(np.mean([per[c][1] for c in classes]))
    assert f1(preds, targets, average="macro") == pytest.approx(np.mean(list(f1s.values())))
    assert f1(preds, targets, average="weighted") == \
        pytest.approx(sum(f1s[c] * support[c] for c in classes) / len(targets))
    assert f1(preds, targets, average="micro") == pytest.approx(accuracy(preds, targets))


def test_prf_validation():
    with pytest.raises(DataError, match=r"average='binary' needs at most two classes, found "
                                        r"labels \[0, 1, 2\]; pass average='macro'"):
        precision(MC_PREDS, MC_TARGETS)
    with pytest.raises(DataError, match=r"average must be one of binary, macro, micro, weighted"):
        recall(MC_PREDS, MC_TARGETS, average="samples")
    with pytest.raises(DataError, match=r"pos_label=1 is not one of the labels found, \[2, 3\]"):
        f1([2, 3], [3, 2])


# -- auc ------------------------------------------------------------------------------------------

def test_auc_by_hand_with_and_without_ties():
    assert auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    # pairs (pos, neg): .5>.2, .5=.5 (half), .9>.2, .9>.5  ->  3.5 / 4
    assert auc([0.2, 0.5, 0.5, 0.9], [0, 0, 1, 1]) == pytest.approx(0.875)
    assert auc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == pytest.approx(0.5)
    assert auc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert auc([4, 3, 2, 1], [0, 0, 1, 1]) == 0.0


def test_auc_accepts_two_column_scores_and_one_hot_targets():
    p1 = np.array([0.1, 0.4, 0.35, 0.8])
    two_col = np.stack([1 - p1, p1], axis=1)
    assert auc(two_col, np.eye(2)[[0, 0, 1, 1]]) == pytest.approx(0.75)
    assert auc(p1[:, None], [0, 0, 1, 1]) == pytest.approx(0.75)


def pairwise_auc(scores, targets):
    pos = [s for s, t in zip(scores, targets) if t == 1]
    neg = [s for s, t in zip(scores, targets) if t != 1]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def trapezoid_roc_auc(scores, targets):
    """Area under the ROC curve traced threshold by threshold (ties move diagonally)."""
    scores, targets = np.asarray(scores, float), np.asarray(targets)
    n_pos, n_neg = np.sum(targets == 1), np.sum(targets != 1)
    fpr, tpr = [0.0], [0.0]
    for threshold in sorted(set(scores.tolist()), reverse=True):
        predicted = scores >= threshold
        tpr.append(np.sum(predicted & (targets == 1)) / n_pos)
        fpr.append(np.sum(predicted & (targets != 1)) / n_neg)
    return sum((fpr[i + 1] - fpr[i]) * (tpr[i + 1] + tpr[i]) / 2 for i in range(len(fpr) - 1))


@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 1)), min_size=2, max_size=40)
       .filter(lambda pairs: len({t for _, t in pairs}) == 2))
def test_auc_matches_pairwise_and_roc_curve(pairs):
    scores = [s / 6 for s, _ in pairs]     # few distinct values: many ties
    targets = [t for _, t in pairs]
    got = auc(scores, targets)
    assert got == pytest.approx(pairwise_auc(scores, targets))
    assert got == pytest.approx(trapezoid_roc_auc(scores, targets))
    assert auc(scores, targets, pos_label=0) == pytest.approx(1 - got)


def test_auc_validation():
    with pytest.raises(DataError, match=r"needs both classes in targets, found 3 positive"):
        auc([0.1, 0.2, 0.3], [1, 1, 1])
    with pytest.raises(DataError, match=r"binary problems; targets hold classes \[0, 1, 2\]"):
        auc([0.1, 0.2, 0.3], [0, 1, 2])
    with pytest.raises(DataError, match=r"scores: expected finite values"):
        auc([0.1, np.inf], [0, 1])
    with pytest.raises(DataError, match=r"scores: expected shape \(N,\), \(N, 1\) or \(N, 2\)"):
        auc(np.zeros((2, 3)), [0, 1])


# -- log_loss -------------------------------------------------------------------------------------

def test_log_loss_binary_and_multiclass_by_hand():
    expected = -(math.log(0.9) + math.log(0.8) + math.log(0.6)) / 3
    assert log_loss([0.9, 0.2, 0.6], [1, 0, 1]) == pytest.approx(expected)
    assert log_loss(np.array([[0.9], [0.2], [0.6]]), np.array([[1], [0], [1]])) == \
        pytest.approx(expected)
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    expected = -(math.log(0.7) + math.log(0.8)) / 2
    assert log_loss(probs, [0, 2]) == pytest.approx(expected)
    assert log_loss(probs, np.eye(3)[[0, 2]]) == pytest.approx(expected)
    # a two-column multiclass problem equals the binary form on column 1
    p1 = np.array([0.9, 0.2, 0.6])
    assert log_loss(np.stack([1 - p1, p1], 1), [1, 0, 1]) == pytest.approx(log_loss(p1, [1, 0, 1]))


def test_log_loss_soft_targets_and_clipping():
    # soft binary target 0.25 against p = 0.5: -(0.25 ln .5 + 0.75 ln .5) = ln 2
    assert log_loss([0.5], [0.25]) == pytest.approx(math.log(2))
    # confident and wrong: clipped to eps, finite (1 - 1e-15 rounds in float64: loose rel)
    assert log_loss([1.0, 0.0], [0, 1]) == pytest.approx(-math.log(1e-15), rel=1e-4)
    assert log_loss([1.0, 0.0], [0, 1], eps=1e-7) == pytest.approx(-math.log(1e-7), rel=1e-6)


def test_log_loss_validation():
    with pytest.raises(DataError, match=r"probs: expected values in \[0, 1\] \(apply sigmoid/"
                                        r"softmax to logits first\), found 2.5"):
        log_loss([0.5, 2.5], [0, 1])
    with pytest.raises(DataError, match=r"class indices in 0..1 \(probs have 2 columns\), found 2 "
                                        r"at index 1"):
        log_loss(np.full((2, 2), 0.5), [0, 2])
    with pytest.raises(DataError, match=r"expected class indices \(N,\) or one-hot \(2, 2\), "
                                        r"found \(2, 3\)"):
        log_loss(np.full((2, 2), 0.5), np.zeros((2, 3)))
    with pytest.raises(DataError, match=r"same number of examples"):
        log_loss([0.5, 0.5], [1])


# -- regression -----------------------------------------------------------------------------------

def test_mse_mae_by_hand():
    assert mse([1.0, 2.0, 4.0], [1.0, 0.0, 1.0]) == pytest.approx((0 + 4 + 9) / 3)
    assert mae([1.0, 2.0, 4.0], [1.0, 0.0, 1.0]) == pytest.approx((0 + 2 + 3) / 3)
    # (N, K): summed over the K outputs, averaged over the N examples (tinynn)
    preds, zeros = np.array([[1.0, 2.0], [3.0, 4.0]]), np.zeros((2, 2))
    assert mse(preds, zeros) == pytest.approx(((1 + 4) + (9 + 16)) / 2)
    assert mae(preds, zeros) == pytest.approx(((1 + 2) + (3 + 4)) / 2)
    assert metrics.mean_square_error(preds, zeros) == mse(preds, zeros)


def test_r2_and_explained_variance_by_hand():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert r2([1.0, 2.0, 3.0, 5.0], y) == pytest.approx(1 - 1 / 5)   # SS_res 1, SS_tot 5
    assert r2(np.full(4, y.mean()), y) == pytest.approx(0.0)
    assert r2(y, y) == 1.0
    # a constant bias: explained variance ignores it, r2 does not
    assert explained_variance(y + 3, y) == pytest.approx(1.0)
    assert r2(y + 3, y) == pytest.approx(1 - 36 / 5)
    cols = np.stack([y, 2 * y], axis=1)
    preds = np.stack([[1.0, 2.0, 3.0, 5.0], 2 * y], axis=1)
    assert r2(preds, cols) == pytest.approx((0.8 + 1.0) / 2)       # mean over columns
    # a constant target column: 1.0 if predicted exactly, else 0.0
    assert r2([2.0, 2.0], [2.0, 2.0]) == 1.0
    assert r2([2.0, 3.0], [2.0, 2.0]) == 0.0


@given(st.lists(st.tuples(st.floats(-100, 100), st.floats(-100, 100)), min_size=2, max_size=30)
       .filter(lambda pairs: np.var([t for _, t in pairs]) > 1e-3))
def test_r2_matches_variance_formula(pairs):
    preds = np.array([p for p, _ in pairs])
    targets = np.array([t for _, t in pairs])
    assert r2(preds, targets) == pytest.approx(1 - mse(preds, targets) / np.var(targets),
                                               rel=1e-9, abs=1e-9)
    residual = targets - preds
    assert explained_variance(preds, targets) == pytest.approx(
        1 - np.mean((residual - residual.mean()) ** 2) / np.var(targets), rel=1e-9, abs=1e-9)


def test_regression_validation():
    with pytest.raises(DataError, match=r"same shape, found \(3,\) and \(3, 1\) \(no broadcasting"):
        mse(np.zeros(3), np.zeros((3, 1)))
    with pytest.raises(DataError, match=r"at least two examples, found 1"):
        r2([1.0], [2.0])
    with pytest.raises(DataError, match=r"targets: expected shape \(N,\) or \(N, K\)"):
        r2(np.zeros((2, 2, 2)), np.ones((2, 2, 2)))
    with pytest.raises(DataError, match=r"preds: expected finite values, found nan"):
        mae([np.nan], [1.0])
