"""Unexpected inputs: what neither network was trained or calibrated on.

:func:`unexpected_inputs` turns okay test patches into inputs an inspection system may meet
but no training set held: natural and other non-weld images, blank and saturated frames,
inverted, magnified and rotated patches, heavy noise, scanner stripes, lead markers and IQI
wires. :func:`detection_rates` measures how often the autoencoder detector and the CNN flag
each kind at their thresholds for 0.1 % false positives, so the two can be compared on the
question that matters: does the system hand the input to a human?

The natural images here are scikit-image images that the SNI perturbations do **not** use
(see :func:`weldlab.perturbations.natural_images`), so no model has seen their textures.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .patches import PATCH

#: The kinds of unexpected input, in the order the book shows them.
UNEXPECTED_KINDS = ("natural", "blank", "saturated", "inverted", "magnified", "rotated", "noised",
                    "stripes", "markers", "iqi_wires")

#: Images for "natural": none of them is an SNI source.
HELD_OUT_IMAGES = ("shepp_logan_phantom", "retina", "hubble_deep_field", "microaneurysms", "logo",
                   "stereo_motorcycle", "checkerboard", "binary_blobs")


def held_out_images():
    """Grayscale images in [0, 1] from scikit-image that SNI never uses (those that need a
    download are skipped)."""
    from .perturbations import skimage_gray

    out = [img.astype(np.float32) for img in skimage_gray(HELD_OUT_IMAGES) if min(img.shape) >= PATCH]
    if not out:
        raise RuntimeError("no held-out natural image is available from scikit-image")
    return out


def _text_mask(text, size, height=70):
    """A boolean (size, size) raster of ``text`` (matplotlib's font outlines), centred."""
    from matplotlib.textpath import TextPath

    path = TextPath((0, 0), text, size=height)
    ext = path.get_extents()
    yy, xx = np.mgrid[0:size, 0:size]
    pts = np.column_stack([xx.ravel() + ext.x0 - (size - ext.width) / 2,
                           (size - 1 - yy).ravel() + ext.y0 - (size - ext.height) / 2])
    return path.contains_points(pts).reshape(size, size)


def unexpected_inputs(okay, n=20, seed=0):
    """Unexpected inputs made from okay patches (or, for "natural", from other images).

    Parameters
    ----------
    okay : ndarray, shape (m, 192, 192), float32
        Okay test patches (at least one).
    n : int
        Patches per kind.
    seed : int

    Returns
    -------
    dict
        kind -> ndarray (n, 192, 192), float32 in [0, 1], for every kind in
        :data:`UNEXPECTED_KINDS`.
    """
    okay = np.asarray(okay, np.float32)
    if okay.ndim != 3 or okay.shape[1:] != (PATCH, PATCH) or len(okay) == 0:
        raise ValueError(f"okay: expected okay patches of shape (m, {PATCH}, {PATCH}), got {okay.shape}")
    if int(n) < 1:
        raise ValueError(f"n: expected a positive number of patches, got {n!r}")
    rng = np.random.default_rng([seed, 77])
    base = okay[rng.integers(0, len(okay), n)]
    mean = base.mean(axis=(1, 2), keepdims=True)
    out = {}
    images = held_out_images()
    nat = []
    for _ in range(n):
        img = images[rng.integers(len(images))]
        r, c = rng.integers(0, img.shape[0] - PATCH + 1), rng.integers(0, img.shape[1] - PATCH + 1)
        nat.append(img[r : r + PATCH, c : c + PATCH])
    out["natural"] = np.stack(nat)
    out["blank"] = np.broadcast_to(mean, base.shape).copy()  # a uniform frame at the patch's mean level
    out["saturated"] = np.clip(base * 2.5, 0, 1)  # over-exposed: the brighter half clips at 1
    out["inverted"] = 1.0 - base
    # magnified x2 about the centre: the weld looks twice as wide and the noise twice as coarse
    out["magnified"] = ndimage.zoom(base[:, PATCH // 4 : 3 * PATCH // 4, PATCH // 4 : 3 * PATCH // 4], (1, 2, 2), order=1)
    out["rotated"] = np.stack([ndimage.rotate(p, float(rng.uniform(30, 60)), reshape=False, mode="reflect", order=1)
                               for p in base])
    out["noised"] = np.clip(base + rng.normal(0, 0.05, base.shape), 0, 1)  # ten times the film noise
    cols = np.arange(PATCH)
    stripes = np.zeros_like(base)
    for k in range(n):
        period = rng.uniform(6, 20)
        stripes[k] = 0.03 * np.sign(np.sin(2 * np.pi * cols / period + rng.uniform(0, 6.3)))[None, :]
    out["stripes"] = np.clip(base + stripes, 0, 1)
    marks = []
    for k in range(n):
        text = f"{'ABCDEFHKLMNPRSTW'[rng.integers(16)]}{rng.integers(10)}"
        m = ndimage.gaussian_filter(_text_mask(text, PATCH).astype(np.float32), 1.0)
        marks.append(np.clip(base[k] + 0.35 * m, 0, 1))  # lead absorbs: the letters are bright
    out["markers"] = np.stack(marks)
    wires = []
    yy, xx = np.mgrid[0:PATCH, 0:PATCH]
    for k in range(n):
        angle = rng.uniform(0, np.pi)
        d = (xx - PATCH / 2) * np.cos(angle) + (yy - PATCH / 2) * np.sin(angle)
        img = base[k].copy()
        for j, offset in enumerate((-45, -15, 15, 45)):  # four wires of decreasing diameter
            radius = 3.0 - 0.6 * j
            chord = np.sqrt(np.clip(radius ** 2 - (d - offset) ** 2, 0, None))  # a wire's thickness profile
            img = img + 0.04 * chord / 3.0
        wires.append(np.clip(img, 0, 1))
    out["iqi_wires"] = np.stack(wires)
    return {k: np.ascontiguousarray(out[k], np.float32) for k in UNEXPECTED_KINDS}


def detection_rates(inputs, ae_score=None, cnn_score=None):
    """Fraction of each kind of input flagged by each detector.

    Parameters
    ----------
    inputs : dict
        name -> patches (n, 192, 192).
    ae_score, cnn_score : callable, optional
        ``patches -> scores`` where a score above 1 (AE: the combined score relative to its
        thresholds) or above the CNN's threshold means flagged; give the CNN's as
        ``lambda x: probability(x) / threshold``.

    Returns
    -------
    dict
        name -> ``{"n", "ae", "cnn"}`` (fractions flagged; None where a scorer is missing).
    """
    out = {}
    for name, x in inputs.items():
        row = {"n": int(len(x))}
        for key, fn in (("ae", ae_score), ("cnn", cnn_score)):
            row[key] = float(np.mean(np.asarray(fn(x)) > 1)) if fn is not None else None
        out[name] = row
    return out
