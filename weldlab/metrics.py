"""Detection metrics from per-patch scores (higher = more anomalous).

Okay patches are the negatives, everything else (defects, synthetic indications,
unexpected inputs) the positives. A patch is flagged when its score is *strictly* above
the threshold.
"""

from __future__ import annotations


import numpy as np
from scipy import stats

from .thresholds import DEFAULT_FPR, threshold_at_fpr


def tpr_at_fpr(scores_okay, scores_positive, fpr=DEFAULT_FPR):
    """True positive rate at the threshold of :func:`weldlab.thresholds.threshold_at_fpr`.

    Returns
    -------
    dict
        ``tpr``, ``threshold``, ``fpr`` (realised), ``n_okay``, ``n_positive``.
    """
    t, realised = threshold_at_fpr(scores_okay, fpr)
    pos = np.asarray(scores_positive, float)
    return {"tpr": float(np.mean(pos > t)) if pos.size else float("nan"), "threshold": t,
            "fpr": realised, "n_okay": int(np.size(scores_okay)), "n_positive": int(pos.size)}


def roc_curve(scores_okay, scores_positive):
    """ROC curve over every distinct threshold.

    Returns
    -------
    fpr, tpr, thresholds : ndarray, shape (m,)
        From the highest threshold (nothing flagged) down to below the lowest score
        (everything flagged).
    """
    neg, pos = np.asarray(scores_okay, float), np.asarray(scores_positive, float)
    thr = np.unique(np.concatenate([neg, pos]))[::-1]
    neg_sorted, pos_sorted = np.sort(neg), np.sort(pos)
    # count of scores strictly above each threshold
    fp = neg.size - np.searchsorted(neg_sorted, thr, side="right")
    tp = pos.size - np.searchsorted(pos_sorted, thr, side="right")
    fpr = np.concatenate([fp / max(neg.size, 1), [1.0]])
    tpr = np.concatenate([tp / max(pos.size, 1), [1.0]])
    thr = np.concatenate([thr, [-np.inf]])
    return fpr, tpr, thr


def auroc(scores_okay, scores_positive):
    """Area under the ROC curve (Mann-Whitney U statistic; ties count one half)."""
    neg, pos = np.asarray(scores_okay, float), np.asarray(scores_positive, float)
    if neg.size == 0 or pos.size == 0:
        return float("nan")
    ranks = stats.rankdata(np.concatenate([neg, pos]))
    u = ranks[neg.size:].sum() - pos.size * (pos.size + 1) / 2
    return float(u / (neg.size * pos.size))


def accuracy_and_precision(fpr, tpr, n_okay, n_positive):
    """Accuracy and precision along a ROC curve for given class sizes (paper Fig. 10).

    Returns
    -------
    accuracy, precision : ndarray, shape like ``fpr``
        Precision is NaN where nothing is flagged.
    """
    fpr, tpr = np.asarray(fpr, float), np.asarray(tpr, float)
    tp, fp = tpr * n_positive, fpr * n_okay
    accuracy = (tp + (n_okay - fp)) / (n_okay + n_positive)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
    return accuracy, precision


def mean_and_spread(values):
    """The paper's summary over independently trained models: mean and (max - min) / 2."""
    v = np.asarray(values, float)
    if v.size == 0:
        raise ValueError("values: nothing to summarise")
    return float(v.mean()), float((v.max() - v.min()) / 2)
