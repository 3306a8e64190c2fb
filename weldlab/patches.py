"""Patches: rotated 192 x 192 crops, okay/defect selection, augmentation, contrast classes.

Paper §3.3: patches are cut at a random position and a random rotation U(0°, 360°). A
patch is *okay* when no defect pixel (mask dilated by :data:`OKAY_MARGIN` px) falls in the
whole rotated footprint, and a *defect* patch when a defect pixel falls inside the central
156 x 156 region that the autoencoder reconstructs. Patches are resampled with bilinear
interpolation (image) and nearest neighbour (mask).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .geometry import CROP, OFFSET, PATCH
from .radiographs import check_image_array, check_mask

#: Dilation (px) of the defect mask before a patch may count as okay (the footprint test
#: runs on a 4-px grid against the mask grown by 3 px more, so the margin is 4-7 px).
OKAY_MARGIN = 4
COARSE = PATCH // 4

#: Names of the six augmentation operations (paper: x6 without storing copies).
AUGMENTATIONS = ("identity", "rot90", "rot180", "rot270", "flipud", "fliplr")

#: Contrast-to-noise cut-offs between the low / mid / high test classes.
CNR_CUTOFFS = (3.0, 7.0)
CONTRAST_CLASSES = ("low", "mid", "high")


def _patch_grid(size, spacing=1.0):
    """Pixel-centre offsets of a ``size`` x ``size`` patch around its centre."""
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    return (yy - c) * spacing, (xx - c) * spacing


def footprint_half_extent(theta, size=PATCH):
    """Half extent (px) along y and x of a square of side ``size`` rotated by ``theta``.

    Parameters
    ----------
    theta : ndarray, shape (n,)
        Rotation angles in radians.

    Returns
    -------
    ndarray, shape (n,)
    """
    return 0.5 * (size - 1) * (np.abs(np.cos(theta)) + np.abs(np.sin(theta)))


def patch_coordinates(centres, theta, size=PATCH, spacing=1.0):
    """Image coordinates sampled by rotated patches.

    Parameters
    ----------
    centres : ndarray, shape (n, 2)
        Patch centres ``(y, x)`` in image pixels.
    theta : ndarray, shape (n,)
        Rotations in radians.
    size : int
        Patch side (samples).
    spacing : float
        Distance in image pixels between samples.

    Returns
    -------
    ndarray, shape (2, n, size, size)
        ``(y, x)`` coordinates for :func:`scipy.ndimage.map_coordinates`.
    """
    dy, dx = _patch_grid(size, spacing)
    c, s = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    y = centres[:, 0, None, None] + c * dy + s * dx
    x = centres[:, 1, None, None] - s * dy + c * dx
    return np.stack([y, x])


def extract_patches(image, centres, theta, order=1, size=PATCH, spacing=1.0):
    """Cut rotated patches out of an image.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Intensities or a mask (use ``order=0`` for masks and labels).
    centres : ndarray, shape (n, 2)
    theta : ndarray, shape (n,)
    order : int
        Spline order: 1 (bilinear) for intensities, 0 for masks.
    size, spacing
        Samples per side and their spacing in image pixels.

    Returns
    -------
    ndarray, shape (n, size, size)
        Same dtype as ``image`` (float32 for intensities).
    """
    coords = patch_coordinates(np.asarray(centres, float), np.asarray(theta, float), size, spacing)
    src = image.astype(np.float32) if image.dtype == bool else image
    out = ndi.map_coordinates(src, coords.reshape(2, -1), order=order, mode="nearest")
    out = out.reshape(coords.shape[1:])
    return out.astype(image.dtype) if order == 0 else out.astype(np.float32)


def random_placements(rng, shape, n, size=PATCH):
    """Random centres and angles whose rotated footprint lies inside the image.

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : tuple of int
        Image ``(H, W)``.
    n : int
        Number of placements.

    Returns
    -------
    centres : ndarray, shape (n, 2)
    theta : ndarray, shape (n,)
    """
    h, w = shape
    theta = rng.uniform(0.0, 2 * np.pi, n)
    half = footprint_half_extent(theta, size)
    # Keep a half pixel inside so bilinear sampling never reads past the border.
    lo = half + 0.5
    if np.any(2 * lo > min(h, w) - 1):
        raise ValueError(
            f"image of {h}x{w} px is too small for rotated {size} px patches "
            f"(needs about {int(np.ceil(size * np.sqrt(2))) + 2} px per side)"
        )
    cy = rng.uniform(lo, h - 1 - lo)
    cx = rng.uniform(lo, w - 1 - lo)
    return np.stack([cy, cx], axis=1), theta


def sample_patches(image, mask, n_okay, n_defect, rng, labels=None, max_candidates=None):
    """Sample okay and defect patches from one radiograph.

    Parameters
    ----------
    image : ndarray, shape (H, W), float32
        Radiograph in [0, 1].
    mask : ndarray, shape (H, W), bool
        Defect pixels.
    n_okay, n_defect : int
        Numbers wanted.
    rng : numpy.random.Generator
    labels : ndarray, shape (H, W), int, optional
        Defect type codes, cut out alongside the defect patches.
    max_candidates : int, optional
        Placements tried before giving up (default ``50 * max(n_okay, n_defect) + 2000``).
        Fewer patches than asked are returned when the radiograph does not hold enough.

    Returns
    -------
    okay : dict
        ``patches`` (k, 192, 192) float32, ``centres`` (k, 2), ``theta`` (k,).
    defect : dict
        The same plus ``masks`` (m, 192, 192) bool (and ``labels`` if given).
    """
    check_image_array(image, what="image", min_side=PATCH)
    check_mask(mask, image.shape, what="mask")
    for name, value in (("n_okay", n_okay), ("n_defect", n_defect)):
        if int(value) != value or value < 0:
            raise ValueError(f"{name}: expected a non-negative integer, got {value!r}")
    n_okay, n_defect = int(n_okay), int(n_defect)
    want = {"okay": n_okay, "defect": n_defect}
    max_candidates = (
        50 * max(n_okay, n_defect) + 2000 if max_candidates is None else int(max_candidates)
    )
    # One Euclidean distance map to the nearest defect pixel serves both tests: patches
    # whose centre is far from every defect are certainly okay, very near certainly
    # defect; only the rest need the exact rotated-footprint test.
    dist = ndi.distance_transform_edt(~mask) if mask.any() else np.full(mask.shape, np.inf)
    grown_coarse = dist <= OKAY_MARGIN + 3
    outer = 0.5 * PATCH * np.sqrt(2) + OKAY_MARGIN + 1
    inner = 0.5 * CROP - 1
    kept = {"okay": ([], []), "defect": ([], [])}
    found = {"okay": 0, "defect": 0}
    tried = 0
    batch = max(256, 2 * max(n_okay, n_defect))
    while tried < max_candidates and any(found[k] < want[k] for k in want):
        centres, theta = random_placements(rng, image.shape, batch)
        tried += batch
        iy, ix = np.round(centres).astype(int).T
        d = dist[iy, ix]
        if found["okay"] < n_okay:
            good = d > outer
            maybe = ~good & (d > OKAY_MARGIN)
            if maybe.any():
                # Footprint test on a 4-px grid against the mask grown by 3 px more, so
                # no grown pixel can fall between grid points (conservative, 16x cheaper).
                fp = extract_patches(grown_coarse, centres[maybe], theta[maybe], order=0,
                                     size=COARSE, spacing=PATCH / COARSE)
                good[np.flatnonzero(maybe)[~fp.reshape(fp.shape[0], -1).any(axis=1)]] = True
            idx = np.flatnonzero(good)[: n_okay - found["okay"]]
            kept["okay"][0].append(centres[idx])
            kept["okay"][1].append(theta[idx])
            found["okay"] += idx.size
        if found["defect"] < n_defect:
            good = d < inner
            maybe = ~good & (d < 0.5 * PATCH * np.sqrt(2) + 1)
            if maybe.any():
                fp = crop(extract_patches(mask, centres[maybe], theta[maybe], order=0))
                good[np.flatnonzero(maybe)[fp.reshape(fp.shape[0], -1).any(axis=1)]] = True
            idx = np.flatnonzero(good)[: n_defect - found["defect"]]
            kept["defect"][0].append(centres[idx])
            kept["defect"][1].append(theta[idx])
            found["defect"] += idx.size
    result = {}
    for kind, (cs, ts) in kept.items():
        centres = np.concatenate(cs) if cs else np.zeros((0, 2))
        theta = np.concatenate(ts) if ts else np.zeros(0)
        out = {
            "patches": extract_patches(image, centres, theta, order=1),
            "centres": centres,
            "theta": theta,
        }
        if kind == "defect":
            out["masks"] = extract_patches(mask, centres, theta, order=0)
            if labels is not None:
                out["labels"] = extract_patches(labels, centres, theta, order=0)
        result[kind] = out
    return result["okay"], result["defect"]


def augment(patches, op):
    """Apply one of the six augmentation operations.

    Parameters
    ----------
    patches : ndarray, shape (n, H, W) or (H, W)
    op : int or ndarray of int, shape (n,)
        Index into :data:`AUGMENTATIONS` (0 identity, 1-3 rot90/180/270, 4 flipud,
        5 fliplr), one per patch or one for all.

    Returns
    -------
    ndarray, same shape as ``patches``

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.patches import augment, crop
    >>> p = np.arange(192 * 192, dtype=np.uint16).reshape(1, 192, 192)
    >>> augment(p, 1).shape, crop(p).shape, bool(np.array_equal(augment(p, 0), p))
    ((1, 192, 192), (1, 156, 156), True)
    """
    patches = np.asarray(patches)
    single = patches.ndim == 2
    p = patches[None] if single else patches
    ops = np.broadcast_to(np.asarray(op, dtype=int), (p.shape[0],))
    if np.any((ops < 0) | (ops > 5)):
        raise ValueError(f"op: augmentation index must be in 0..5, got {np.unique(ops)}")
    out = np.empty_like(p)
    for k in range(6):
        sel = ops == k
        if not sel.any():
            continue
        q = p[sel]
        if 1 <= k <= 3:
            q = np.rot90(q, k, axes=(1, 2))
        elif k == 4:
            q = q[:, ::-1, :]
        elif k == 5:
            q = q[:, :, ::-1]
        out[sel] = q
    return out[0] if single else out


class AugmentedPatches:
    """A x6 augmented view of a patch array, computed on access (nothing is copied).

    Item ``i`` is patch ``i // 6`` under operation ``i % 6``.

    Parameters
    ----------
    patches : ndarray, shape (n, H, W)
    """

    def __init__(self, patches):
        self.patches = patches

    def __len__(self):
        return 6 * len(self.patches)

    def __getitem__(self, index):
        index = np.asarray(index)
        if np.any((index < 0) | (index >= len(self))):
            raise IndexError(f"index out of range for {len(self)} augmented patches")
        return augment(self.patches[index // 6], index % 6)


def crop(patches):
    """The central 156 x 156 region that the autoencoder reconstructs.

    Parameters
    ----------
    patches : ndarray, shape (..., 192, 192)

    Returns
    -------
    ndarray, shape (..., 156, 156)
    """
    return patches[..., OFFSET : OFFSET + CROP, OFFSET : OFFSET + CROP]


def contrast_to_noise(patches, masks, chunk=256):
    """Contrast-to-noise ratio of the defect in each patch.

    Contrast ``C`` is the mean intensity of the defect pixels inside the central 156 px
    region minus the mean of a ring 1-3 px outside them; noise ``s`` is the standard
    deviation of the high-pass residual (patch minus a σ = 4 px Gaussian blur) on the
    pixels at least 6 px from any defect. ``CNR = |C| / s``.

    Parameters
    ----------
    patches : ndarray, shape (n, 192, 192)
    masks : ndarray, shape (n, 192, 192), bool
    chunk : int
        Patches processed at a time.

    Returns
    -------
    cnr : ndarray, shape (n,)
    contrast : ndarray, shape (n,)
    noise : ndarray, shape (n,)
    """
    if np.shape(patches) != np.shape(masks):
        raise ValueError(f"masks: shape {np.shape(masks)} does not match patches {np.shape(patches)}")
    if len(patches) > chunk:  # bounded memory for large sets
        parts = [contrast_to_noise(patches[i : i + chunk], masks[i : i + chunk], chunk)
                 for i in range(0, len(patches), chunk)]
        return tuple(np.concatenate([p[k] for p in parts]) for k in range(3))
    patches = np.asarray(patches, np.float64)
    masks = np.asarray(masks, bool)
    plane = np.zeros((3, 3, 3), bool)
    plane[1] = True  # dilate within each patch, never across the batch axis
    core = np.zeros_like(masks)
    core[:, OFFSET : OFFSET + CROP, OFFSET : OFFSET + CROP] = crop(masks)
    near = ndi.binary_dilation(core, plane, iterations=1)
    ring = ndi.binary_dilation(core, plane, iterations=3) & ~near & ~masks
    far = ~ndi.binary_dilation(masks, plane, iterations=6)
    far[:, :12, :] = far[:, -12:, :] = far[:, :, :12] = far[:, :, -12:] = False
    axes = (1, 2)
    inside = (patches * core).sum(axes) / np.maximum(core.sum(axes), 1)
    around = (patches * ring).sum(axes) / np.maximum(ring.sum(axes), 1)
    hp = patches - ndi.gaussian_filter(patches, (0, 4, 4))
    cnt = np.maximum(far.sum(axes), 1)
    mean = (hp * far).sum(axes) / cnt
    noise = np.sqrt(np.maximum(((hp - mean[:, None, None]) ** 2 * far).sum(axes) / cnt, 0))
    contrast = inside - around
    cnr = np.abs(contrast) / np.maximum(noise, 1e-6)
    return cnr, contrast, noise


def contrast_class(cnr, cutoffs=CNR_CUTOFFS):
    """Split defect patches into low / mid / high contrast by their CNR.

    Parameters
    ----------
    cnr : ndarray, shape (n,)
    cutoffs : tuple of float
        ``(low_mid, mid_high)``.

    Returns
    -------
    ndarray, shape (n,), int8
        0 = low, 1 = mid, 2 = high (see :data:`CONTRAST_CLASSES`).
    """
    lo, hi = cutoffs
    if not 0 <= lo < hi:
        raise ValueError(f"cutoffs: expected 0 <= low_mid < mid_high, got {cutoffs!r}")
    return np.digitize(np.asarray(cnr), [lo, hi]).astype(np.int8)
