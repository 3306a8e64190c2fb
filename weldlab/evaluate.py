"""Evaluating a trained autoencoder (the OOD detector) on the test sets.

:func:`evaluate_autoencoder` runs the model over patches in batches, forms residuals
``crop(x) - AE(x)``, keeps only each patch's two kernel maxima (so memory does not grow
with the number of patches), calibrates the thresholds on the *validation* okay patches of
the training radiographs, and reports for every test set:

* ``tpr_calibrated``: the fraction flagged by the calibrated thresholds (with
  ``fpr_calibrated``, the rate they realise on the *test* okay patches);
* ``tpr_at_test_fpr``: the TPR at exactly ``fpr`` on the test okay patches, using the
  combined score (the paper's operating point);
* ``auroc``.

:func:`evaluate_baseline` does the same for the classical detector that shares Table 3 with
the autoencoder: the "reconstruction" is a background estimated from the patch itself (a
Gaussian blur), and its residual goes through exactly the same statistics, OR rule and
calibration. :func:`reconstruction_quality` measures how close an autoencoder's residual on
okay patches is to the film noise (the convergence criterion of the training records).
"""

from __future__ import annotations

import warnings

import numpy as np

from . import metrics
from .geometry import CROP, check_patches
from .patches import crop
from .residuals import patch_maxima
from .thresholds import DEFAULT_FPR, CalibrationWarning, ProbabilityThreshold, ResidualThresholds, fpr_budget


def predict_batches(model, x, batch_size=64):
    """``model.predict(x)`` in batches of one size, the last one padded.

    Keras traces its prediction function once per input shape; a last, partial batch
    of a new size makes TensorFlow trace it again (and warn after a few). Padding the
    last batch keeps one shape per batch size. Each patch's output does not depend on
    the others in its batch, so the padding changes nothing but the cost.

    Parameters
    ----------
    model : keras.Model
    x : ndarray, shape (n, ...)
    batch_size : int
        At most this many inputs per call (fewer if ``n`` is smaller).

    Returns
    -------
    ndarray
        ``model.predict(x)``, shape (n, ...).
    """
    n = len(x)
    size = max(1, min(int(batch_size), n))
    full = n - n % size
    parts = [model.predict(x[:full], batch_size=size, verbose=0)] if full else []
    if full < n:  # only the last batch is copied and padded, not the whole input
        tail = np.zeros((size, *x.shape[1:]), x.dtype)
        tail[: n - full] = x[full:]
        parts.append(model.predict(tail, batch_size=size, verbose=0)[: n - full])
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def reconstruction_residuals(model, patches, batch_size=64):
    """Residuals ``crop(x) - AE(x)``.

    Parameters
    ----------
    model : keras.Model
        The autoencoder (192 -> 156).
    patches : ndarray, shape (n, 192, 192)

    Returns
    -------
    ndarray, shape (n, 156, 156), float32
    """
    x = check_patches(np.asarray(patches, np.float32))
    recon = predict_batches(model, x[..., None], batch_size)[..., 0]
    return (crop(x) - recon).astype(np.float32)


#: Scale (px) of the classical baseline's Gaussian background: the blur that chapter 1 uses
#: to separate film noise from structure (``calibration.NOISE_BLUR_SIGMA``). Fixed, not
#: tuned: the thresholds are then calibrated on validation okay patches like the AE's.
BASELINE_SIGMA = 4.0


def background_residuals(patches, sigma=BASELINE_SIGMA):
    """Residuals of the classical baseline: ``crop(x) - crop(G_sigma * x)``.

    The background is a Gaussian blur of the whole 192 x 192 patch, cropped to the same
    central 156 x 156 region as the autoencoder's output, so both detectors are compared
    on the same pixels.

    Parameters
    ----------
    patches : ndarray, shape (n, 192, 192)
    sigma : float
        Standard deviation of the blur in px.

    Returns
    -------
    ndarray, shape (n, 156, 156), float32

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.evaluate import background_residuals
    >>> flat = np.full((1, 192, 192), 0.4, np.float32)
    >>> float(np.abs(background_residuals(flat)).max()) < 1e-6
    True
    """
    from scipy import ndimage as ndi

    x = check_patches(np.asarray(patches, np.float32))
    if not float(sigma) > 0:
        raise ValueError(f"sigma: expected a positive number of px, got {sigma!r}")
    background = ndi.gaussian_filter(x, (0, float(sigma), float(sigma)), mode="reflect")
    return (crop(x) - crop(background)).astype(np.float32)


