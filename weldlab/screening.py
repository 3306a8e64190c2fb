"""Input-level checks: is an image like the films the detector was trained on.

The residual tests look only at what the autoencoder fails to reconstruct, so they say
nothing about an input that is easy to reconstruct but is no radiograph of a weld: a flat or
over-exposed frame, a smooth gradient, a film scanned at another resolution. Before any
model sees an image, :func:`image_statistics` measures a few plain properties, and
:func:`check_input` compares them with the ranges :func:`input_ranges` recorded on the
training data. An image outside them is sent to a human with the reason; it is still
scanned, so the overlay shows what the residual tests saw as well.

The properties (all on intensities in [0, 1]):

``noise_std``, ``noise_lag1``
    The film grain: standard deviation and neighbour correlation of ``image -
    gaussian_filter(image, 4)`` (the estimator of :func:`weldlab.calibration.noise_stats`),
    the median over up to 64 blocks of 256 x 256 px (one block for a patch). A blank or
    blurred frame has too little grain; interpolation (magnifying, rotating, rescaling)
    correlates neighbouring pixels; added noise has too much.
``p1``, ``p99``
    The 1st and 99th percentiles of the intensities: exposure and contrast.
``clipped``
    The fraction of pixels at 0 or 1: saturated or under-exposed areas carry no image.
``levels``
    The number of distinct intensities: a binary or coarsely quantised image has few.

The ranges are the training data's extremes widened by :data:`MARGINS` (chosen once, by
the size of each statistic's variation, not tuned on the unexpected inputs); their false
positive rate is measured on okay validation and test patches (chapter 10).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .calibration import noise_stats

#: The statistics of :func:`image_statistics`, with how a reason names them.
STATISTICS = {
    "noise_std": "film grain (noise std.)",
    "noise_lag1": "grain correlation (lag 1)",
    "p1": "1st intensity percentile",
    "p99": "99th intensity percentile",
    "clipped": "clipped pixels (fraction at 0 or 1)",
    "levels": "distinct intensity levels",
}

#: How far beyond the training data's range an image may lie, per statistic:
#: ``("factor", f)`` divides the minimum and multiplies the maximum by ``f``;
#: ``("add", d)`` widens the range by ``d`` on both sides; ``("upper", d)``: no lower limit,
#: the maximum plus ``d``; ``("lower", f)``: no upper limit, the minimum divided by ``f``.
MARGINS = {
    "noise_std": ("factor", 1.5),
    "noise_lag1": ("add", 0.1),
    "p1": ("add", 0.05),
    "p99": ("add", 0.05),
    "clipped": ("upper", 0.01),
    "levels": ("lower", 2.0),
}

BLOCK = 256
MAX_BLOCKS = 64
MAX_SAMPLE = 4_000_000


def _blocks(shape, block=BLOCK, max_blocks=MAX_BLOCKS):
    """Top-left corners of up to ``max_blocks`` blocks spread evenly over an image."""
    h, w = shape
    bh, bw = min(block, h), min(block, w)
    per_side = int(math.isqrt(max_blocks))
    rows = np.unique(np.linspace(0, h - bh, min(per_side, max(1, h // bh))).round().astype(int))
    cols = np.unique(np.linspace(0, w - bw, min(per_side, max(1, w // bw))).round().astype(int))
    return [(r, c, bh, bw) for r in rows for c in cols]


def image_statistics(image):
    """The input statistics of one image (see the module's description).

    Parameters
    ----------
    image : ndarray, shape (H, W), float in [0, 1]
        A patch or a whole radiograph, at least 32 px per side.

    Returns
    -------
    dict
        One float per name in :data:`STATISTICS`; ``noise_std`` and ``noise_lag1`` are NaN
        when no block has unclipped pixels to measure them on.

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.screening import image_statistics
    >>> grain = np.random.default_rng(0).normal(0.5, 0.005, (192, 192))
    >>> s = image_statistics(grain)
    >>> round(s["noise_std"], 3), s["clipped"]
    (0.005, 0.0)
    >>> image_statistics(np.full((192, 192), 0.5))["noise_std"]
    0.0
    """
    image = np.asarray(image)
    if image.ndim != 2 or min(image.shape) < 32:
        raise ValueError(f"image: expected a 2-D image of at least 32 x 32 px, got shape {image.shape}")
    stds, lags = [], []
    for r, c, bh, bw in _blocks(image.shape):
        block = np.asarray(image[r : r + bh, c : c + bw], np.float64)
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a flat or fully clipped block
            s = noise_stats(block)
        if np.isfinite(s["noise_std"]):
            stds.append(s["noise_std"])
            # a flat block has no correlation to measure; count it as uncorrelated grain of 0
            lags.append(s["noise_lag1"] if np.isfinite(s["noise_lag1"]) else 0.0)
    step = max(1, math.ceil(math.sqrt(image.size / MAX_SAMPLE)))
    sample = np.asarray(image[::step, ::step], np.float32).ravel()
    p1, p99 = np.percentile(sample, [1, 99])
    return {
        "noise_std": float(np.median(stds)) if stds else float("nan"),
        "noise_lag1": float(np.median(lags)) if lags else float("nan"),
        "p1": float(p1),
        "p99": float(p99),
        "clipped": float(np.mean((sample <= 0) | (sample >= 1))),
        "levels": float(np.unique(sample).size),
    }


def input_ranges(images, source):
    """The ranges :func:`check_input` accepts, from the statistics of training images.

    Parameters
    ----------
    images : iterable of ndarray, each shape (H, W)
        Training radiographs (for whole-film scans) or training okay patches (for
        patch-level checks); at least one.
    source : str
        What they are, recorded with the ranges (e.g. "7 GDXray training films").

    Returns
    -------
    dict
        ``ranges``: name -> ``[low, high]`` (None for an open side); ``observed``: name ->
        ``[min, max]`` over the images; ``margins`` (:data:`MARGINS`), ``n`` and ``source``.
    """
    stats = [image_statistics(x) for x in images]
    if not stats:
        raise ValueError("images: expected at least one training image")
    ranges, observed = {}, {}
    for name in STATISTICS:
        values = np.array([s[name] for s in stats], float)
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise ValueError(f"images: {name} could not be measured on any of the {len(stats)} images")
        lo, hi = float(values.min()), float(values.max())
        observed[name] = [lo, hi]
        kind, m = MARGINS[name]
        ranges[name] = {"factor": [lo / m, hi * m], "add": [lo - m, hi + m], "upper": [None, hi + m],
                        "lower": [lo / m, None]}[kind]
    return {"ranges": ranges, "observed": observed, "margins": {k: list(v) for k, v in MARGINS.items()},
            "n": len(stats), "source": str(source)}


def check_input(statistics, ranges):
    """Why an image lies outside the training data's ranges (empty when it does not).

    Parameters
    ----------
    statistics : dict
        From :func:`image_statistics`.
    ranges : dict
        From :func:`input_ranges`.

    Returns
    -------
    list of str
        One reason per statistic outside its range, e.g. "film grain (noise std.) 0
        below the training range 0.0029-0.0074".

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.screening import check_input, image_statistics, input_ranges
    >>> rng = np.random.default_rng(0)
    >>> films = [rng.normal(0.5, 0.005, (192, 192)) for _ in range(3)]
    >>> ranges = input_ranges(films, "three grainy frames")
    >>> check_input(image_statistics(films[0]), ranges)
    []
    >>> check_input(image_statistics(np.full((192, 192), 0.5)), ranges)[0][:38]
    'film grain (noise std.) 0 below the tr'
    """
    reasons = []
    for name, label in STATISTICS.items():
        value = statistics[name]
        lo, hi = ranges["ranges"][name]
        shown = "-".join(f"{v:.3g}" if v is not None else "" for v in (lo, hi))
        if not np.isfinite(value):
            reasons.append(f"{label} cannot be measured (no unclipped pixels)")
        elif lo is not None and value < lo:
            reasons.append(f"{label} {value:.3g} below the training range {shown}")
        elif hi is not None and value > hi:
            reasons.append(f"{label} {value:.3g} above the training range {shown}")
    return reasons
