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

from .models import INPUT_SIZE, OUTPUT_OFFSET
from .radiographs import check_image_array
from .residuals import kernel_statistics, window_flags

MARGIN = OUTPUT_OFFSET  # 18 px lost on every side
STRIDE = 4
#: Outputs (px) next to an inner tile edge that the transposed convolutions affect, and
#: that tiling therefore recomputes from a larger window (a multiple of STRIDE).
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
    x_in = keras.Input((None, None, 1), name="radiograph")
    x = x_in
    for sub in ("encoder", "decoder"):
        for layer in autoencoder.get_layer(sub).layers[1:]:
            x = layer(x)
    return keras.Model(x_in, x, name="autoencoder_fc")


def _fit_size(n):
    """Smallest size >= n of the form 192 + 4k."""
    return INPUT_SIZE + STRIDE * int(np.ceil(max(n - INPUT_SIZE, 0) / STRIDE))


def reconstruct(model_fc, image, tile=2048):
    """Reconstruct a whole radiograph.

    Parameters
    ----------
    model_fc : keras.Model
        From :func:`fully_convolutional`.
    image : ndarray, shape (H, W), float32 in [0, 1]
        At least 192 px per side.
    tile : int
        Output tile side (rounded to a multiple of 4). Each tile is computed from an input
        window that reaches :data:`EDGE` px further on every inner side; the outputs there,
        touched by the transposed convolutions' edges, are discarded, so the tiling is
        seamless (the result equals a single pass over the whole image).

    Returns
    -------
    ndarray, shape (H - 36, W - 36), float32
        Reconstruction of ``image[18:-18, 18:-18]``.
    """
    image = check_image_array(np.asarray(image, np.float32), what="image", min_side=INPUT_SIZE)
    h, w = image.shape
    tile = max(STRIDE, int(tile) // STRIDE * STRIDE)
    out_h, out_w = h - 2 * MARGIN, w - 2 * MARGIN
    padded = np.pad(image, ((0, _fit_size(h) - h + tile + 2 * EDGE), (0, _fit_size(w) - w + tile + 2 * EDGE)),
                    mode="reflect")
    recon = np.empty((out_h, out_w), np.float32)
    for top in range(0, out_h, tile):
        for left in range(0, out_w, tile):
            th, tw = min(tile, out_h - top), min(tile, out_w - left)
            pre_y, pre_x = (EDGE if top else 0), (EDGE if left else 0)
            ih = _fit_size(pre_y + th + 2 * MARGIN + EDGE)
            iw = _fit_size(pre_x + tw + 2 * MARGIN + EDGE)
            window = padded[top - pre_y : top - pre_y + ih, left - pre_x : left - pre_x + iw]
            out = model_fc.predict(window[None, ..., None], verbose=0)[0, ..., 0]
            recon[top : top + th, left : left + tw] = out[pre_y : pre_y + th, pre_x : pre_x + tw]
    return recon


def residual_map(model_fc, image, tile=2048):
    """Residual ``image[18:-18, 18:-18] - reconstruction`` of a whole radiograph.

    Returns
    -------
    ndarray, shape (H - 36, W - 36), float32
    """
    image = np.asarray(image, np.float32)
    return image[MARGIN:-MARGIN, MARGIN:-MARGIN] - reconstruct(model_fc, image, tile)


def scan_maps(model_fc, image, thresholds, tile=2048, kernel=9):
    """Residual, window statistics and flagged windows of a whole radiograph.

    Returns
    -------
    dict
        ``residual`` (H - 36, W - 36); ``mean``, ``std`` and ``flags`` (0 none, 1 mean,
        2 std, 3 both) of shape (H - 36 - k + 1, W - 36 - k + 1); window ``(i, j)``
        covers image pixels ``[i + 18, i + 18 + k)`` x ``[j + 18, j + 18 + k)``.
    """
    r = residual_map(model_fc, image, tile)
    m, s = kernel_statistics(r, kernel)
    return {"residual": r, "mean": m, "std": s, "flags": window_flags(m, s, thresholds)}