def residual_maxima(model, patches, batch_size=64, chunk=512, quiet=False):
    """Per-patch maxima of ``|<r>|`` and ``sigma(r)``, computed chunk by chunk.

    Parameters
    ----------
    model : keras.Model or None
        The autoencoder; None for the classical baseline (:func:`background_residuals`).
    patches : ndarray, shape (n, 192, 192)
    quiet : bool
        Also return the per-patch minimum of ``sigma(r)`` (the two-sided rule).

    Returns
    -------
    max_mean, max_std : ndarray, shape (n,)
    min_std : ndarray, shape (n,)
        Only with ``quiet``.
    """
    n = len(patches)
    out = np.empty((3 if quiet else 2, n))
    for i in range(0, n, chunk):
        part = patches[i : i + chunk]
        r = background_residuals(part) if model is None else reconstruction_residuals(model, part, batch_size)
        out[:, i : i + chunk] = patch_maxima(r, quiet=quiet)
    return tuple(out)


def film_false_positives(model, thresholds, patches_per_film, batch_size=64):
    """Okay patches flagged, film by film, and what flagged them.

    Parameters
    ----------
    model : keras.Model or None
        The autoencoder (None: the blur baseline).
    thresholds : weldlab.thresholds.ResidualThresholds
        The paper's rule (its ``t_mean`` and ``t_std``).
    patches_per_film : sequence of ndarray, each shape (k_i, 192, 192)
        Okay patches of each film (e.g. :func:`weldlab.datasets.new_films`).

    Returns
    -------
    list of dict, one per film
        ``n`` patches, ``flagged`` (by the OR rule), ``by_mean`` and ``by_std`` (by each
        test; a patch can be flagged by both), ``worst``: for each patch the mean test
        flagged, the signed residual mean at its largest ``|<r>|`` window (negative: the
        reconstruction is brighter than the film there) and the patch's gray level at
        that window's centre, as ``[[mean, gray], ...]``, and ``max_mean``, ``max_std``:
        each patch's maxima (lists, 6 significant digits) to calibrate on again.

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.evaluate import film_false_positives
    >>> from weldlab.thresholds import ResidualThresholds
    >>> x = np.random.default_rng(0).normal(0.4, 0.004, (2, 192, 192)).astype("float32")
    >>> x[1, 90:100, 90:100] -= 0.08  # a dark spot that the blur baseline does not follow
    >>> rows = film_false_positives(None, ResidualThresholds(0.01, 0.03), [x])
    >>> rows[0]["n"], rows[0]["flagged"], rows[0]["by_mean"], rows[0]["worst"][0][0] < 0
    (2, 1, 1, True)
    """
    from .residuals import kernel_statistics

    rows = []
    for patches in patches_per_film:
        x = np.asarray(patches, np.float32)
        r = background_residuals(x) if model is None else reconstruction_residuals(model, x, batch_size)
        mm, ms = patch_maxima(r)
        by_mean, by_std = mm > thresholds.t_mean, ms > thresholds.t_std
        worst = []
        for j in np.flatnonzero(by_mean):
            m, _ = kernel_statistics(r[j])
            at = np.unravel_index(np.argmax(np.abs(m)), m.shape)
            half = (r.shape[-1] - m.shape[-1]) // 2  # window centre in the reconstructed region
            worst.append([float(m[at]), float(crop(x[j])[at[0] + half, at[1] + half])])
        rows.append({"n": len(x), "flagged": int(np.count_nonzero(by_mean | by_std)),
                     "by_mean": int(np.count_nonzero(by_mean)), "by_std": int(np.count_nonzero(by_std)),
                     "worst": worst, "max_mean": [float(f"{v:.6g}") for v in mm],
                     "max_std": [float(f"{v:.6g}") for v in ms]})
    return rows


