"""Whole-radiograph analysis with the fully convolutional autoencoder.

The autoencoder has only convolutions, so it applies to any image, not just 192 px
patches. Its total stride is 4: an input of side ``192 + 4k`` gives an output of side
``156 + 4k``, and output pixel ``(i, j)`` is the reconstruction of input pixel
``(i + 18, j + 18)``, the same relation as for one patch. A radiograph is therefore padded
(by reflection, at the bottom and right) to such a size, reconstructed in a few large
overlapping tiles (not a loop over 192 px patches), and the residual map covers everything
but an 18 px border.

The whole-image reconstruction equals the patch-wise one except in a band of up to 4 px
along the patch's edges: there, the transposed convolutions of a lone patch miss the contributions of
the pixels beyond it, which the whole-image pass has (``tests/test_scan.py`` measures the
band). This makes the whole-image pass the better of the two, not merely the faster.
"""

from __future__ import annotations

import keras
import numpy as np

from .geometry import KERNEL, NETWORK_STRIDE, OFFSET, PATCH, QUIET_KERNEL
from .radiographs import RadiographError, check_image_array
from .residuals import kernel_statistics
from .thresholds import ResidualThresholds

#: Outputs (px) next to an inner tile edge that the transposed convolutions affect, and
#: that tiling therefore recomputes from a larger window (a multiple of NETWORK_STRIDE).
EDGE = 8


def fully_convolutional(autoencoder):
    """The same layers and weights, accepting inputs of any size.

    Parameters
    ----------
    autoencoder : keras.Model
        From :func:`weldlab.models.build_autoencoder` (or loaded).

    Returns
    -------
    keras.Model
        ``(batch, H, W, 1) -> (batch, H - 36, W - 36, 1)`` for ``H, W = 192 + 4k``.
    """
    names = {layer.name for layer in getattr(autoencoder, "layers", [])}
    if not {"encoder", "decoder"} <= names:
        raise ValueError(
            f"autoencoder: expected a weldlab autoencoder with 'encoder' and 'decoder' sub-models, "
            f"got {getattr(autoencoder, 'name', type(autoencoder).__name__)!r} (layers: {sorted(names)[:6]})"
        )
    x_in = keras.Input((None, None, 1), name="radiograph")
    x = x_in
    for sub in ("encoder", "decoder"):
        for layer in autoencoder.get_layer(sub).layers[1:]:
            x = layer(x)
    return keras.Model(x_in, x, name="autoencoder_fc")


def _fit_size(n):
    """Smallest size >= n of the form 192 + 4k."""
    return PATCH + NETWORK_STRIDE * int(np.ceil(max(n - PATCH, 0) / NETWORK_STRIDE))


#: Default output tile side (px). Measured on the 2-core CPU, a 6000 x 6000 px film:
#: 109 s and 1.8 GB peak memory at 1024 px, 127 s and 3.6 GB at 2048 px.
TILE = 1024
#: Smallest and largest accepted tile side (px). Below the minimum the per-tile overhead
#: (the 2 x 18 px margins and the 8 px edges) dominates; above the maximum one tile's
#: activations alone need tens of GB.
TILE_RANGE = (32, 8192)


def check_tile(tile):
    """Validate an output tile side; return it rounded down to a multiple of 4.

    Raises
    ------
    ValueError
        Naming ``--tile`` and the accepted range.
    """
    lo, hi = TILE_RANGE
    if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or not lo <= tile <= hi:
        raise ValueError(f"--tile: expected an integer from {lo} to {hi} px, got {tile!r}")
    return int(tile) // NETWORK_STRIDE * NETWORK_STRIDE


def _reflect_indices(start, stop, n):
    """Indices ``start..stop-1`` into an axis of length ``n``, mirrored past its end.

    As ``np.pad(..., mode="reflect")`` does.
    """
    idx = np.arange(start, stop)
    if stop <= n:
        return idx
    return np.pad(np.arange(n), (0, stop - n), mode="reflect")[idx]


