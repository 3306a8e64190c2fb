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