def perturbation_removal(model, okay, perturbed, batch_size=64):
    """How much of a perturbation a reconstruction removes: the ``L_kern,per`` statistic.

    For each pair, the largest squared 9 x 9 local mean of ``crop(x_ok) - R(x_per)``,
    averaged over the pairs (the loss term the perturbed half of training minimises), for
    three reconstructions ``R``: the autoencoder, the classical baseline's blur, and the
    input itself (no removal at all). A reconstruction that removed every perturbation
    would score what it scores on the okay patches alone (``"okay"``).

    Parameters
    ----------
    model : keras.Model
        The autoencoder (192 -> 156).
    okay, perturbed : ndarray, shape (n, 192, 192)
        Pairs: each perturbed patch is its okay patch with a perturbation added.

    Returns
    -------
    dict
        ``autoencoder``, ``blur``, ``identity`` (the statistic of each ``R``) and ``okay``
        (the autoencoder's on the okay patches).

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.evaluate import perturbation_removal
    >>> ok = np.full((2, 192, 192), 0.5, np.float32)
    >>> per = ok.copy(); per[:, 80:110, 80:110] += 0.1
    >>> identity = lambda x, **k: x[:, 18:174, 18:174]  # "reconstructs" everything
    >>> class Echo:
    ...     def predict(self, x, **k): return identity(x)
    >>> r = perturbation_removal(Echo(), ok, per)
    >>> round(r["identity"], 4), r["autoencoder"] == r["identity"], r["okay"]
    (0.01, True, 0.0)
    """
    x_ok = check_patches(np.asarray(okay, np.float32))
    x_per = check_patches(np.asarray(perturbed, np.float32))
    if x_ok.shape != x_per.shape:
        raise ValueError(f"okay and perturbed: expected pairs of the same shape, got {x_ok.shape} and {x_per.shape}")
    shift = crop(x_per) - crop(x_ok)  # the perturbation, where the residual is measured

    def statistic(residual_of_perturbed):
        return float(np.mean(patch_maxima(residual_of_perturbed - shift)[0].astype(np.float64) ** 2))

    return {"autoencoder": statistic(reconstruction_residuals(model, x_per, batch_size)),
            "blur": statistic(background_residuals(x_per)),
            "identity": statistic(np.zeros_like(shift)),
            "okay": float(np.mean(patch_maxima(reconstruction_residuals(model, x_ok, batch_size))[0]
                                  .astype(np.float64) ** 2))}


def complete_removal_residuals(okay_residuals, deltas):
    """Residuals of a reconstruction that removes a perturbation completely.

    Such a reconstruction leaves its okay residual plus the whole perturbation: the
    ceiling of what any detector with that okay residual can find.

    Parameters
    ----------
    okay_residuals : ndarray, shape (n, 156, 156)
        The reconstruction's residuals of the okay patches the perturbations go into.
    deltas : ndarray, shape (n, 192, 192)
        The perturbations (``weldlab.perturbations``), on the whole patch.

    Returns
    -------
    ndarray, shape (n, 156, 156), float32
    """
    return (np.asarray(okay_residuals, np.float32) + crop(np.asarray(deltas, np.float32))).astype(np.float32)


def evaluate_baseline(datasets, fpr=DEFAULT_FPR, sensitivity=False):
    """:func:`evaluate_autoencoder` for the classical blur-background detector.

    Returns
    -------
    dict
        As :func:`evaluate_autoencoder`, plus ``sigma``.
    """
    return {**evaluate_autoencoder(None, datasets, fpr, sensitivity=sensitivity), "sigma": BASELINE_SIGMA}


