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

**The two-sided rule** (issue 14; not in the paper). The OR rule only asks whether a
residual is too *large*. An autoencoder reconstructs a flat, blurred or over-exposed input
almost perfectly, so its residual is *smaller* than any real film's grain allows. With
``min_std`` (per patch, the minimum of the residual's standard deviation over the
:data:`QUIET_KERNEL` x :data:`QUIET_KERNEL` neighbourhoods, :func:`patch_maxima` with
``quiet=True``) :func:`calibrate_thresholds` adds a third threshold ``t_quiet``: a window
is also flagged when the neighbourhood centred on it has ``sigma(r) < t_quiet``
(:func:`quiet_std`). The neighbourhood is larger than 9 x 9 because okay films have small
clipped (black) spots whose 9 x 9 residual is as quiet as a blank frame's; over 25 x 25 px
the grain of the okay validation patches never fell below 0.0016, while blank frames stayed
below 0.0013 (measured with the shipped autoencoder).

How the budget is shared (our choice): the paper's pair ``(t_mean, t_std)`` is calibrated
first, exactly as for Tables 2-3, and the quiet test gets what it leaves: ``t_quiet`` is
set so that, among the okay patches the pair does not flag, at most the remaining number
fall below it. When the pair uses the whole budget (the usual case) ``t_quiet`` is the
smallest minimum of the okay calibration patches, and the two-sided rule flags exactly the
okay patches the paper's rule flags. So both rules have the same ``t_mean``, ``t_std`` and
calibrated false positive rate; the quiet test's own rate on new okay data is about
``1 / (n_okay + 1)`` at most and is measured on the okay test patches (chapter 10).
(Sharing the budget by equal ranks instead, as between the two tests of the OR rule, put
all three thresholds at the validation extremes and raised ``t_std`` by a third, from
0.046 to 0.061, for the shipped autoencoder.)

**One score per patch for ROC curves** (:func:`combined_score`, method.md §5):
``max(max|<r>| / t_mean, max sigma / t_std)`` (two-sided: also ``t_quiet / min sigma``); a
patch is flagged exactly when its score is above 1.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage as ndi

KERNEL = 9
#: Side of the neighbourhood whose residual spread the quiet test measures (px).
QUIET_KERNEL = 25


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


def patch_maxima(residual, kernel=KERNEL, chunk=256, quiet=False):
    """Per-patch maxima of ``|<r>|`` and ``sigma(r)`` (memory bounded by ``chunk``).

    Parameters
    ----------
    residual : ndarray, shape (n, H, W)
    quiet : bool
        Also return the per-patch minimum of ``sigma(r)`` (for the two-sided rule).

    Returns
    -------
    max_mean, max_std : ndarray, shape (n,)
    min_std : ndarray, shape (n,)
        Only with ``quiet``.
    """
    n = len(residual)
    mm, ms, mq = np.empty(n), np.empty(n), np.empty(n)
    for i in range(0, n, chunk):
        m, s = kernel_statistics(residual[i : i + chunk], kernel)
        mm[i : i + chunk] = np.abs(m).reshape(len(m), -1).max(1)
        ms[i : i + chunk] = s.reshape(len(s), -1).max(1)
        if quiet:
            q = kernel_statistics(residual[i : i + chunk], QUIET_KERNEL)[1]
            mq[i : i + chunk] = q.reshape(len(q), -1).min(1)
    return (mm, ms, mq) if quiet else (mm, ms)


def quiet_std(residual, kernel=KERNEL):
    """Residual spread over the :data:`QUIET_KERNEL` neighbourhood centred on each window.

    Parameters
    ----------
    residual : ndarray, shape (H, W)

    Returns
    -------
    ndarray, shape (H - kernel + 1, W - kernel + 1), float64
        Aligned with the maps of :func:`kernel_statistics`; near the border, where the
        neighbourhood would leave the residual, the nearest whole neighbourhood is used.
    """
    r = np.asarray(residual)
    q = kernel_statistics(r, QUIET_KERNEL)[1]
    pad = (QUIET_KERNEL - kernel) // 2
    return q[np.clip(np.arange(r.shape[0] - kernel + 1) - pad, 0, q.shape[0] - 1)][
        :, np.clip(np.arange(r.shape[1] - kernel + 1) - pad, 0, q.shape[1] - 1)]


