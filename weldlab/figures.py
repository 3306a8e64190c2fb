"""Plotting helpers shared by the chapters (matplotlib only)."""

from __future__ import annotations

import numpy as np

from .patches import CROP, OFFSET, PATCH


def show_patches(patches, masks=None, titles=None, ncols=6, size=1.9, vmin=None, vmax=None,
                 cmap="gray", suptitle=None, crop_box=False):
    """A grid of patches, optionally with mask outlines.

    Parameters
    ----------
    patches : ndarray, shape (n, H, W)
    masks : ndarray, shape (n, H, W), bool, optional
        Outlined in red.
    titles : list of str, optional
    ncols : int
    size : float
        Inches per panel.
    vmin, vmax : float, optional
        Colour limits (default: per panel).
    crop_box : bool
        Draw the analysed 156 x 156 region.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    n = len(patches)
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.3 if suptitle else 0)),
                             squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k >= n:
            continue
        ax.imshow(patches[k], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        if masks is not None and np.any(masks[k]):
            ax.contour(masks[k], levels=[0.5], colors="red", linewidths=0.6)
        if crop_box and patches[k].shape[-1] == PATCH:
            ax.add_patch(plt.Rectangle((OFFSET - 0.5, OFFSET - 0.5), CROP, CROP, fill=False,
                                       ec="yellow", lw=0.6, ls="--"))
        if titles is not None:
            ax.set_title(titles[k], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def footprint_corners(centre, theta, size=PATCH):
    """Corners ``(x, y)`` of a rotated patch footprint, for drawing.

    Parameters
    ----------
    centre : ndarray, shape (2,)
        ``(y, x)``.
    theta : float
        Radians, as used by :func:`weldlab.patches.patch_coordinates`.

    Returns
    -------
    ndarray, shape (5, 2)
        Closed polygon in ``(x, y)`` image coordinates.
    """
    h = (size - 1) / 2.0
    d = np.array([[-h, -h], [-h, h], [h, h], [h, -h], [-h, -h]])  # (dy, dx)
    c, s = np.cos(theta), np.sin(theta)
    y = centre[0] + c * d[:, 0] + s * d[:, 1]
    x = centre[1] - s * d[:, 0] + c * d[:, 1]
    return np.column_stack([x, y])


def show_radiograph(ax, image, mask=None, title=None):
    """One radiograph with its defect outlines on ``ax``."""
    ax.imshow(image, cmap="gray", vmin=0, vmax=1, aspect="equal", interpolation="antialiased")
    if mask is not None and mask.any():
        ax.contour(mask, levels=[0.5], colors="red", linewidths=0.4)
    if title:
        ax.set_title(title, fontsize=9)
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")


#: Colours of flagged windows, as in the paper's Fig. 5-8: orange = mean test only,
#: green = standard-deviation test only, blue = both.
FLAG_COLOURS = {1: "tab:orange", 2: "tab:green", 3: "tab:blue"}


def residual_panels(patch, residual, thresholds, title=None, kernel=9):
    """The five panels of the paper's Fig. 5-8 for one patch.

    Parameters
    ----------
    patch : ndarray, shape (192, 192)
        Input patch (its analysed 156 px centre is shown).
    residual : ndarray, shape (156, 156)
    thresholds : dict
        ``t_mean`` and ``t_std``.

    Returns
    -------
    matplotlib.figure.Figure
        (a) input, (b) residual, (c) local mean, (d) local std, each titled with its
        maximum, (e) windows above threshold coloured by which test fired.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    from .patches import crop
    from .residuals import kernel_statistics, window_flags

    m, s = kernel_statistics(residual, kernel)
    codes = window_flags(m, s, thresholds)
    fig, axes = plt.subplots(1, 5, figsize=(13, 2.9))
    panels = [
        (crop(patch), "gray", "(a) input", None),
        (residual, "RdBu_r", f"(b) residual, max |r| {np.abs(residual).max():.3f}", np.abs(residual).max()),
        (m, "RdBu_r", f"(c) <r>, max |.| {np.abs(m).max():.4f}", np.abs(m).max()),
        (s, "magma", f"(d) sigma(r), max {s.max():.4f}", None),
    ]
    for ax, (img, cmap, t, sym) in zip(axes, panels):
        kw = {"vmin": -sym, "vmax": sym} if sym else {}
        ax.imshow(img, cmap=cmap, **kw)
        ax.set_title(t, fontsize=8)
        ax.set_axis_off()
    cmap = ListedColormap(["white", FLAG_COLOURS[1], FLAG_COLOURS[2], FLAG_COLOURS[3]])
    axes[4].imshow(codes, cmap=cmap, vmin=0, vmax=3, interpolation="nearest")
    axes[4].set_title(f"(e) flagged: {int((codes > 0).sum())} windows", fontsize=8)
    axes[4].set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
