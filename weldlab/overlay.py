"""The picture a scan writes: the radiograph with its flagged windows tinted and regions framed."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import to_rgb

from .detector import coverage
from .figures import COLOURS, FLAG_COLOURS
from .geometry import KERNEL

#: Overlay colours (RGB) of windows flagged by the mean test (orange), the std test (green),
#: both (blue) or the quiet test (purple): :data:`weldlab.figures.FLAG_COLOURS`.
#: Frames: vermillion around a defect-like region, purple around a too-quiet one, yellow
#: around the whole image when the image itself lies outside the training films' ranges.
def _rgb8(colour):
    return tuple(round(255 * c) for c in to_rgb(colour))


FLAG_RGB = {code: _rgb8(colour) for code, colour in FLAG_COLOURS.items()}
FRAME_COLOUR = _rgb8(COLOURS["defect"])
QUIET_COLOUR = FLAG_RGB[4]
INPUT_COLOUR = _rgb8(COLOURS["analysed"])


def _caption(lines, width):
    """White text on a dark strip, ``width`` px wide: one row of text per line."""
    from .figures import text_mask

    line_height = max(22, width // 80)  # legible when a large film is shown whole
    strip = np.full((line_height * len(lines) + 8, width, 3), 32, np.uint8)
    for i, line in enumerate(lines):
        mask = text_mask(line, line_height - 6)[:, : max(width - 8, 1)]
        top = 4 + i * line_height + 3
        strip[top : top + mask.shape[0], 4 : 4 + mask.shape[1]][mask] = 255
    return strip


def overlay(image, flags, regions, kernel=KERNEL, alpha=0.55, caption=None, input_outside=False):
    """An RGB picture of the radiograph with flagged windows tinted and regions boxed.

    Parameters
    ----------
    image : ndarray, shape (H, W), float in [0, 1]
    flags : ndarray
        From :func:`weldlab.tiling.scan_maps`.
    regions : list of dict
        From :func:`flagged_regions`: indications framed vermillion, quiet regions purple.
    caption : list of str, optional
        Lines of text written on a strip above the picture (the verdict and its reasons).
    input_outside : bool
        Frame the whole image yellow: the image lies outside the training films' ranges.

    Returns
    -------
    ndarray, shape (H, W, 3) (with a caption, taller by its strip), uint8
    """
    from skimage.draw import rectangle_perimeter

    rgb = np.repeat(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)
    cov = coverage(flags, image.shape, kernel)
    for code, colour in FLAG_RGB.items():
        sel = (cov & 3) == code if code < 4 else (cov & 4) > 0
        rgb[sel] = np.round((1 - alpha) * rgb[sel] + alpha * np.asarray(colour)).astype(np.uint8)
    for r in regions:
        r0, c0, r1, c1 = r["box"]
        colour = QUIET_COLOUR if r.get("reason") == "quiet" else FRAME_COLOUR
        for pad in (3, 4):  # a 2 px frame a little outside the box
            rr, cc = rectangle_perimeter((r0 - pad, c0 - pad), end=(r1 - 1 + pad, c1 - 1 + pad), shape=image.shape,
                                         clip=True)
            rgb[rr, cc] = colour
    if input_outside:
        border = max(4, min(image.shape) // 100)
        for sl in (np.s_[:border], np.s_[-border:], np.s_[:, :border], np.s_[:, -border:]):
            rgb[sl] = INPUT_COLOUR
    if caption:
        rgb = np.concatenate([_caption(list(caption), rgb.shape[1]), rgb])
    return rgb