def _reconstruct_block(model_fc, image, top, left, th, tw):
    """Reconstruction of output pixels ``[top, top + th) x [left, left + tw)``.

    The input window reaches :data:`EDGE` px beyond the block on every inner side; the
    outputs there, touched by the transposed convolutions' edges, are discarded. Past the
    image's bottom and right the window is the image mirrored (``mode="reflect"``).
    """
    h, w = image.shape
    pre_y, pre_x = (EDGE if top else 0), (EDGE if left else 0)
    ih = _fit_size(pre_y + th + 2 * OFFSET + EDGE)
    iw = _fit_size(pre_x + tw + 2 * OFFSET + EDGE)
    rows = _reflect_indices(top - pre_y, top - pre_y + ih, h)
    cols = _reflect_indices(left - pre_x, left - pre_x + iw, w)
    window = image[np.ix_(rows, cols)]
    # a direct call, not predict(): blocks differ in shape, and predict would retrace
    out = keras.ops.convert_to_numpy(model_fc(window[None, ..., None], training=False))[0, ..., 0]
    return out[pre_y : pre_y + th, pre_x : pre_x + tw]


def reconstruct(model_fc, image, tile=TILE):
    """Reconstruct a whole radiograph.

    Parameters
    ----------
    model_fc : keras.Model
        From :func:`fully_convolutional`.
    image : ndarray, shape (H, W), float32 in [0, 1]
        At least 192 px per side.
    tile : int
        Output tile side (:data:`TILE_RANGE`, rounded down to a multiple of 4). Each tile
        is computed from an input window that reaches :data:`EDGE` px further on every
        inner side; the outputs there, touched by the transposed convolutions' edges, are
        discarded, so the tiling is seamless (the result equals a single pass over the
        whole image) and the memory the network needs is bounded by the tile.

    Returns
    -------
    ndarray, shape (H - 36, W - 36), float32
        Reconstruction of ``image[18:-18, 18:-18]``.
    """
    image = check_image_array(np.asarray(image, np.float32), what="image", min_side=PATCH)
    tile = check_tile(tile)
    h, w = image.shape
    out_h, out_w = h - 2 * OFFSET, w - 2 * OFFSET
    recon = np.empty((out_h, out_w), np.float32)
    for top in range(0, out_h, tile):
        for left in range(0, out_w, tile):
            th, tw = min(tile, out_h - top), min(tile, out_w - left)
            recon[top : top + th, left : left + tw] = _reconstruct_block(model_fc, image, top, left, th, tw)
    return recon


def residual_map(model_fc, image, tile=TILE):
    """Residual ``image[18:-18, 18:-18] - reconstruction`` of a whole radiograph.

    Returns
    -------
    ndarray, shape (H - 36, W - 36), float32
    """
    image = np.asarray(image, np.float32)
    return image[OFFSET:-OFFSET, OFFSET:-OFFSET] - reconstruct(model_fc, image, tile)


