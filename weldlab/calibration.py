"""Image statistics used to calibrate the simulator against GDXray.

The same estimators are applied to real and simulated radiographs, so that their numbers
can be compared directly (chapter 1 and ``tests/test_simulate.py``):

* **noise**: the residual ``image - gaussian_filter(image, 4)`` outside dilated defects,
  its standard deviation and its lag-1 autocorrelation (mean of the horizontal and
  vertical neighbour correlation);
* **defect contrast**: for each 8-connected defect region, its mean intensity minus the
  mean of a 2-px ring around it (negative = darker than the surroundings);
* **bead profile**: the across-weld profile (median over each row), its contrast between
  bead crest and plate, and its full width at half height as a fraction of the image
  height.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

#: Gaussian blur (px) whose subtraction leaves the noise.
NOISE_BLUR_SIGMA = 4.0
#: Margin (px) by which defects are dilated before noise is measured.
NOISE_DEFECT_MARGIN = 6
#: Width (px) of the ring around a defect region used as its local background.
CONTRAST_RING = 2

EIGHT = np.ones((3, 3), bool)


def noise_residual(image, mask=None):
    """High-pass residual and the pixels where it measures noise.

    Parameters
    ----------
    image : ndarray, shape (H, W), float
        Intensities in [0, 1].
    mask : ndarray, shape (H, W), bool, optional
        Defect pixels to exclude (after dilation by ``NOISE_DEFECT_MARGIN``).

    Returns
    -------
    residual : ndarray, shape (H, W), float64
    valid : ndarray, shape (H, W), bool
        Pixels at least 3σ from the border, away from defects and away from clipped
        (0 or 1) pixels.
    """
    image = np.asarray(image, dtype=np.float64)
    residual = image - ndi.gaussian_filter(image, NOISE_BLUR_SIGMA, mode="reflect")
    valid = np.zeros(image.shape, bool)
    b = int(3 * NOISE_BLUR_SIGMA)
    valid[b:-b, b:-b] = True
    if mask is not None and mask.any():
        valid &= ~ndi.binary_dilation(mask, iterations=NOISE_DEFECT_MARGIN)
    clipped = (image <= 0.0) | (image >= 1.0)
    if clipped.any():
        valid &= ~ndi.binary_dilation(clipped, iterations=2)
    return residual, valid


def lag_correlation(residual, valid, lag=1):
    """Correlation of a residual with itself ``lag`` px away.

    The mean of the vertical and the horizontal correlation, over the pairs of pixels that
    are both ``valid``.

    Parameters
    ----------
    residual : ndarray, shape (H, W)
    valid : ndarray, shape (H, W), bool
    lag : int

    Returns
    -------
    float
        NaN where there are no valid pairs or no variation.

    Examples
    --------
    >>> import numpy as np
    >>> white = np.random.default_rng(0).normal(size=(200, 200))
    >>> abs(lag_correlation(white, np.ones(white.shape, bool))) < 0.02
    True
    """
    corrs = []
    for axis in (0, 1):
        a = np.moveaxis(residual, axis, 0)
        v = np.moveaxis(valid, axis, 0)
        pair = v[lag:] & v[:-lag]
        x, y = a[lag:][pair], a[:-lag][pair]
        x = x - x.mean()
        y = y - y.mean()
        corrs.append(float((x * y).mean() / (x.std() * y.std())))
    return float(np.mean(corrs))


def noise_stats(image, mask=None):
    """Noise standard deviation and lag-1 correlation.

    Parameters
    ----------
    image : ndarray, shape (H, W)
    mask : ndarray, shape (H, W), bool, optional

    Returns
    -------
    dict
        ``noise_std`` and ``noise_lag1`` (floats).
    """
    r, valid = noise_residual(image, mask)
    std = float(r[valid].std())
    return {"noise_std": std, "noise_lag1": lag_correlation(r, valid, 1)}


def defect_contrasts(image, mask, min_pixels=4):
    """Contrast of every 8-connected defect region against a ring around it.

    Parameters
    ----------
    image : ndarray, shape (H, W)
    mask : ndarray, shape (H, W), bool
    min_pixels : int
        Regions smaller than this are ignored (annotation specks).

    Returns
    -------
    ndarray, shape (n_regions,), float64
        Region mean minus ring mean; negative means darker than the surroundings.
    """
    image = np.asarray(image, dtype=np.float64)
    labels, n = ndi.label(mask, structure=EIGHT)
    if n == 0:
        return np.zeros(0)
    index = np.arange(1, n + 1)
    sizes = ndi.sum_labels(np.ones_like(image), labels, index)
    # Each non-defect pixel within CONTRAST_RING px of a region joins that region's ring
    # (where rings of two regions meet, the larger label wins: a small bias, no loop).
    size = 2 * CONTRAST_RING + 1
    ring_labels = ndi.grey_dilation(labels, size=(size, size))
    ring_labels[mask] = 0
    with np.errstate(invalid="ignore", divide="ignore"):  # empty rings: dropped below
        inside = ndi.mean(image, labels, index)
        ring = ndi.mean(image, ring_labels, index)
    keep = (sizes >= min_pixels) & np.isfinite(ring)
    return (inside - ring)[keep]


def bead_profile(image, mask=None):
    """Across-weld intensity profile of a horizontal weld.

    Parameters
    ----------
    image : ndarray, shape (H, W)
    mask : ndarray, shape (H, W), bool, optional
        Defect pixels, ignored in the median.

    Returns
    -------
    profile : ndarray, shape (H,)
        Median intensity of each row.
    stats : dict
        ``bead_contrast`` (crest minus plate, the plate being the median of the outer
        10 % of rows on both sides) and ``bead_width_frac`` (rows above half height
        between plate and crest, over H).
    """
    image = np.asarray(image, dtype=np.float64)
    if mask is not None and mask.any():
        profile = np.nanmedian(np.where(mask, np.nan, image), axis=1)
    else:
        profile = np.median(image, axis=1)  # the same values, without nanmedian's cost
    h = profile.size
    edge = max(1, h // 10)
    plate = float(np.median(np.r_[profile[:edge], profile[-edge:]]))
    crest = float(np.percentile(profile, 98))
    half = plate + 0.5 * (crest - plate)
    width = float(np.mean(profile > half))
    return profile, {"bead_contrast": crest - plate, "bead_width_frac": width}


def radiograph_stats(image, mask=None):
    """All calibration statistics of one radiograph.

    Parameters
    ----------
    image : ndarray, shape (H, W)
    mask : ndarray, shape (H, W), bool, optional

    Returns
    -------
    dict
        ``mean``, ``noise_std``, ``noise_lag1``, ``bead_contrast``, ``bead_width_frac``,
        ``n_defects``, ``median_contrast`` and ``frac_darker`` (share of defect regions
        darker than their ring).
    """
    out = {"mean": float(np.mean(image))}
    out.update(noise_stats(image, mask))
    out.update(bead_profile(image, mask)[1])
    c = defect_contrasts(image, mask) if mask is not None else np.zeros(0)
    out["n_defects"] = int(c.size)
    out["median_contrast"] = float(np.median(c)) if c.size else float("nan")
    out["frac_darker"] = float(np.mean(c < 0)) if c.size else float("nan")
    return out


#: Statistics compared between GDXray and the simulator, with the slack (in the
#: statistic's own units) by which the simulated median may lie outside the range of the
#: ten GDXray radiographs.
CALIBRATION_TOLERANCES = {
    "mean": 0.03,
    "noise_std": 0.0005,
    "noise_lag1": 0.05,
    "bead_contrast": 0.05,
    "bead_width_frac": 0.05,
    "median_contrast": 0.005,
    "frac_darker": 0.05,
}


def calibration_table(real, simulated):
    """Compare per-radiograph statistics of real and simulated radiographs.

    Parameters
    ----------
    real, simulated : list of dict
        Outputs of :func:`radiograph_stats`.

    Returns
    -------
    list of dict
        One row per statistic: ``stat``, ``real_min``, ``real_median``, ``real_max``,
        ``sim_min``, ``sim_median``, ``sim_max``, ``tolerance`` and ``ok`` (the simulated
        median lies within the real range widened by the tolerance).
    """
    rows = []
    for stat, tol in CALIBRATION_TOLERANCES.items():
        r = np.array([s[stat] for s in real if np.isfinite(s[stat])])
        m = np.array([s[stat] for s in simulated if np.isfinite(s[stat])])
        row = {"stat": stat, "tolerance": tol}
        for prefix, v in (("real", r), ("sim", m)):
            row[f"{prefix}_min"] = float(v.min()) if v.size else float("nan")
            row[f"{prefix}_median"] = float(np.median(v)) if v.size else float("nan")
            row[f"{prefix}_max"] = float(v.max()) if v.size else float("nan")
        row["ok"] = bool(
            r.size and m.size and r.min() - tol <= np.median(m) <= r.max() + tol
        )
        rows.append(row)
    return rows


def calibration_markdown(rows):
    """Markdown: :func:`calibration_table`'s rows, the GDXray range beside the simulated median.

    Examples
    --------
    >>> from weldlab.calibration import calibration_markdown
    >>> row = {"stat": "noise_std", "real_min": 0.0038, "real_median": 0.0045, "real_max": 0.006,
    ...        "sim_median": 0.0044, "ok": True}
    >>> print(calibration_markdown([row]).splitlines()[2])
    | noise_std | 0.0038 | 0.0045 | 0.0060 | 0.0044 | yes |
    """
    from .figures import markdown_table

    return markdown_table(
        ["statistic", "GDXray min", "GDXray median", "GDXray max", "simulated median", "within range"],
        [[r["stat"], *(f"{r[k]:.4f}" for k in ("real_min", "real_median", "real_max", "sim_median")),
          "yes" if r["ok"] else "NO"] for r in rows], align="lrrrrc")
