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
"""

from __future__ import annotations

import warnings

import numpy as np

from . import metrics
from .patches import crop
from .residuals import CalibrationWarning, calibrate_thresholds, combined_score, patch_maxima


def residuals(model, patches, batch_size=64):
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
    x = np.asarray(patches, np.float32)
    if x.ndim != 3 or x.shape[1:] != (192, 192):
        raise ValueError(f"patches: expected shape (n, 192, 192), got {x.shape}")
    recon = model.predict(x[..., None], batch_size=batch_size, verbose=0)[..., 0]
    return (crop(x) - recon).astype(np.float32)


def residual_maxima(model, patches, batch_size=64, chunk=512):
    """Per-patch maxima of ``|<r>|`` and ``sigma(r)``, computed chunk by chunk.

    Returns
    -------
    max_mean, max_std : ndarray, shape (n,)
    """
    n = len(patches)
    mm, ms = np.empty(n), np.empty(n)
    for i in range(0, n, chunk):
        mm[i : i + chunk], ms[i : i + chunk] = patch_maxima(residuals(model, patches[i : i + chunk], batch_size))
    return mm, ms


def evaluate_autoencoder(model, datasets, fpr=0.001, batch_size=64):
    """TPRs and AUROC of one autoencoder on every test set.

    Parameters
    ----------
    model : keras.Model
    datasets : weldlab.datasets.PatchDatasets
    fpr : float
        Patch-level false positive rate (paper: 0.001).

    Returns
    -------
    dict
        ``thresholds`` (see :func:`weldlab.residuals.calibrate_thresholds`),
        ``fpr_calibrated_on_test``, ``test_fpr_resolvable`` (enough test okay patches for
        ``fpr``; a :class:`CalibrationWarning` says so otherwise) and ``sets``: name -> ``{"n", "tpr_calibrated",
        "tpr_at_test_fpr", "test_fpr", "auroc"}``, plus ``maxima`` (name -> (max_mean,
        max_std)) for figures.
    """
    val_mm, val_ms = residual_maxima(model, datasets["val_okay"], batch_size)
    thresholds = calibrate_thresholds(val_mm, val_ms, fpr)
    maxima = {"val_okay": (val_mm, val_ms)}
    for name, x in datasets.test_sets().items():
        maxima[name] = residual_maxima(model, x, batch_size) if len(x) else (np.zeros(0), np.zeros(0))
    scores = {name: combined_score(mm, ms, thresholds) for name, (mm, ms) in maxima.items()}
    return {"thresholds": thresholds, **_operating_points(scores, lambda s: s > 1, fpr),
            "maxima": maxima, "scores": scores}


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
        x = np.asarray(patches[i : i + chunk], np.float32)
        if x.ndim != 3 or x.shape[1:] != (192, 192):
            raise ValueError(f"patches: expected shape (n, 192, 192), got {x.shape}")
        out[i : i + chunk] = model.predict(x[..., None], batch_size=batch_size, verbose=0)[:, 0]
    return out


def evaluate_cnn(model, datasets, fpr=0.001, batch_size=64):
    """TPRs and AUROC of one supervised CNN on every test set (Table 2).

    The CNN's score is its output probability. As for the autoencoder, a threshold is
    calibrated on the validation okay patches (``tpr_calibrated``) and the paper's operating
    point is the TPR at exactly ``fpr`` on the test okay patches (``tpr_at_test_fpr``).

    Returns
    -------
    dict
        ``threshold``, ``fpr_calibrated_on_test``, ``test_fpr_resolvable``, ``sets`` as in
        :func:`evaluate_autoencoder`, and ``scores`` (name -> ndarray (n,)) for figures.
    """
    scores = {"val_okay": cnn_scores(model, datasets["val_okay"], batch_size)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        threshold, _ = metrics.threshold_at_fpr(scores["val_okay"], fpr)
    for name, x in datasets.test_sets().items():
        scores[name] = cnn_scores(model, x, batch_size) if len(x) else np.zeros(0)
    return {"threshold": threshold, **_operating_points(scores, lambda s: s > threshold, fpr),
            "scores": scores}


def _operating_points(scores, flagged, fpr):
    okay = scores["okay"]
    resolvable = okay.size * fpr >= 1
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
            "sets": sets}