#: Pixels whose gradient magnitude (Gaussian derivative, sigma 2 px) is below this
#: quantile of the okay patches' are "flat"; at or above :data:`EDGE_QUANTILE`, "edges"
#: (the weld bead's flanks, mostly).
FLAT_QUANTILE, EDGE_QUANTILE = 0.5, 0.99
#: Intensity bins of the bias table: deciles of the okay patches' local level (their
#: Gaussian blur, :data:`BASELINE_SIGMA`; binning by the pixel itself would put the
#: pixels whose grain is bright in the bright bins, and call the grain a bias).
BIAS_BINS = 10


def okay_strata(patches):
    """Where on okay patches each pixel lies: flat or edge, and which intensity decile.

    Computed once per set of patches and shared by every residual measured on them
    (:func:`okay_residual_statistics`).

    Parameters
    ----------
    patches : ndarray, shape (n, 192, 192)

    Returns
    -------
    dict
        ``flat`` and ``edge``: bool masks of the central pixels, shape (n, 156, 156)
        (:data:`FLAT_QUANTILE`, :data:`EDGE_QUANTILE` of the gradient magnitude, Gaussian
        derivative sigma 2 px); ``bins``: uint8, the decile of each pixel's local level.
    """
    from scipy import ndimage as ndi

    full = check_patches(np.asarray(patches, np.float32))
    grad = ndi.gaussian_gradient_magnitude(crop(full), sigma=(0, 2, 2))
    lo, hi = np.quantile(grad, [FLAT_QUANTILE, EDGE_QUANTILE])
    flat, edge = grad < lo, grad >= hi
    del grad
    level = crop(ndi.gaussian_filter(full, (0, BASELINE_SIGMA, BASELINE_SIGMA), mode="reflect"))
    edges = np.quantile(level, np.arange(1, BIAS_BINS) / BIAS_BINS)
    return {"flat": flat, "edge": edge, "bins": np.digitize(level, edges).astype(np.uint8)}


def okay_residual_statistics(residual, strata, fpr=DEFAULT_FPR):
    """How a reconstruction errs on okay patches: the table of the convergence harness.

    Parameters
    ----------
    residual : ndarray, shape (n, 156, 156)
        ``crop(x) - reconstruction`` of okay patches.
    strata : dict
        :func:`okay_strata` of the same patches.
    fpr : float
        The ``1 - fpr`` quantile of the patch maxima is reported (where the thresholds
        are calibrated).

    Returns
    -------
    dict
        ``max_mean`` and ``max_std``: the median, 99th percentile and ``1 - fpr`` quantile
        (keys ``median``, ``p99``, ``tail``) of the per-patch maxima of ``|<r>|`` and
        ``sigma(r)``; ``rms``, ``rms_flat`` and ``rms_edge``; ``bias_by_decile`` (mean
        residual in each decile of the local intensity level, darkest first) and
        ``max_abs_bias``; ``n``.

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.evaluate import background_residuals, okay_residual_statistics, okay_strata
    >>> x = np.random.default_rng(0).normal(0.4, 0.005, (4, 192, 192)).astype(np.float32)
    >>> s = okay_residual_statistics(background_residuals(x), okay_strata(x))
    >>> s["n"], len(s["bias_by_decile"]), s["max_abs_bias"] < 1e-3
    (4, 10, True)
    """
    r = np.asarray(residual, np.float32)
    if r.shape != strata["bins"].shape:
        raise ValueError(f"residual: expected the shape of the patches' crops {strata['bins'].shape}, got {r.shape}")
    mm, ms = patch_maxima(r)
    bins = strata["bins"].ravel()
    counts = np.bincount(bins, minlength=BIAS_BINS)
    bias = np.bincount(bins, weights=r.ravel(), minlength=BIAS_BINS) / np.maximum(counts, 1)
    q = [50, 99, 100 * (1 - fpr)]

    def quantiles(v):
        return dict(zip(("median", "p99", "tail"), map(float, np.percentile(v, q))))

    def rms(mask=None):
        v = r if mask is None else r[mask]
        return float(np.sqrt(np.mean(np.square(v, dtype=np.float64))))

    return {"n": int(len(r)), "max_mean": quantiles(mm), "max_std": quantiles(ms), "tail_quantile": 1 - fpr,
            "rms": rms(), "rms_flat": rms(strata["flat"]), "rms_edge": rms(strata["edge"]),
            "bias_by_decile": [float(b) for b in bias], "max_abs_bias": float(np.abs(bias).max())}


