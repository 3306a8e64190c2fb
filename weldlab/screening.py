"""Input-level checks: is an image like the films the detector was trained on.

The residual tests look only at what the autoencoder fails to reconstruct, so they say
nothing about an input that is easy to reconstruct but is no radiograph of a weld: a flat or
over-exposed frame, a smooth gradient, a film scanned at another resolution. Before any
model sees an image, :func:`image_statistics` measures a few plain properties, and
:func:`check_input` compares them with the ranges :func:`input_ranges` recorded on the
training data. An image outside them is sent to a human with the reason; it is still
scanned, so the overlay shows what the residual tests saw as well.

The properties (all on intensities in [0, 1]):

``noise_std``, ``noise_lag1``, ``noise_lag2``, ``noise_skew``
    The film grain: standard deviation, correlation with the neighbour 1 and 2 px away, and
    skewness of ``image - gaussian_filter(image, 4)`` (the estimator of
    :func:`weldlab.calibration.noise_stats`), the median over up to 64 blocks of 256 x 256 px
    (one block for a patch). A blank or blurred frame has too little grain; interpolation
    (magnifying, rescaling) correlates neighbouring pixels; added noise has too much; grain
    is as often brighter as darker than its surroundings, thin bright or dark structures
    (wires, letters) are not.
``p1``, ``p99``
    The 1st and 99th percentiles of the intensities: exposure and contrast.
``clipped``
    The fraction of pixels at 0 or 1: saturated or under-exposed areas carry no image.
``levels``
    The number of distinct intensities: a binary or coarsely quantised image has few.

Whole radiographs have one more (:func:`film_statistics`, :data:`FILM_STATISTICS`):

``bead_contrast``
    How much brighter the weld bead is than the plate beside it: the across-weld profile of
    :func:`weldlab.calibration.bead_profile`, taken across the film's short side (a weld
    film is laid along the seam). The bead is thicker metal, so on a positive film it is
    bright; on a film stored inverted (as a negative) or an image with no weld, it is not.
    A patch has no plate beside its bead and no known orientation, so patches lack it.

The ranges are the training data's extremes widened by :data:`MARGINS` (and, for films,
:data:`FILM_MARGINS`; chosen once, by
the size of each statistic's variation, not tuned on the unexpected inputs); their false
positive rate is measured on okay validation and test patches (chapter 10).

Each statistic alone is a weak test: the training films differ from each other (their grain
varies by a factor of two), so a patch magnified from one film lies inside every range that
another film spans. The **typicality** check (:func:`typicality_model`,
:func:`atypicality`) compares the statistics *together*: a patch is atypical when even its
:data:`NEIGHBOURS` nearest okay training patches, in the space of
:data:`TYPICALITY_STATISTICS` (each scaled by its spread), are far from it. Its threshold
shares the detector's false positive budget (:func:`calibrate_typicality`).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .calibration import bead_profile, lag_correlation, noise_residual
from .thresholds import fpr_budget, leftover_threshold

#: The statistics of :func:`image_statistics`, with how a reason names them.
STATISTICS = {
    "noise_std": "film grain (noise std.)",
    "noise_lag1": "grain correlation (lag 1)",
    "noise_lag2": "grain correlation (lag 2)",
    "noise_skew": "grain skewness",
    "p1": "1st intensity percentile",
    "p99": "99th intensity percentile",
    "clipped": "clipped pixels (fraction at 0 or 1)",
    "levels": "distinct intensity levels",
}

#: How far beyond the training data's range an image may lie, per statistic (the
#: statistics with a range of their own; the others are used by the typicality check):
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

#: The statistics of whole radiographs only (:func:`film_statistics`), named as for reasons.
FILM_STATISTICS = {"bead_contrast": "weld bead contrast (bead minus plate, across the short side)"}

#: The margins of whole-film ranges: :data:`MARGINS`, and a bead at least half as far above
#: the plate as on the faintest training film (no upper limit: a thicker weld is no anomaly).
FILM_MARGINS = {**MARGINS, "bead_contrast": ("lower", 2.0)}

#: Every statistic's name in a reason (:class:`weldlab.verdict.Reason`).
STATISTIC_LABELS = {**STATISTICS, **FILM_STATISTICS}

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


#: The grain statistics, measured per block.
GRAIN = ("noise_std", "noise_lag1", "noise_lag2", "noise_skew")


def _grain(block):
    """The :data:`GRAIN` statistics of one block (none when no pixel is unclipped)."""
    r, valid = noise_residual(block)
    values = r[valid]
    if values.size == 0:
        return {}
    std = float(values.std())
    if std == 0:  # a flat block: no grain, and no correlation or skewness to measure
        return {"noise_std": 0.0, "noise_lag1": 0.0, "noise_lag2": 0.0, "noise_skew": 0.0}
    centred = values - values.mean()
    skewness = float((centred**3).mean() / std**3)  # the moment skewness (scipy.stats.skew's default)
    # without pairs of valid pixels there is no correlation to measure: count it as uncorrelated
    lag1, lag2 = (float(np.nan_to_num(lag_correlation(r, valid, k))) for k in (1, 2))
    return {"noise_std": std, "noise_lag1": lag1, "noise_lag2": lag2, "noise_skew": skewness}


def image_statistics(image):
    """The input statistics of one image (see the module's description).

    Parameters
    ----------
    image : ndarray, shape (H, W), float in [0, 1]
        A patch or a whole radiograph, at least 32 px per side.

    Returns
    -------
    dict
        One float per name in :data:`STATISTICS`; the grain statistics (:data:`GRAIN`) are
        NaN when no block has unclipped pixels to measure them on, and 0 (no grain, no
        correlation, no skewness) on a flat image.

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
    grain = {name: [] for name in GRAIN}
    for r, c, bh, bw in _blocks(image.shape):
        block = np.asarray(image[r : r + bh, c : c + bw], np.float64)
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a flat or fully clipped block
            for name, value in _grain(block).items():
                grain[name].append(value)
    step = max(1, math.ceil(math.sqrt(image.size / MAX_SAMPLE)))
    sample = np.asarray(image[::step, ::step], np.float32).ravel()
    p1, p99 = np.percentile(sample, [1, 99])
    return {
        **{name: float(np.median(v)) if v else float("nan") for name, v in grain.items()},
        "p1": float(p1),
        "p99": float(p99),
        "clipped": float(np.mean((sample <= 0) | (sample >= 1))),
        "levels": float(np.unique(sample).size),
    }


def film_statistics(image):
    """The input statistics of a whole radiograph (:data:`STATISTICS` and :data:`FILM_STATISTICS`).

    Parameters
    ----------
    image : ndarray, shape (H, W), float in [0, 1]
        A radiograph whose weld runs along its long side, at least 32 px per side.

    Returns
    -------
    dict
        One float per name in :data:`STATISTICS` and :data:`FILM_STATISTICS`.

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.screening import film_statistics
    >>> rows = np.arange(200)[:, None]
    >>> film = np.broadcast_to(0.3 + 0.4 * np.exp(-((rows - 100) / 30) ** 2), (200, 600))
    >>> round(film_statistics(film)["bead_contrast"], 2), round(film_statistics(1 - film)["bead_contrast"], 2)
    (0.4, 0.0)
    """
    stats = image_statistics(image)  # validates the image
    image = np.asarray(image)
    across = image if image.shape[1] >= image.shape[0] else image.T  # the weld along the long side
    return {**stats, "bead_contrast": bead_profile(across)[1]["bead_contrast"]}


def _covering_margin(kind, values, groups):
    """The smallest margin of ``kind`` under which each group lies inside the others' range.

    Parameters
    ----------
    kind : {"factor", "add", "upper", "lower"}
        As in :data:`MARGINS`.
    values : ndarray, shape (n,)
        One statistic of n images (finite).
    groups : ndarray, shape (n,)
        The film of each image.

    Returns
    -------
    margin : float
        1 (``factor``, ``lower``) or 0 (``add``, ``upper``) when every film lies inside the
        others' range already.
    film : int or None
        The film that needs it.
    """
    margin, worst = (1.0 if kind in ("factor", "lower") else 0.0), None
    for g in np.unique(groups):
        mine, others = values[groups == g], values[groups != g]
        if mine.size == 0 or others.size == 0:
            continue
        lo, hi, lo_o, hi_o = mine.min(), mine.max(), others.min(), others.max()
        if kind in ("factor", "lower"):
            need = max(lo_o / lo if lo > 0 else np.inf, hi / hi_o if kind == "factor" and hi_o > 0 else 1.0)
        else:
            need = max(hi - hi_o, lo_o - lo if kind == "add" else 0.0)
        if need > margin:
            margin, worst = float(need), int(g)
    return margin, worst


def grain_margin(values=None, groups=None):
    """The factor by which a floor on film grain is lowered for films not seen in training.

    The fixed margin of the film grain's range (:data:`MARGINS` ``["noise_std"]``), or more
    where one training film lies further below the others (leave one film out, as
    :func:`input_ranges` widens its ranges). The quiet test's threshold is such a floor: the
    residual of an okay patch is about as large as the grain the autoencoder cannot
    reconstruct (:meth:`weldlab.thresholds.ResidualThresholds.calibrate`).

    Parameters
    ----------
    values : array_like, shape (n,), optional
        A grain measure of n patches (e.g. the quiet statistic), positive.
    groups : array_like of int, shape (n,), optional
        The film of each patch; with two films or more, the leave-one-film-out margin counts.

    Returns
    -------
    float
        At least ``MARGINS["noise_std"][1]``.

    Examples
    --------
    >>> from weldlab.screening import grain_margin
    >>> grain_margin()
    1.5
    >>> grain_margin([0.004, 0.0041, 0.002], groups=[0, 1, 2])  # film 2: half the others' floor
    2.0
    """
    margin = MARGINS["noise_std"][1]
    if values is None or groups is None or np.unique(groups).size < 2:
        return float(margin)
    values, groups = np.asarray(values, float), np.asarray(groups, int)
    if values.shape != groups.shape:
        raise ValueError(f"groups: expected one film per value ({values.shape}), got shape {groups.shape}")
    return float(max(margin, _covering_margin("lower", values, groups)[0]))


def input_ranges(images, source, statistics=None, films=False, groups=None):
    """The ranges :func:`check_input` accepts, from the statistics of training images.

    Parameters
    ----------
    images : iterable of ndarray, each shape (H, W)
        Training radiographs (for whole-film scans) or training okay patches (for
        patch-level checks); at least one.
    source : str
        What they are, recorded with the ranges (e.g. "7 GDXray training films").
    statistics : list of dict, optional
        Their :func:`image_statistics` (:func:`film_statistics` for films), when already
        measured (then ``images`` is unused).
    films : bool
        Whole radiographs: measured by :func:`film_statistics`, the ranges widened by
        :data:`FILM_MARGINS`; else by :func:`image_statistics` and :data:`MARGINS`.
    groups : array_like of int, shape (n,), optional
        The film each image comes from (for films: each its own). With two films or more,
        a statistic's margin is widened where needed so that every film lies inside the
        range the *other* films give (leave one film out): a new film of the same family
        is then judged as fairly as the training films judge each other.

    Returns
    -------
    dict
        ``ranges``: name -> ``[low, high]`` (None for an open side); ``observed``: name ->
        ``[min, max]`` over the images; ``margins`` (as used: :data:`MARGINS` or
        :data:`FILM_MARGINS`, widened by the films), ``n`` and ``source``; with
        ``groups``, ``leave_one_film_out``: name -> the margin each film needs to lie
        inside the others' range (the largest over the films) and ``film`` (which; None
        when the fixed margin already covers every film).

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.screening import input_ranges
    >>> stats = [{"noise_std": v, "noise_lag1": 0.8, "p1": 0.2, "p99": 0.7, "clipped": 0.0,
    ...           "levels": 200.0} for v in (0.004, 0.0045, 0.010)]
    >>> fixed = input_ranges(None, "three films", statistics=stats)
    >>> fixed["ranges"]["noise_std"][1] == 0.010 * 1.5
    True
    >>> fair = input_ranges(None, "three films", statistics=stats, groups=[0, 1, 2])
    >>> round(fair["leave_one_film_out"]["noise_std"]["margin"], 3), fair["leave_one_film_out"]["noise_std"]["film"]
    (2.222, 2)
    """
    margins = FILM_MARGINS if films else MARGINS
    measure = film_statistics if films else image_statistics
    stats = [measure(x) for x in images] if statistics is None else list(statistics)
    if not stats:
        raise ValueError("images: expected at least one training image")
    missing = sorted(set(margins) - set(stats[0]))
    if missing:
        raise ValueError(f"statistics: expected {', '.join(margins)}, missing {', '.join(missing)}"
                         + (" (measure films with film_statistics)" if films else ""))
    if groups is not None:
        groups = np.asarray(groups, int)
        if groups.shape != (len(stats),):
            raise ValueError(f"groups: expected one film per image ({len(stats)}), got shape {groups.shape}")
        if np.unique(groups).size < 2:
            groups = None  # one film: nothing to leave out
    ranges, observed, used, covering = {}, {}, {}, {}
    for name in margins:
        values = np.array([s[name] for s in stats], float)
        finite = np.isfinite(values)
        values = values[finite]
        if values.size == 0:
            raise ValueError(f"images: {name} could not be measured on any of the {len(stats)} images")
        lo, hi = float(values.min()), float(values.max())
        observed[name] = [lo, hi]
        kind, m = margins[name]
        if groups is not None:
            need, film = _covering_margin(kind, values, groups[finite])
            covering[name] = {"margin": need if np.isfinite(need) else None, "film": film if need > m else None}
            m = max(m, need)
        used[name] = [kind, m if np.isfinite(m) else None]  # None: that side is open
        ranges[name] = {"factor": [lo / m, hi * m], "add": [lo - m, hi + m], "upper": [None, hi + m],
                        "lower": [lo / m, None]}[kind]
        ranges[name] = [None if v is not None and not np.isfinite(v) else v for v in ranges[name]]
    out = {"ranges": ranges, "observed": observed, "margins": used, "n": len(stats), "source": str(source)}
    if groups is not None:
        out["leave_one_film_out"] = covering
    return out


def check_input(statistics, ranges):
    """Why an image lies outside the training data's ranges (empty when it does not).

    Parameters
    ----------
    statistics : dict
        From :func:`image_statistics` (:func:`film_statistics` for film ranges).
    ranges : dict
        From :func:`input_ranges`; with a ``typicality`` model (:func:`typicality_model`,
        its threshold set), an image within every range is also checked for typicality.

    Returns
    -------
    list of weldlab.verdict.Reason
        One ``"input"`` reason per statistic outside its range (its ``text()``, e.g.
        "... film grain (noise std.) 0 below the training range 0.0029 to 0.0074"), or
        the typicality check's (statistic ``"typicality"``).

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.screening import check_input, image_statistics, input_ranges
    >>> rng = np.random.default_rng(0)
    >>> films = [rng.normal(0.5, 0.005, (192, 192)) for _ in range(3)]
    >>> ranges = input_ranges(films, "three grainy frames")
    >>> check_input(image_statistics(films[0]), ranges)
    []
    >>> why = check_input(image_statistics(np.full((192, 192), 0.5)), ranges)[0]
    >>> why.statistic, why.side, why.explanation()[:38]
    ('noise_std', 'below', 'film grain (noise std.) 0 below the tr')
    """
    return check_inputs([statistics], ranges)[0]


def check_inputs(statistics, ranges):
    """:func:`check_input` for many images at once (one typicality search for all).

    Parameters
    ----------
    statistics : list of dict
        :func:`image_statistics` of n images.
    ranges : dict
        From :func:`input_ranges`.

    Returns
    -------
    list of list of weldlab.verdict.Reason
        The reasons per image.

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.screening import check_inputs, image_statistics, input_ranges
    >>> rng = np.random.default_rng(0)
    >>> films = [rng.normal(0.5, 0.005, (192, 192)) for _ in range(3)]
    >>> ranges = input_ranges(films, "three grainy frames")
    >>> [len(r) for r in check_inputs([image_statistics(films[1]), image_statistics(np.ones((192, 192)))], ranges)]
    [0, 6]
    """
    from .verdict import TYPICALITY, Reason

    out = []
    for stats in statistics:
        reasons = []
        for name, (lo, hi) in ranges["ranges"].items():
            value = float(stats[name])
            if not np.isfinite(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
                reasons.append(Reason("input", statistic=name, value=value, range=(lo, hi)))
        out.append(reasons)
    model = ranges.get("typicality")
    within = [i for i, reasons in enumerate(out) if not reasons]
    if model is not None and model.get("threshold") is not None and within:
        distance, most = atypicality([statistics[i] for i in within], model, explain=True)
        for i, d, name in zip(within, distance, most):
            if d > model["threshold"]:
                out[i].append(Reason("input", statistic=TYPICALITY, value=float(d), range=(None, model["threshold"]),
                                     nearest=name))
    return out


#: The statistics the typicality check compares together (``noise_std`` on a log scale).
TYPICALITY_STATISTICS = ("noise_std", "noise_lag1", "noise_lag2", "noise_skew", "p1", "p99")
#: How many nearest okay training patches the typicality distance averages over.
NEIGHBOURS = 5
#: Where a statistic cannot be measured (a fully clipped patch), its scaled value: far from
#: every okay patch.
UNMEASURED = 1e3


def _typicality_features(statistics):
    """(n, 6) values of :data:`TYPICALITY_STATISTICS`, ``noise_std`` as its log."""
    x = np.array([[s[name] for name in TYPICALITY_STATISTICS] for s in statistics], float).reshape(-1, 6)
    with np.errstate(divide="ignore"):
        x[:, 0] = np.log(np.maximum(x[:, 0], 1e-9))
    return x


def typicality_model(statistics, source, films=None):
    """The okay training patches' statistics, as the reference of :func:`atypicality`.

    Parameters
    ----------
    statistics : list of dict
        :func:`image_statistics` of the okay training patches (at least
        ``NEIGHBOURS + 1``).
    source : str
        What they are, recorded with the model.
    films : array_like of int, shape (n,), optional
        The film each patch comes from; kept (as ``films``) so that :func:`atypicality`
        can leave a patch's own film out of its neighbours when calibrating.

    Returns
    -------
    dict
        ``statistics`` (:data:`TYPICALITY_STATISTICS`), ``centre`` and ``scale`` (per
        statistic: mean and standard deviation, to 12 significant digits), ``reference`` (n
        lists of 6 scaled values, rounded to 4 decimals), ``neighbours``, ``n``, ``source``,
        and ``threshold`` (None: set by :func:`calibrate_typicality`); with ``films``, also
        ``films`` (the film of each reference row).
    """
    x = _typicality_features(statistics)
    measured = np.isfinite(x).all(axis=1)
    if films is not None and len(films) != len(x):
        raise ValueError(f"films: expected one film per patch ({len(x)}), got {len(films)}")
    x = x[measured]
    if len(x) <= NEIGHBOURS:
        raise ValueError(f"statistics: expected more than {NEIGHBOURS} measurable okay patches, got {len(x)}")
    # 12 significant digits: numpy's sums may differ in the last bit with the arrays' memory
    # alignment, and the same training patches should give the same record
    centre, scale = (np.array([float(f"{v:.12g}") for v in a]) for a in (x.mean(axis=0), x.std(axis=0)))
    scale[scale == 0] = 1.0
    reference = np.round((x - centre) / scale, 4)
    model = {"statistics": list(TYPICALITY_STATISTICS), "centre": centre.tolist(), "scale": scale.tolist(),
             "reference": reference.tolist(), "neighbours": NEIGHBOURS, "n": int(len(x)), "source": str(source),
             "threshold": None}
    if films is not None:
        model["films"] = np.asarray(films, int)[measured].tolist()
    return model


def atypicality(statistics, model, explain=False, films=None):
    """How far each image's statistics lie from the okay training patches'.

    The mean Euclidean distance, in scaled statistics, to the ``model["neighbours"]``
    nearest okay training patches. An okay patch has close neighbours; an input unlike
    every training patch has none, even when each of its statistics alone lies within the
    training range.

    A patch of a training film has close neighbours in the patches of its own film, which
    a new film's patch does not have. To calibrate for new films, pass the films of the
    images (the model then needs its reference's films, :func:`typicality_model`):
    each image's neighbours are then taken from the other films only.

    Parameters
    ----------
    statistics : list of dict
        :func:`image_statistics` of n images.
    model : dict
        From :func:`typicality_model`.
    explain : bool
        Also return, per image, the statistic farthest from its neighbours'.
    films : array_like of int, shape (n,), optional
        The film of each image: reference patches of the same film are left out.

    Returns
    -------
    ndarray, shape (n,)
        The distances (and, with ``explain``, a list of n statistic names).

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.screening import atypicality, image_statistics, typicality_model
    >>> rng = np.random.default_rng(0)
    >>> okay = [image_statistics(rng.normal(0.5, 0.005, (64, 64))) for _ in range(20)]
    >>> model = typicality_model(okay, "grain frames")
    >>> coarse = image_statistics(np.repeat(np.repeat(rng.normal(0.5, 0.005, (32, 32)), 2, 0), 2, 1))
    >>> near, far = atypicality([okay[0], coarse], model)
    >>> bool(far > 5 * near)
    True
    """
    ref = np.asarray(model["reference"], float)
    z = (_typicality_features(statistics) - np.asarray(model["centre"])) / np.asarray(model["scale"])
    z[~np.isfinite(z)] = UNMEASURED
    k = min(int(model["neighbours"]), ref.shape[0])
    if films is not None:
        if "films" not in model:
            raise ValueError("films: the typicality model has no reference films (typicality_model(films=))")
        films, ref_films = np.asarray(films, int), np.asarray(model["films"], int)
        if films.shape != (len(z),):
            raise ValueError(f"films: expected one film per image ({len(z)}), got shape {films.shape}")
        k = min(k, min(int(np.sum(ref_films != f)) for f in np.unique(films)))
        if k < 1:
            raise ValueError("films: an image's film holds every reference patch; nothing is left to compare with")
    distance, nearest = np.empty(len(z)), np.empty((len(z), k), int)
    for i in range(0, len(z), 256):  # (256, reference) distances at a time
        zi = z[i : i + 256]
        d2 = (zi**2).sum(axis=1)[:, None] + (ref**2).sum(axis=1)[None, :] - 2 * zi @ ref.T
        if films is not None:  # the image's own film is no neighbour
            d2[films[i : i + 256, None] == ref_films[None, :]] = np.inf
        near = np.argpartition(d2, k - 1, axis=1)[:, :k]
        nearest[i : i + 256] = near
        distance[i : i + 256] = np.sqrt(np.maximum(np.take_along_axis(d2, near, axis=1), 0)).mean(axis=1)
    if not explain:
        return distance
    off = np.abs(z - ref[nearest].mean(axis=1))
    return distance, [TYPICALITY_STATISTICS[i] for i in off.argmax(axis=1)]


def calibrate_typicality(distances, flagged, fpr):
    """The typicality threshold: what the other tests leave of the false positive budget.

    The rule of the quiet test's ``t_quiet``, :func:`weldlab.thresholds.leftover_threshold`:
    among the okay calibration patches the other tests do not flag, at most the remaining
    number of :func:`weldlab.thresholds.fpr_budget` lie above the threshold (when the
    others use the whole budget, the largest of them).

    Parameters
    ----------
    distances : ndarray, shape (n,)
        :func:`atypicality` of the okay validation patches.
    flagged : ndarray, shape (n,), bool
        Which of them the other tests already flag.
    fpr : float

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> calibrate_typicality(np.arange(1000.0), np.zeros(1000, bool), fpr=0.002)
    997.0
    """
    d, flagged = np.asarray(distances, float), np.asarray(flagged, bool)
    if d.ndim != 1 or d.shape != flagged.shape or d.size == 0:
        raise ValueError(f"distances, flagged: expected two equal 1-D arrays, got {d.shape} and {flagged.shape}")
    # the shared rule (as t_quiet's), for a test that flags large values
    return -leftover_threshold(-d, flagged, fpr_budget(d.size, fpr, warn=False))
