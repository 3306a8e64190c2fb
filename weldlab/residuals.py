"""Residual analysis (paper §3.1, Eq. 8-9): 9 x 9 kernel statistics and thresholds.

The residual of a patch is ``r = crop(x) - AE(x)`` (156 x 156). Over every 9 x 9 window
(stride 1, valid positions: 148 x 148 of them) we take the mean ``<r>`` and the standard
deviation ``sigma(r)``. Both come from box filters of ``r`` and ``r**2``
(``scipy.ndimage.uniform_filter``): constant work per pixel, no loop over windows.

A window is anomalous when ``|<r>| > t_mean`` or ``sigma(r) > t_std``; a patch is flagged
when any window is (the OR rule). So a patch is summarised by its two maxima, and flagged
when either maximum exceeds its threshold.

**Thresholds at a patch-level FPR** (:func:`calibrate_thresholds`). Many pairs
``(t_mean, t_std)`` give the same false positive rate under the OR rule. We choose the pair
whose two statistics are exceeded equally often on the okay calibration patches: both
thresholds are the ``1 - q`` quantiles of their maxima, with the largest ``q`` for which
the OR rule flags at most ``fpr`` of the okay patches. This choice is ours (the paper does
not say how it combined the two).

**One score per patch for ROC curves** (:func:`combined_score`, method.md §5):
``max(max|<r>| / t_mean, max sigma / t_std)``; a patch is flagged exactly when its score
is above 1.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage as ndi

KERNEL = 9


class CalibrationWarning(UserWarning):
    """Too few okay patches to resolve the requested false positive rate."""


def kernel_statistics(residual, kernel=KERNEL):
    """Local mean and standard deviation of residuals over ``k x k`` windows.

    Parameters
    ----------
    residual : ndarray, shape (n, H, W) or (H, W)
        Residual images.
    kernel : int
        Window side (paper: 9).

    Returns
    -------
    mean, std : ndarray, shape (n, H - k + 1, W - k + 1) (or without ``n``)
        float64; entry ``[i, j]`` describes the window whose top-left pixel is ``(i, j)``.
    """
    r = np.asarray(residual, np.float64)
    single = r.ndim == 2
    if single:
        r = r[None]
    if r.ndim != 3:
        raise ValueError(f"residual: expected shape (n, H, W) or (H, W), got {np.shape(residual)}")
    if not np.isfinite(r).all():
        raise ValueError("residual: contains NaN or infinite values")
    k = int(kernel)
    if k < 1 or k > min(r.shape[1:]):
        raise ValueError(f"kernel: expected 1 <= k <= {min(r.shape[1:])}, got {kernel!r}")
    lo = k // 2  # uniform_filter centres its window; keep the centres of full windows
    sl = (slice(None), slice(lo, lo + r.shape[1] - k + 1), slice(lo, lo + r.shape[2] - k + 1))
    m = ndi.uniform_filter(r, size=(1, k, k), mode="constant")[sl]
    m2 = ndi.uniform_filter(r * r, size=(1, k, k), mode="constant")[sl]
    s = np.sqrt(np.maximum(m2 - m * m, 0.0))
    return (m[0], s[0]) if single else (m, s)


def patch_maxima(residual, kernel=KERNEL, chunk=256):
    """Per-patch maxima of ``|<r>|`` and ``sigma(r)`` (memory bounded by ``chunk``).

    Parameters
    ----------
    residual : ndarray, shape (n, H, W)

    Returns
    -------
    max_mean, max_std : ndarray, shape (n,)
    """
    n = len(residual)
    mm, ms = np.empty(n), np.empty(n)
    for i in range(0, n, chunk):
        m, s = kernel_statistics(residual[i : i + chunk], kernel)
        mm[i : i + chunk] = np.abs(m).reshape(len(m), -1).max(1)
        ms[i : i + chunk] = s.reshape(len(s), -1).max(1)
    return mm, ms


def calibrate_thresholds(max_mean, max_std, fpr=0.001):
    """Thresholds for a patch-level false positive rate under the OR rule.

    Parameters
    ----------
    max_mean, max_std : ndarray, shape (n,)
        Per-patch maxima of okay calibration patches (:func:`patch_maxima`).
    fpr : float
        Target false positive rate, e.g. 0.001.

    Returns
    -------
    dict
        ``t_mean``, ``t_std``, ``fpr_target``, ``fpr_calibration`` (realised on these
        patches), ``n_okay`` and ``resolvable`` (False when ``n_okay * fpr < 1``: then no
        okay patch may be flagged, the thresholds are the maxima, and a
        :class:`CalibrationWarning` is issued).
    """
    a, b = np.asarray(max_mean, float), np.asarray(max_std, float)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"max_mean, max_std: expected two equal 1-D arrays, got {a.shape} and {b.shape}")
    if not 0 < fpr < 1:
        raise ValueError(f"fpr: expected a rate in (0, 1), got {fpr!r}")
    n = a.size
    allowed = int(np.floor(fpr * n + 1e-9))  # okay patches that may be flagged
    resolvable = allowed >= 1
    if not resolvable:
        warnings.warn(
            f"{n} okay patches cannot resolve a false positive rate of {fpr:g} "
            f"(need at least {int(np.ceil(1 / fpr))}); thresholds set to the largest okay values, "
            "so the realised rate on these patches is 0 and on new data is unknown",
            CalibrationWarning, stacklevel=2,
        )
    # Rank of each patch's statistics from the top (0 = largest); a threshold just below
    # the j-th largest value flags the j+1 largest. Search the largest common count j
    # such that the OR rule flags at most `allowed` patches.
    sa, sb = np.sort(a)[::-1], np.sort(b)[::-1]

    def flagged(j):
        j = min(j, n - 1)
        return int(np.count_nonzero((a > sa[j]) | (b > sb[j])))

    # flagged(j) never decreases with j: bisect for the largest j within the budget.
    lo, hi = 0, min(allowed, n - 1)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if flagged(mid) <= allowed:
            lo = mid
        else:
            hi = mid - 1
    t_mean, t_std = float(sa[lo]), float(sb[lo])
    realised = float(np.mean((a > t_mean) | (b > t_std)))
    return {"t_mean": t_mean, "t_std": t_std, "fpr_target": float(fpr), "fpr_calibration": realised,
            "n_okay": int(n), "resolvable": bool(resolvable)}


def combined_score(max_mean, max_std, thresholds):
    """One scalar per patch: ``max(max|<r>| / t_mean, max sigma / t_std)``.

    A patch is flagged by the thresholds exactly when its score is above 1.
    """
    return np.maximum(np.asarray(max_mean) / thresholds["t_mean"], np.asarray(max_std) / thresholds["t_std"])


def flagged_windows(residual, thresholds, kernel=KERNEL):
    """Which windows fire, and by which test (for the Fig. 5-8 panels).

    Parameters
    ----------
    residual : ndarray, shape (H, W)

    Returns
    -------
    ndarray, shape (H - k + 1, W - k + 1), int8
        0 none, 1 mean only, 2 std only, 3 both.
    """
    return window_flags(*kernel_statistics(residual, kernel), thresholds)


def window_flags(mean, std, thresholds):
    """Flag codes from precomputed window statistics (see :func:`flagged_windows`).

    Parameters
    ----------
    mean, std : ndarray, same shape
        From :func:`kernel_statistics`.

    Returns
    -------
    ndarray, same shape, int8
    """
    return ((np.abs(mean) > thresholds["t_mean"]).astype(np.int8)
            + 2 * (std > thresholds["t_std"]).astype(np.int8))
