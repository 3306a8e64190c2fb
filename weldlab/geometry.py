"""Patch geometry and window sizes: the one home of the method's pixel counts.

The autoencoder maps a ``PATCH`` x ``PATCH`` input to its central ``CROP`` x ``CROP``
pixels (``OFFSET`` px in from each side) through a ``CODE_SIZE`` x ``CODE_SIZE`` code
(paper Fig. 1, ``book/method.md`` §4). Residual statistics are taken over ``KERNEL`` x
``KERNEL`` windows at stride 1 (paper Eq. 8-9). The network's two stride-2 layers make a
fully convolutional pass accept images of side ``PATCH + k * NETWORK_STRIDE``. This module
imports nothing from weldlab, so every other module can ask it.

Examples
--------
>>> from weldlab import geometry
>>> geometry.PATCH - 2 * geometry.OFFSET == geometry.CROP
True
>>> geometry.window_centre_margin()
22
"""

from __future__ import annotations

import numpy as np

#: Side of a patch, the autoencoder's and the CNN's input (px).
PATCH = 192
#: Side of the autoencoder's output, the central part of a patch (px).
CROP = 156
#: Offset of the output inside the patch (px).
OFFSET = (PATCH - CROP) // 2
#: Side of the autoencoder's single-channel code.
CODE_SIZE = 42
#: Side of the windows over which the residual's local mean and spread are taken (px).
KERNEL = 9
#: Side of the neighbourhood whose residual spread the quiet test measures (px).
QUIET_KERNEL = 25
#: The autoencoder's total stride (two stride-2 layers): a whole image passed through it
#: must have sides ``PATCH + k * NETWORK_STRIDE`` (px).
NETWORK_STRIDE = 4
#: Input pixels beyond ``NETWORK_STRIDE`` per code pixel: an input of side ``s`` gives a
#: code of side ``(s - CODE_MARGIN) / NETWORK_STRIDE`` (42 for a patch).
CODE_MARGIN = PATCH - NETWORK_STRIDE * CODE_SIZE


def code_side(side):
    """Side of the autoencoder's code for an input of side ``side`` (``192 - 4k`` px).

    Examples
    --------
    >>> from weldlab.geometry import code_side
    >>> code_side(192), code_side(96)
    (42, 18)
    """
    return (int(side) - CODE_MARGIN) // NETWORK_STRIDE


#: Smallest crop side to train the autoencoder on (px): its output (28 px) still holds 20 x 20
#: residual windows of 9 px, and its input the 45 px that one output pixel depends on
#: (:func:`weldlab.models.receptive_field`).
MIN_CROP = 64


def check_crop(crop, name="crop"):
    """``crop`` as an int if it is a valid crop side (or None), else a ValueError naming ``name``.

    Valid: ``192 - 4k`` (the network's total stride keeps a crop's code aligned as a
    patch's) from :data:`MIN_CROP` to 192.

    Examples
    --------
    >>> from weldlab.geometry import check_crop
    >>> check_crop(96), check_crop(None)
    (96, None)
    """
    if crop is None:
        return None
    if isinstance(crop, bool) or not isinstance(crop, (int, np.integer)) or not (
            MIN_CROP <= crop <= PATCH and (PATCH - crop) % NETWORK_STRIDE == 0):
        raise ValueError(f"{name}: expected a side from {MIN_CROP} to {PATCH} px that differs from {PATCH} "
                         f"by a multiple of {NETWORK_STRIDE} (e.g. 96), or None, got {crop!r}")
    return int(crop)


#: Smallest image side any weldlab analysis can use: one patch (px).
MIN_SIDE = PATCH
#: Smallest film side that patches can be cut from at any rotation (the paper's sampling,
#: :func:`weldlab.patches.random_placements`): a patch's diagonal and a pixel each side (px).
SAMPLING_MIN_SIDE = int(np.ceil((PATCH - 1) * np.sqrt(2) + 2))


def window_centre_margin(kernel=KERNEL):
    """Distance (px) from an image's edge to the centre of the first full residual window.

    A window's centre lies ``OFFSET`` (the reconstructed part) plus half a window in from
    the edge, so maps of window statistics cover ``[margin, side - 1 - margin]``.

    Parameters
    ----------
    kernel : int
        Side of the windows (px).

    Returns
    -------
    int
    """
    return OFFSET + int(kernel) // 2


def check_patches(x, name="patches"):
    """Return ``x`` as an array after checking it is a stack of patches.

    Parameters
    ----------
    x : array_like, shape (n, 192, 192)
    name : str
        What ``x`` is, for the error message.

    Returns
    -------
    ndarray, shape (n, 192, 192)

    Raises
    ------
    ValueError
        Naming ``name``, the expected and the actual shape.

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.geometry import check_patches
    >>> check_patches(np.zeros((2, 192, 192))).shape
    (2, 192, 192)
    >>> check_patches(np.zeros((192, 192)), "okay")
    Traceback (most recent call last):
    ...
    ValueError: okay: expected shape (n, 192, 192), got (192, 192)
    """
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[1:] != (PATCH, PATCH):
        raise ValueError(f"{name}: expected shape (n, {PATCH}, {PATCH}), got {x.shape}")
    return x