#: Edges (px) of the ranges of spatial period :func:`scale_transfer` reports, up to the
#: 156 px crop.
PERIOD_EDGES = (2, 4, 8, 16, 32, 78)


def scale_transfer(patches, reconstruction, edges=PERIOD_EDGES, chunk=128):
    """How much of the input's structure at each spatial period a reconstruction keeps.

    A linear estimate of the model's transfer function (its modulation transfer, as
    for an imaging system): in the 2-D Fourier transform of the central 156 x 156
    pixels (each patch's mean removed, a Hann window against edge effects), the
    cross-spectrum of reconstruction and input over the input's power spectrum,
    ``Re sum(R conj(X)) / sum |X|^2``, summed over patches and over the frequencies whose
    period lies in each range of ``edges``. 1 means the structure at that period is
    kept, 0 that it is removed. The input holds film grain as well as structure, so
    where grain dominates (short periods) a good reconstruction keeps little; where
    structure dominates (long periods) it should keep nearly all. The classical
    baseline, a Gaussian blur of sigma 4 px, keeps ``exp(-2 pi^2 sigma^2 / period^2)``:
    almost nothing below 8 px, 73 % at 32 px.

    Parameters
    ----------
    patches : ndarray, shape (n, 192, 192)
        The inputs.
    reconstruction : ndarray, shape (n, 156, 156)
        What a model made of them (for an autoencoder, ``crop(x) - residual``).
    edges : sequence of float
        Increasing periods (px) between the ranges reported, the first at least 2.

    Returns
    -------
    dict
        Period range (``"2-4 px"``, ...) -> share of the input kept.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage as ndi
    >>> from weldlab.evaluate import scale_transfer
    >>> from weldlab.patches import crop
    >>> x = np.random.default_rng(0).normal(0.4, 0.02, (4, 192, 192)).astype(np.float32)
    >>> {k: round(v, 2) for k, v in scale_transfer(x, crop(x)).items()}
    {'2-4 px': 1.0, '4-8 px': 1.0, '8-16 px': 1.0, '16-32 px': 1.0, '32-78 px': 1.0}
    >>> blur = crop(ndi.gaussian_filter(x, (0, 4, 4), mode="reflect"))
    >>> [round(v, 2) for v in scale_transfer(x, blur).values()]
    [0.0, 0.0, 0.08, 0.5, 0.83]
    """
    x = crop(check_patches(np.asarray(patches, np.float32)))
    rec = np.asarray(reconstruction)
    if rec.shape != x.shape:
        raise ValueError(f"reconstruction: expected shape {x.shape} (the patches' crops), got {rec.shape}")
    edges = [float(e) for e in edges]
    if len(edges) < 2 or edges[0] < 2 or any(not b > a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"edges: expected at least two increasing periods of 2 px or more, got {edges!r}")
    f = np.fft.fftfreq(CROP)
    radius = np.hypot(*np.meshgrid(f, f, indexing="ij"))
    with np.errstate(divide="ignore"):
        period = np.where(radius > 0, 1.0 / radius, np.inf)
    bins = np.digitize(period, edges) - 1  # -1 below the first edge, len(edges) - 1 above the last
    window = np.outer(np.hanning(CROP), np.hanning(CROP))
    cross, power = np.zeros(len(edges) + 1), np.zeros(len(edges) + 1)
    for i in range(0, len(x), chunk):
        xs, rs = (a[i : i + chunk].astype(np.float64) for a in (x, rec))
        fx = np.fft.fft2((xs - xs.mean(axis=(1, 2), keepdims=True)) * window)
        fr = np.fft.fft2((rs - rs.mean(axis=(1, 2), keepdims=True)) * window)
        cross += np.bincount(bins.ravel() + 1, (fr * fx.conj()).real.sum(0).ravel(), len(edges) + 1)
        power += np.bincount(bins.ravel() + 1, (np.abs(fx) ** 2).sum(0).ravel(), len(edges) + 1)
    labels = [f"{a:g}-{b:g} px" for a, b in zip(edges, edges[1:])]
    return {label: float(cross[k + 1] / power[k + 1]) for k, label in enumerate(labels)}


