"""Plotting helpers shared by the chapters (matplotlib only)."""

from __future__ import annotations

import numpy as np

from .patches import CROP, OFFSET, PATCH
from .thresholds import DEFAULT_FPR


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
def text_mask(text, height):
    """A boolean raster of ``text`` in matplotlib's default font, ``height`` px tall.

    Parameters
    ----------
    text : str
    height : int
        Height of the raster (px); the text's outline is scaled to fill it.

    Returns
    -------
    ndarray, shape (height, width), bool
        True inside the letters; ``width`` follows from the text.
    """
    from matplotlib.textpath import TextPath

    if not text:
        return np.zeros((height, 1), bool)
    path = TextPath((0, 0), text, size=height)
    full = TextPath((0, 0), "Ag", size=height).get_extents()  # "Ag": a line's full height
    ext = path.get_extents()
    scale = (height - 1) / max(full.height, 1e-9)
    width = max(1, int(np.ceil(ext.x1 * scale)) + 1)
    yy, xx = np.mgrid[0:height, 0:width]
    pts = np.column_stack([xx.ravel() / scale, (height - 1 - yy).ravel() / scale + full.y0])
    return path.contains_points(pts).reshape(height, width)


FLAG_COLOURS = {1: "#ff7f0e", 2: "#2ca02c", 3: "#1f77b4", 4: "#9467bd"}


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
    from .residuals import kernel_statistics
    from .thresholds import ResidualThresholds

    m, s = kernel_statistics(residual, kernel)
    codes = ResidualThresholds.from_dict(thresholds).paper.flags(m, s)
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


def statistics_scatter(okay, positive, thresholds, labels=("okay", "defects")):
    """The paper's Fig. 9: histograms and scatter of each patch's two residual maxima.

    Parameters
    ----------
    okay, positive : tuple of ndarray, shape (n,)
        ``(max |<r>|, max sigma(r))`` per patch.
    thresholds : dict
        ``t_mean`` and ``t_std``; drawn as lines (the flagged region is outside the box).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for k, key in enumerate(("t_mean", "t_std")):
        lo = min(okay[k].min(), positive[k].min()) if positive[k].size else okay[k].min()
        hi = max(okay[k].max(), positive[k].max(), thresholds[key]) if positive[k].size else okay[k].max()
        bins = np.geomspace(max(lo, 1e-5), hi * 1.05, 40)
        axes[k].hist(okay[k], bins, alpha=0.6, label=labels[0], color="tab:green")
        axes[k].hist(positive[k], bins, alpha=0.6, label=labels[1], color="tab:red")
        axes[k].axvline(thresholds[key], color="k", ls="--", lw=1, label="threshold")
        axes[k].set_xscale("log")
        axes[k].set_xlabel(["max |<r>| per patch", "max sigma(r) per patch"][k])
        axes[k].set_ylabel("patches")
        axes[k].legend(fontsize=7)
    ax = axes[2]
    ax.scatter(okay[0], okay[1], s=5, alpha=0.5, color="tab:green", label=labels[0])
    ax.scatter(positive[0], positive[1], s=5, alpha=0.5, color="tab:red", label=labels[1])
    ax.axvline(thresholds["t_mean"], color="k", ls="--", lw=1)
    ax.axhline(thresholds["t_std"], color="k", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("max |<r>|")
    ax.set_ylabel("max sigma(r)")
    ax.set_title("accepted only inside the lower-left box", fontsize=8)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def detection_curves(curves, fpr_mark=DEFAULT_FPR):
    """The paper's Fig. 10: ROC with a log FPR axis, accuracy vs FPR, precision vs TPR.

    Parameters
    ----------
    curves : dict
        label -> ``(scores_okay, scores_positive)``; each is drawn in all three panels.
    fpr_mark : float
        The operating FPR, marked by a vertical line.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    from .metrics import accuracy_and_precision, roc_curve

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for label, (neg, pos) in curves.items():
        fpr, tpr, _ = roc_curve(neg, pos)
        acc, prec = accuracy_and_precision(fpr, tpr, len(neg), len(pos))
        floor = 0.5 / max(len(neg), 1)  # FPR 0 drawn at half a patch, so the log axis keeps it
        line, = axes[0].step(np.maximum(fpr, floor), tpr, where="post", label=label)
        axes[1].step(np.maximum(fpr, floor), acc, where="post", color=line.get_color())
        axes[2].plot(tpr, prec, color=line.get_color())
    for ax in axes[:2]:
        ax.set_xscale("log")
        ax.axvline(fpr_mark, color="k", ls=":", lw=1)
        ax.set_xlabel("false positive rate (okay patches flagged)")
    axes[0].set_ylabel("true positive rate")
    axes[0].set_title("(a) ROC", fontsize=9)
    axes[0].legend(fontsize=7, loc="lower right")
    axes[1].set_ylabel("accuracy")
    axes[1].set_title("(b) accuracy vs FPR", fontsize=9)
    axes[2].set_xlabel("true positive rate")
    axes[2].set_ylabel("precision")
    axes[2].set_title("(c) precision vs TPR", fontsize=9)
    fig.tight_layout()
    return fig