def scan_maps(model_fc, image, thresholds, tile=TILE, kernel=KERNEL, keep_maps=True, progress=None, name="image"):
    """Window statistics and flagged windows of a whole radiograph, tile by tile.

    Each tile of windows is reconstructed with the ``kernel - 1`` residual rows and
    columns its windows reach beyond it, so the statistics equal those of the whole
    residual map; the residual itself is never held for the whole image.

    Parameters
    ----------
    model_fc : keras.Model
        From :func:`fully_convolutional`.
    image : ndarray, shape (H, W), float32 in [0, 1]
    thresholds : weldlab.thresholds.ResidualThresholds or dict
        With ``t_quiet``, the two-sided rule (windows whose
        :data:`~weldlab.geometry.QUIET_KERNEL` neighbourhood is too quiet are flagged too).
    tile : int
        Tile side in windows (see :func:`check_tile`).
    keep_maps : bool
        Return the full ``mean`` and ``std`` maps (8 bytes per window; for figures).
        Without them the memory beyond the image and the flag map is bounded by the tile.
    progress : callable, optional
        ``progress(done, total)`` after each tile.
    name : str
        How to name the image in errors (too small, not finite, over :data:`MAX_PIXELS`).

    Returns
    -------
    dict
        ``flags`` (0 none, 1 mean, 2 std, 3 both, plus 4 too quiet; see
        :meth:`weldlab.thresholds.ResidualThresholds.flags`), int8, shape
        (H - 36 - k + 1, W - 36 - k + 1): window ``(i, j)`` covers image pixels
        ``[i + 18, i + 18 + k)`` x ``[j + 18, j + 18 + k)``; ``flagged`` (flat indices
        of the flagged windows, and their ``abs_mean`` and ``std``, and with two-sided
        thresholds their ``quiet``); ``max_abs_mean`` and ``max_std`` over all windows
        (two-sided: ``min_quiet`` too); with ``keep_maps``, ``mean`` and ``std`` (float32).
    """
    image = check_image_array(np.asarray(image, np.float32), what=name, min_side=PATCH)
    if image.size > MAX_PIXELS:
        raise RadiographError(f"{name}: {image.shape[0]} x {image.shape[1]} px is more than the "
                              f"{MAX_PIXELS / 1e6:.0f} megapixels weldlab scans at once; scan it in parts")
    tile = check_tile(tile)
    k = int(kernel)
    h, w = image.shape
    wh, ww = h - 2 * OFFSET - k + 1, w - 2 * OFFSET - k + 1
    flags = np.zeros((wh, ww), np.int8)
    maps = {"mean": np.empty((wh, ww), np.float32), "std": np.empty((wh, ww), np.float32)} if keep_maps else {}
    index, abs_means, stds, quiets = [], [], [], []
    max_mean = max_std = 0.0
    min_quiet = np.inf
    thresholds = ResidualThresholds.from_dict(thresholds)
    two_sided = thresholds.two_sided
    pad = (QUIET_KERNEL - k) // 2 if two_sided else 0  # the quiet neighbourhood reaches this far beyond a window
    blocks = [(top, left) for top in range(0, wh, tile) for left in range(0, ww, tile)]
    for done, (top, left) in enumerate(blocks, 1):
        th, tw = min(tile, wh - top), min(tile, ww - left)
        # residual rows/columns [r0, r1) x [c0, c1): the tile's windows plus, for the quiet
        # test, the neighbourhoods around them (clipped to the residual map)
        # (a tile at the far border starts early enough for one whole neighbourhood)
        reach = QUIET_KERNEL if two_sided else 0
        r0, c0 = max(min(top - pad, wh + k - 1 - reach), 0), max(min(left - pad, ww + k - 1 - reach), 0)
        r1, c1 = min(top + th + k - 1 + pad, wh + k - 1), min(left + tw + k - 1 + pad, ww + k - 1)
        recon = _reconstruct_block(model_fc, image, r0, c0, r1 - r0, c1 - c0)
        r = image[OFFSET + r0 : OFFSET + r1, OFFSET + c0 : OFFSET + c1] - recon
        m, s = kernel_statistics(r[top - r0 : top - r0 + th + k - 1, left - c0 : left - c0 + tw + k - 1], k)
        quiet = None
        if two_sided:  # as residuals.quiet_std on the whole map: nearest whole neighbourhood at its border
            q = kernel_statistics(r, QUIET_KERNEL)[1]
            rows = np.clip(np.arange(top, top + th) - pad, 0, wh - 1 - 2 * pad) - r0
            cols = np.clip(np.arange(left, left + tw) - pad, 0, ww - 1 - 2 * pad) - c0
            quiet = q[np.ix_(rows, cols)]
        f = thresholds.flags(m, s, quiet)
        flags[top : top + th, left : left + tw] = f
        if keep_maps:
            maps["mean"][top : top + th, left : left + tw] = m
            maps["std"][top : top + th, left : left + tw] = s
        abs_m = np.abs(m)
        ii, jj = np.nonzero(f)
        index.append((top + ii) * ww + (left + jj))
        abs_means.append(abs_m[ii, jj])
        stds.append(s[ii, jj])
        if quiet is not None:
            quiets.append(quiet[ii, jj])
            min_quiet = min(min_quiet, float(quiet.min()))
        max_mean, max_std = max(max_mean, float(abs_m.max())), max(max_std, float(s.max()))
        if progress is not None:
            progress(done, len(blocks))
    flagged = {"index": np.concatenate(index), "abs_mean": np.concatenate(abs_means), "std": np.concatenate(stds)}
    out = {"flags": flags, "flagged": flagged, "max_abs_mean": max_mean, "max_std": max_std}
    if two_sided:
        flagged["quiet"] = np.concatenate(quiets)
        out["min_quiet"] = min_quiet
    return {**out, **maps}


#: Largest image accepted by :func:`scan_image` (pixels). A file scan holds the image
#: (4 bytes per pixel, plus its decoded file while loading), the flag map (1), the region
#: labels (4, briefly) and the overlay's RGB picture (3): about 10 bytes per pixel measured,
#: plus the network's per-tile working memory (about 1.5 GB at the default 1024 px tile,
#: 3.3 GB at 2048). At the limit that is about 4.5 GB. Larger films: scan them in parts.
MAX_PIXELS = 300_000_000