def reconstruction_quality(model, okay, fpr=DEFAULT_FPR, batch_size=64):
    """How close an autoencoder's residual on okay patches is to the film noise and the blur's.

    The film noise of the same patches is measured as in chapter 1
    (:func:`weldlab.calibration.noise_residual`: the patch minus its Gaussian blur,
    sigma 4 px), over the same central 156 x 156 pixels; that residual is also the classical
    baseline's (:func:`background_residuals`). A converged autoencoder cannot reconstruct
    the noise, so its residual's RMS approaches the noise's from above, and it should err
    no more than the blur does (``book/method.md`` §8).

    Parameters
    ----------
    model : keras.Model
        The autoencoder.
    okay : ndarray, shape (n, 192, 192)
        Okay patches (the validation okay patches of the training radiographs).
    fpr : float
        The quantile ``1 - fpr`` of the per-patch maximum ``|<r>|`` is reported (the value
        near which the threshold t_mean will be calibrated).

    Returns
    -------
    dict
        ``autoencoder`` and ``blur``: :func:`okay_residual_statistics` of each; and, from
        them, ``residual_rms``, ``residual_bias`` (mean residual), ``noise_std``,
        ``rms_over_noise``, ``window_mean_quantile`` (of the AE),
        ``baseline_window_mean_quantile`` (of the blur), ``quantile``, ``n`` and
        ``scale_transfer`` (the share of the input's structure at each spatial period the
        autoencoder keeps, :func:`scale_transfer`).
    """
    x = np.asarray(okay, np.float32)
    r = np.empty((len(x), CROP, CROP), np.float32)
    for i in range(0, len(x), 256):
        r[i : i + 256] = reconstruction_residuals(model, x[i : i + 256], batch_size)
    strata = okay_strata(x)
    ae = okay_residual_statistics(r, strata, fpr)
    mean = float(r.mean(dtype=np.float64))
    transfer = scale_transfer(x, crop(x) - r)
    r = background_residuals(x)  # the AE's residuals are summarised: their memory can go
    blur = okay_residual_statistics(r, strata, fpr)
    noise_std = float(r.std(dtype=np.float64))
    return {
        "autoencoder": ae, "blur": blur,
        "n": int(len(x)),
        "residual_rms": ae["rms"],
        "residual_bias": mean,
        "noise_std": noise_std,
        "rms_over_noise": ae["rms"] / noise_std,
        "window_mean_quantile": ae["max_mean"]["tail"],
        "baseline_window_mean_quantile": blur["max_mean"]["tail"],
        "quantile": 1 - fpr,
        "scale_transfer": transfer,
    }


def evaluate_autoencoder(model, datasets, fpr=DEFAULT_FPR, batch_size=64, sensitivity=False):
    """TPRs and AUROC of one autoencoder on every test set.

    Parameters
    ----------
    model : keras.Model or None
        None evaluates the classical baseline (:func:`evaluate_baseline`).
    datasets : weldlab.datasets.PatchDatasets
    fpr : float
        Patch-level false positive rate (paper: 0.001).
    sensitivity : bool
        Also the synthetic types under the other amplitude reading
        (:meth:`weldlab.datasets.PatchDatasets.sensitivity_sets`).

    Returns
    -------
    dict
        ``thresholds`` (:class:`weldlab.thresholds.ResidualThresholds`),
        ``fpr_calibrated_on_test``, ``n_test_okay``, ``test_fpr_resolvable`` (enough test okay patches for
        ``fpr``; a :class:`CalibrationWarning` says so otherwise) and ``sets``: name -> ``{"n", "tpr_calibrated",
        "tpr_at_test_fpr", "test_fpr", "auroc"}``, plus ``maxima`` (name -> (max_mean,
        max_std)) for figures.
    """
    val_mm, val_ms = residual_maxima(model, datasets["val_okay"], batch_size)
    thresholds = ResidualThresholds.calibrate(val_mm, val_ms, fpr)
    maxima = {"val_okay": (val_mm, val_ms)}
    for name, x in datasets.test_sets(sensitivity).items():
        maxima[name] = residual_maxima(model, x, batch_size) if len(x) else (np.zeros(0), np.zeros(0))
    scores = {name: thresholds.score(mm, ms) for name, (mm, ms) in maxima.items()}
    return {"thresholds": thresholds, **_operating_points(scores, thresholds, fpr), "maxima": maxima,
            "scores": scores}