def calibrate_thresholds(max_mean, max_std, fpr=0.001, min_std=None):
    """Thresholds for a patch-level false positive rate under the OR rule.

    Parameters
    ----------
    max_mean, max_std : ndarray, shape (n,)
        Per-patch maxima of okay calibration patches (:func:`patch_maxima`).
    fpr : float
        Target false positive rate, e.g. 0.001.
    min_std : ndarray, shape (n,), optional
        Per-patch minima of the quiet neighbourhoods' ``sigma(r)``: calibrate the
        two-sided rule (``t_quiet`` too, within the same budget; see the module's
        description).

    Returns
    -------
    dict
        ``t_mean``, ``t_std`` (and with ``min_std``, ``t_quiet``), ``fpr_target``,
        ``fpr_calibration`` (realised on these patches), ``n_okay`` and ``resolvable``
        (False when ``n_okay * fpr < 1``: then no okay patch may be flagged, the
        thresholds are the extremes, and a :class:`CalibrationWarning` is issued).

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.residuals import calibrate_thresholds
    >>> rng = np.random.default_rng(0)
    >>> mean, std, quiet = rng.uniform(0, 1, (3, 2000))
    >>> th = calibrate_thresholds(mean, std, fpr=0.001, min_std=quiet)
    >>> sorted(th)[:3], th["fpr_calibration"] <= 0.001
    (['fpr_calibration', 'fpr_target', 'n_okay'], True)
    >>> bool(np.mean((mean > th["t_mean"]) | (std > th["t_std"]) | (quiet < th["t_quiet"])) <= 0.001)
    True
    """
    a, b = np.asarray(max_mean, float), np.asarray(max_std, float)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"max_mean, max_std: expected two equal 1-D arrays, got {a.shape} and {b.shape}")
    c = None if min_std is None else np.asarray(min_std, float)
    if c is not None and c.shape != a.shape:
        raise ValueError(f"min_std: expected shape {a.shape} like max_mean, got {c.shape}")
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

    def flags(j):
        j = min(j, n - 1)
        return (a > sa[j]) | (b > sb[j])

    def flagged(j):
        return int(np.count_nonzero(flags(j)))

    # flagged(j) never decreases with j: bisect for the largest j within the budget.
    lo, hi = 0, min(allowed, n - 1)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if flagged(mid) <= allowed:
            lo = mid
        else:
            hi = mid - 1
    out = {"t_mean": float(sa[lo]), "t_std": float(sb[lo])}
    flagged_okay = flags(lo)
    if c is not None:  # the quiet test gets what the pair leaves of the budget
        left = max(allowed - int(np.count_nonzero(flagged_okay)), 0)
        rest = np.sort(c[~flagged_okay])
        out["t_quiet"] = float(rest[min(left, rest.size - 1)]) if rest.size else float(c.min())
        flagged_okay = flagged_okay | (c < out["t_quiet"])
    out.update({"fpr_target": float(fpr), "fpr_calibration": float(np.mean(flagged_okay)), "n_okay": int(n),
                "resolvable": bool(resolvable)})
    return out


def combined_score(max_mean, max_std, thresholds, min_std=None):
    """One scalar per patch: ``max(max|<r>| / t_mean, max sigma / t_std)``.

    With ``t_quiet`` in ``thresholds`` (the two-sided rule) ``min_std`` is required and
    ``t_quiet / min sigma`` joins the maximum. A patch is flagged by the thresholds exactly
    when its score is above 1.
    """
    score = np.maximum(np.asarray(max_mean) / thresholds["t_mean"], np.asarray(max_std) / thresholds["t_std"])
    if "t_quiet" in thresholds:
        if min_std is None:
            raise ValueError("min_std: required by two-sided thresholds (they have t_quiet)")
        with np.errstate(divide="ignore"):
            score = np.maximum(score, thresholds["t_quiet"] / np.asarray(min_std, float))
    return score


def flagged_windows(residual, thresholds, kernel=KERNEL):
    """Which windows fire, and by which test (for the Fig. 5-8 panels).

    Parameters
    ----------
    residual : ndarray, shape (H, W)

    Returns
    -------
    ndarray, shape (H - k + 1, W - k + 1), int8
        0 none, 1 mean only, 2 std only, 3 both; with ``t_quiet`` in ``thresholds``, plus 4
        for a window whose neighbourhood is too quiet.
    """
    quiet = quiet_std(residual, kernel) if "t_quiet" in thresholds else None
    return window_flags(*kernel_statistics(residual, kernel), thresholds, quiet)


def window_flags(mean, std, thresholds, quiet=None):
    """Flag codes from precomputed window statistics (see :func:`flagged_windows`).

    Parameters
    ----------
    mean, std : ndarray, same shape
        From :func:`kernel_statistics`.
    quiet : ndarray, same shape, optional
        From :func:`quiet_std`; required when ``thresholds`` has ``t_quiet``.

    Returns
    -------
    ndarray, same shape, int8
    """
    flags = ((np.abs(mean) > thresholds["t_mean"]).astype(np.int8)
             + 2 * (std > thresholds["t_std"]).astype(np.int8))
    if "t_quiet" in thresholds:
        if quiet is None:
            raise ValueError("quiet: required by two-sided thresholds (they have t_quiet)")
        flags += 4 * (np.asarray(quiet) < thresholds["t_quiet"]).astype(np.int8)
    return flags