def cnn_scores(model, patches, batch_size=64, chunk=1024):
    """The CNN's probability of "not okay" for each patch.

    Parameters
    ----------
    model : keras.Model
        From :func:`weldlab.models.build_cnn` (or loaded).
    patches : ndarray, shape (n, 192, 192)

    Returns
    -------
    ndarray, shape (n,), float64
    """
    n = len(patches)
    out = np.empty(n)
    for i in range(0, n, chunk):
        x = check_patches(np.asarray(patches[i : i + chunk], np.float32))
        out[i : i + chunk] = predict_batches(model, x[..., None], batch_size)[:, 0]
    return out


def evaluate_cnn(model, datasets, fpr=DEFAULT_FPR, batch_size=64, sensitivity=False):
    """TPRs and AUROC of one supervised CNN on every test set (Table 2).

    The CNN's score is its output probability. As for the autoencoder, a threshold is
    calibrated on the validation okay patches (``tpr_calibrated``) and the paper's operating
    point is the TPR at exactly ``fpr`` on the test okay patches (``tpr_at_test_fpr``).
    ``sensitivity`` as in :func:`evaluate_autoencoder`.

    Returns
    -------
    dict
        ``thresholds`` (:class:`weldlab.thresholds.ProbabilityThreshold`),
        ``fpr_calibrated_on_test``, ``test_fpr_resolvable``, ``sets`` as in
        :func:`evaluate_autoencoder`, and ``scores`` (name -> ndarray (n,)) for figures.
    """
    scores = {"val_okay": cnn_scores(model, datasets["val_okay"], batch_size)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        thresholds = ProbabilityThreshold.calibrate(scores["val_okay"], fpr)
    for name, x in datasets.test_sets(sensitivity).items():
        scores[name] = cnn_scores(model, x, batch_size) if len(x) else np.zeros(0)
    return {"thresholds": thresholds, **_operating_points(scores, thresholds, fpr), "scores": scores}


def _operating_points(scores, thresholds, fpr):
    """Rates on every test set of scores made by ``thresholds.score``."""

    def flagged(s):
        return s > thresholds.cut

    okay = scores["okay"]
    resolvable = fpr_budget(okay.size, fpr, warn=False) >= 1
    sets = {}
    for name, s in scores.items():
        if name in ("okay", "val_okay"):
            continue
        with warnings.catch_warnings():  # reported once, as test_fpr_resolvable
            warnings.simplefilter("ignore", CalibrationWarning)
            at = metrics.tpr_at_fpr(okay, s, fpr)
        sets[name] = {"n": int(s.size), "tpr_calibrated": float(np.mean(flagged(s))) if s.size else float("nan"),
                      "tpr_at_test_fpr": at["tpr"], "test_fpr": at["fpr"], "auroc": metrics.auroc(okay, s)}
    if not resolvable:
        warnings.warn(
            f"{okay.size} test okay patches cannot resolve a false positive rate of {fpr:g}: "
            "'tpr_at_test_fpr' is measured at a rate of 0 on them", CalibrationWarning, stacklevel=3,
        )
    return {"fpr_calibrated_on_test": float(np.mean(flagged(okay))), "test_fpr_resolvable": bool(resolvable),
            "n_test_okay": int(okay.size), "sets": sets}


def evaluation_table(result, fpr=DEFAULT_FPR):
    """Markdown: a detector's rates on every test set (:func:`evaluate_autoencoder`).

    One row per test set: its size, the share flagged at the calibrated thresholds, the
    TPR at ``fpr`` measured on the test okay patches and the AUROC; the first row is the
    test okay patches (the false positives). A warning follows when the test okay patches
    cannot resolve ``fpr``.

    Examples
    --------
    >>> from weldlab.evaluate import evaluation_table
    >>> result = {"fpr_calibrated_on_test": 0.0, "test_fpr_resolvable": True, "n_test_okay": 2000,
    ...           "sets": {"partial_circle": {"n": 200, "tpr_calibrated": 0.5, "tpr_at_test_fpr": 0.55,
    ...                                       "auroc": 0.9}}}
    >>> print(evaluation_table(result).splitlines()[3])
    | partial circle | 200 | 50 % | 55 % | 0.90 |
    """
    from .figures import markdown_table

    rate = f"{100 * fpr:g} %"
    n_okay = result["n_test_okay"]
    rows = [["okay (false positives)", n_okay, f"{100 * result['fpr_calibrated_on_test']:.1f} %", "–", "–"]]
    rows += [[name.replace("_", " "), s["n"], f"{100 * s['tpr_calibrated']:.0f} %", f"{100 * s['tpr_at_test_fpr']:.0f} %",
              f"{s['auroc']:.2f}"] for name, s in result["sets"].items()]
    table = markdown_table(["test set", "patches", "flagged at calibrated thresholds", f"TPR at {rate} test FPR",
                            "AUROC"], rows)
    if not result["test_fpr_resolvable"]:
        table += (f"\n\n**Warning:** the {n_okay} test okay patches cannot resolve {rate}: the 'TPR at {rate} "
                  "test FPR' column is measured at a false positive rate of 0 on them.")
    return table


def baseline_comparison_table(result, baseline, fpr=DEFAULT_FPR):
    """Markdown: the blur baseline beside the autoencoder on every test set.

    Parameters
    ----------
    result, baseline : dict
        :func:`evaluate_autoencoder` and :func:`evaluate_baseline` on the same datasets.
    fpr : float

    Returns
    -------
    str
        The share flagged at each one's calibrated thresholds and its TPR at ``fpr`` on the
        test okay patches; the first row is the test okay patches.
    """
    from .figures import markdown_table

    rate = f"{100 * fpr:g} %"
    rows = [["okay (false positive rate)", f"{100 * baseline['fpr_calibrated_on_test']:.1f} %",
             f"{100 * result['fpr_calibrated_on_test']:.1f} %", "–", "–"]]
    for name, s in result["sets"].items():
        b = baseline["sets"][name]
        rows.append([name.replace("_", " "), f"{100 * b['tpr_calibrated']:.0f} %", f"{100 * s['tpr_calibrated']:.0f} %",
                     f"{100 * b['tpr_at_test_fpr']:.0f} %", f"{100 * s['tpr_at_test_fpr']:.0f} %"])
    return markdown_table(["test set", "blur baseline: flagged", "autoencoder: flagged",
                           f"blur: TPR at {rate} test FPR", f"autoencoder: TPR at {rate} test FPR"], rows)


def better_than_baseline(result, baseline):
    """The test sets on which the autoencoder's TPR at the test FPR beats the blur's.

    Returns
    -------
    list of str
        Set names, in the order of ``result["sets"]``.

    Examples
    --------
    >>> from weldlab.evaluate import better_than_baseline
    >>> ae = {"sets": {"high": {"tpr_at_test_fpr": 0.9}, "raster": {"tpr_at_test_fpr": 0.2}}}
    >>> blur = {"sets": {"high": {"tpr_at_test_fpr": 0.8}, "raster": {"tpr_at_test_fpr": 0.2}}}
    >>> better_than_baseline(ae, blur)
    ['high']
    """
    return [n for n, s in result["sets"].items() if s["tpr_at_test_fpr"] > baseline["sets"][n]["tpr_at_test_fpr"]]
