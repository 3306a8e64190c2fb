"""Plotting helpers shared by the chapters (matplotlib only), and their Markdown tables.

The chapters draw with the book's style, :func:`book_style` (``weldlab/style.mplstyle``: font
sizes, the Okabe-Ito colour cycle; and a check that each figure shown is legible on the page,
:func:`legibility_problems`); :data:`COLOURS` names
that palette's colours by what they mark, so every figure uses the same colour for okay
patches, defects and each kind of flagged window.
"""

from __future__ import annotations

import numpy as np

from .geometry import CROP, OFFSET, PATCH
from .thresholds import DEFAULT_FPR

#: The book's colours by meaning (Okabe-Ito: told apart with the common colour-vision
#: deficiencies, unlike red against green).
COLOURS = {
    "okay": "#0072B2",      # blue
    "defect": "#D55E00",    # vermillion: defect outlines, defect patches, the chosen set
    "mean": "#E69F00",      # orange: window flagged by the mean test only
    "std": "#009E73",       # bluish green: by the standard-deviation test only
    "both": "#56B4E9",      # sky blue: by both
    "quiet": "#CC79A7",     # reddish purple: too-quiet residual
    "neutral": "#7F7F7F",   # gray
    "analysed": "#F0E442",  # yellow: the analysed 156 px region
}


#: Width (CSS px) of the book's text column in a 1366 px wide browser window (sphinx-book-theme,
#: measured in headless Chromium): a figure image wider than it is shown scaled down to it.
PAGE_WIDTH_PX = 741
#: The smallest text a reader should meet on the page, in pt (1 pt = 4/3 CSS px).
MIN_TEXT_PT = 9.0
#: The widest figure (inches, at the style's 100 dpi) whose 11 pt tick labels and titles still
#: measure 9 pt on the page; the book's figures are drawn at most this wide.
MAX_WIDTH_IN = 9.2


def _visible_texts(fig):
    """Every visible, non-empty text artist of ``fig`` (a hidden axes hides its texts)."""
    from matplotlib.text import Text

    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()
            and (t.axes is None or t.axes.get_visible())]


def legibility_problems(fig, image_width_px=None, page_width_px=PAGE_WIDTH_PX, min_pt=MIN_TEXT_PT):
    """What makes a figure hard to read on the book's page: small text, overlapping labels.

    The page shows a figure image at its own size, or scaled down to the text column
    (:data:`PAGE_WIDTH_PX`) when it is wider; a text of ``s`` pt in a figure saved at
    ``dpi`` then measures ``s * dpi / 96 * scale`` pt on the page.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    image_width_px : int, optional
        Width of the saved image (the inline backend crops it to its content); default the
        figure's own width at its dpi.
    page_width_px, min_pt : float

    Returns
    -------
    list of str
        One line per problem: a text below ``min_pt`` on the page (its size and words), and
        tick labels of one axis or titles of two axes that overlap.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from weldlab.figures import legibility_problems
    >>> fig, ax = plt.subplots(figsize=(7, 3))
    >>> _ = ax.set_title("fits the page", fontsize=10)
    >>> _ = ax.tick_params(labelsize=10)
    >>> legibility_problems(fig)
    []
    >>> wide, ax = plt.subplots(figsize=(16, 3))
    >>> _ = ax.set_title("shrunk to half", fontsize=10)
    >>> _ = ax.tick_params(labelsize=10)
    >>> legibility_problems(wide)[0]
    "text '0.0', '0.2', '0.4' and 10 more is 4.8 pt on the page (at least 9 pt)"
    >>> plt.close("all")
    """
    fig.draw_without_rendering()  # lays the texts out where the saved image has them
    renderer = fig.canvas.get_renderer()
    dpi = fig.dpi
    width = image_width_px or fig.get_figwidth() * dpi
    scale = min(1.0, page_width_px / width)
    problems, small = [], {}
    for t in _visible_texts(fig):
        pt = t.get_fontsize() * dpi / 96 * scale
        if pt < min_pt - 0.05:
            small.setdefault(round(pt, 1), []).append(t.get_text().strip().replace("\n", " ")[:30])
    for pt, words in sorted(small.items()):
        shown = ", ".join(repr(w) for w in words[:3]) + (f" and {len(words) - 3} more" if len(words) > 3 else "")
        problems.append(f"text {shown} is {pt:.1f} pt on the page (at least {min_pt:g} pt)")

    def overlapping(texts):
        boxes = [(t, t.get_window_extent(renderer)) for t in texts]
        return [(a.get_text(), b.get_text()) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1:]
                if ba.overlaps(bb) and ba.width > 0 and bb.width > 0]

    def crowded(labels):
        # Slanted labels: their boxes overlap while their lines do not; the lines are apart
        # when neighbouring anchors are at least one text height apart across the slant.
        anchors = sorted(((t.get_transform().transform(t.get_position())[0], t) for t in labels), key=lambda p: p[0])
        return [(a.get_text(), b.get_text()) for (xa, a), (xb, b) in zip(anchors, anchors[1:])
                if (xb - xa) * abs(np.sin(np.radians(a.get_rotation()))) < a.get_fontsize() * dpi / 72]

    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for axis in (ax.xaxis, ax.yaxis):
            labels = [t for t in axis.get_ticklabels(which="both") if t.get_visible() and t.get_text().strip()]
            slanted = axis is ax.xaxis and labels and labels[0].get_rotation() % 180 != 0
            for a, b in (crowded(labels) if slanted else overlapping(labels))[:1]:
                problems.append(f"tick labels {a!r} and {b!r} overlap")
    titles = [ax.title for ax in fig.axes if ax.get_visible() and ax.title.get_text().strip()]
    for a, b in overlapping(titles)[:3]:
        problems.append(f"titles {a!r} and {b!r} overlap")
    return problems


#: How the figure check (:func:`book_style`) marks a problem in a chapter's error stream.
FIGURE_CHECK_MARK = "weldlab figure check:"


def _png_width(data):
    """Width in px of a PNG given as bytes or base64 text (the inline backend's output)."""
    import base64

    raw = base64.b64decode(data[:64]) if isinstance(data, str) else bytes(data[:24])
    return int.from_bytes(raw[16:20], "big")  # the IHDR chunk's width


def book_style():
    """Draw with the book's style; in a notebook, check every figure it shows.

    Applies ``weldlab/style.mplstyle``. In an IPython kernel with the inline backend, each
    figure displayed as PNG is then checked by :func:`legibility_problems` at the width
    of the image it became, and each problem is written to the error stream, marked with
    :data:`FIGURE_CHECK_MARK` (the book's tests fail a chapter that has one; the
    published notebooks drop that stream).
    """
    import sys

    import matplotlib
    import matplotlib.pyplot as plt

    plt.style.use("weldlab.style")
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or "inline" not in matplotlib.get_backend():
        return
    plt.switch_backend(matplotlib.get_backend())  # loads the backend now: it registers its formatter
    from matplotlib.figure import Figure

    formatter = shell.display_formatter.formatters["image/png"]
    try:
        show = formatter.lookup_by_type(Figure)
    except KeyError:
        return
    if getattr(show, "checks_legibility", False):
        return

    def checked(fig):
        data = show(fig)
        if data:
            for problem in legibility_problems(fig, image_width_px=_png_width(data)):
                print(f"{FIGURE_CHECK_MARK} {problem}", file=sys.stderr)
        return data

    checked.checks_legibility = True
    formatter.for_type(Figure, checked)


def markdown_table(header, rows, align=None):
    """A Markdown table, as the chapters display it.

    Parameters
    ----------
    header : sequence of str
        The column titles.
    rows : iterable of sequences
        One sequence of cells per row, each formatted already (or turned into text by
        ``str``); as many cells as ``header``.
    align : str, optional
        One character per column: ``"l"`` left, ``"r"`` right, ``"c"`` centred (default:
        the first column left, the others right, as numbers are).

    Returns
    -------
    str

    Examples
    --------
    >>> from weldlab.figures import markdown_table
    >>> print(markdown_table(["kind", "n"], [["blank", 20], ["noised", 5]]))
    | kind | n |
    | --- | ---: |
    | blank | 20 |
    | noised | 5 |
    """
    header = [str(h) for h in header]
    align = align or "l" + "r" * (len(header) - 1)
    if len(align) != len(header) or set(align) - set("lrc"):
        raise ValueError(f"align: expected one of l, r, c per column ({len(header)}), got {align!r}")
    lines = ["| " + " | ".join(header) + " |",
             "| " + " | ".join({"l": "---", "r": "---:", "c": ":---:"}[a] for a in align) + " |"]
    for i, row in enumerate(rows):
        cells = [str(c) for c in row]
        if len(cells) != len(header):
            raise ValueError(f"rows[{i}]: expected {len(header)} cells, got {len(cells)}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def show_patches(patches, masks=None, titles=None, ncols=6, size=1.9, vmin=None, vmax=None,
                 cmap="gray", suptitle=None, crop_box=False):
    """A grid of patches, optionally with mask outlines.

    Parameters
    ----------
    patches : ndarray, shape (n, H, W)
    masks : ndarray, shape (n, H, W), bool, optional
        Outlined in ``COLOURS["defect"]``.
    titles : list of str, optional
    ncols : int
    size : float
        Inches per panel (at most :data:`MAX_WIDTH_IN` over the columns).
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
    size = min(size, MAX_WIDTH_IN / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.3 if suptitle else 0)),
                             squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k >= n:
            continue
        ax.imshow(patches[k], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        if masks is not None and np.any(masks[k]):
            ax.contour(masks[k], levels=[0.5], colors=COLOURS["defect"], linewidths=0.8)
        if crop_box and patches[k].shape[-1] == PATCH:
            ax.add_patch(plt.Rectangle((OFFSET - 0.5, OFFSET - 0.5), CROP, CROP, fill=False,
                                       ec=COLOURS["analysed"], lw=0.8, ls="--"))
        if titles is not None:
            ax.set_title(titles[k], fontsize=11)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def show_first(sets, **kwargs):
    """The first patch of each named set, titled with its name (underscores as spaces).

    Parameters
    ----------
    sets : dict
        name -> patches, shape (n, H, W).
    **kwargs
        For :func:`show_patches` (``ncols``, ``vmin``, ``vmax``, ...).

    Returns
    -------
    matplotlib.figure.Figure
    """
    return show_patches(np.stack([v[0] for v in sets.values()]),
                        titles=[k.replace("_", " ") for k in sets], **kwargs)


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
        ax.contour(mask, levels=[0.5], colors=COLOURS["defect"], linewidths=0.6)
    if title:
        ax.set_title(title)
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")


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


#: Colours of flagged windows by code, as in the paper's Fig. 5-8: 1 = mean test only
#: (orange), 2 = standard-deviation test only (green), 3 = both (blue), 4 = too quiet.
FLAG_COLOURS = {1: COLOURS["mean"], 2: COLOURS["std"], 3: COLOURS["both"], 4: COLOURS["quiet"]}


def log_axis(ax, which="x"):
    """A log scale with few, plain tick labels (0.02, not 2e-2).

    Matplotlib labels the minor ticks of an axis spanning less than a decade, and their
    labels then run into each other; here the ticks at 1, 2 and 5 are labelled on an axis
    spanning up to a decade and a half, only the powers of ten on a longer one. Call it
    after plotting (the span is the data's).
    """
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    ax.autoscale_view()
    lo, hi = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
    decades = np.log10(hi / lo) if lo > 0 else np.inf
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if decades <= 1.5 else (1.0,)))
    axis.set_major_formatter(FormatStrFormatter("%g"))
    axis.set_minor_formatter(NullFormatter())


def flag_colormap():
    """The colormap of flag codes 0-3 (white, then :data:`FLAG_COLOURS`), for ``vmin=0, vmax=3``."""
    from matplotlib.colors import ListedColormap

    return ListedColormap(["white", FLAG_COLOURS[1], FLAG_COLOURS[2], FLAG_COLOURS[3]])


def residual_panels(patches, residuals, thresholds, titles=None, kernel=9):
    """The five panels of the paper's Fig. 5-8, one row per patch, in one figure.

    Parameters
    ----------
    patches : ndarray, shape (n, 192, 192) or (192, 192)
        Input patches (their analysed 156 px centres are shown).
    residuals : ndarray, shape (n, 156, 156) or (156, 156)
    thresholds : dict
        ``t_mean`` and ``t_std``.
    titles : sequence of str, optional
        One per row, above it.

    Returns
    -------
    matplotlib.figure.Figure
        Per row: (a) input, (b) residual, (c) local mean, (d) local std, each titled with
        its maximum, (e) windows above threshold coloured by which test fired
        (:func:`flag_colormap`: orange the mean test, green the standard deviation, blue both).
    """
    import matplotlib.pyplot as plt

    from .patches import crop
    from .residuals import kernel_statistics
    from .thresholds import ResidualThresholds

    patches = np.asarray(patches).reshape(-1, PATCH, PATCH)
    residuals = np.asarray(residuals).reshape(-1, CROP, CROP)
    rule = ResidualThresholds.from_dict(thresholds).paper
    fig = plt.figure(figsize=(MAX_WIDTH_IN, 3.0 * len(patches)), layout="constrained")
    rows = np.atleast_1d(fig.subfigures(len(patches), 1))
    for k, (row, patch, residual) in enumerate(zip(rows, patches, residuals)):
        m, s = kernel_statistics(residual, kernel)
        codes = rule.flags(m, s)
        axes = row.subplots(1, 5)
        panels = [
            (crop(patch), "gray", "(a) input", None),
            (residual, "RdBu_r", f"(b) residual r\nmax |r| {np.abs(residual).max():.3f}", np.abs(residual).max()),
            (m, "RdBu_r", f"(c) <r>\nmax |<r>| {np.abs(m).max():.4f}", np.abs(m).max()),
            (s, "magma", f"(d) sigma(r)\nmax {s.max():.4f}", None),
        ]
        for ax, (img, cmap, t, sym) in zip(axes, panels):
            kw = {"vmin": -sym, "vmax": sym} if sym else {}
            im = ax.imshow(img, cmap=cmap, **kw)
            ax.set_title(t, fontsize=11)
            ax.set_axis_off()
            row.colorbar(im, ax=ax, shrink=0.8, pad=0.02)
        axes[4].imshow(codes, cmap=flag_colormap(), vmin=0, vmax=3, interpolation="nearest")
        axes[4].set_title(f"(e) windows flagged\n{int((codes > 0).sum())}", fontsize=11)
        axes[4].set_axis_off()
        if titles is not None:
            row.suptitle(titles[k], fontsize=12, fontweight="bold")
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

    fig, axes = plt.subplots(1, 3, figsize=(MAX_WIDTH_IN, 3.5), layout="constrained")
    colours = (COLOURS["okay"], COLOURS["defect"])
    for k, key in enumerate(("t_mean", "t_std")):
        lo = min(okay[k].min(), positive[k].min()) if positive[k].size else okay[k].min()
        hi = max(okay[k].max(), positive[k].max(), thresholds[key]) if positive[k].size else okay[k].max()
        bins = np.geomspace(max(lo, 1e-5), hi * 1.05, 40)
        axes[k].hist(okay[k], bins, alpha=0.6, label=labels[0], color=colours[0])
        axes[k].hist(positive[k], bins, alpha=0.6, label=labels[1], color=colours[1])
        axes[k].axvline(thresholds[key], color="k", ls="--", lw=1, label="threshold")
        log_axis(axes[k])
        axes[k].set_xlabel(["max |<r>| per patch", "max sigma(r) per patch"][k])
        axes[k].set_ylabel("patches")
    ax = axes[2]
    ax.scatter(okay[0], okay[1], s=6, alpha=0.5, color=colours[0])
    ax.scatter(positive[0], positive[1], s=6, alpha=0.5, color=colours[1], marker="^")
    ax.axvline(thresholds["t_mean"], color="k", ls="--", lw=1)
    ax.axhline(thresholds["t_std"], color="k", ls="--", lw=1)
    log_axis(ax, "x")
    log_axis(ax, "y")
    ax.set_xlabel("max |<r>|")
    ax.set_ylabel("max sigma(r)")
    ax.set_title("accepted: lower-left box")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3)
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

    fig, axes = plt.subplots(1, 3, figsize=(MAX_WIDTH_IN, 4.0), layout="constrained")
    styles = ("-", "--", "-.", ":")
    for k, (label, (neg, pos)) in enumerate(curves.items()):
        fpr, tpr, _ = roc_curve(neg, pos)
        acc, prec = accuracy_and_precision(fpr, tpr, len(neg), len(pos))
        floor = 0.5 / max(len(neg), 1)  # FPR 0 drawn at half a patch, so the log axis keeps it
        ls = styles[(k // 8) % len(styles)] if len(curves) > 8 else styles[k % 2]
        line, = axes[0].step(np.maximum(fpr, floor), tpr, where="post", label=label, ls=ls)
        axes[1].step(np.maximum(fpr, floor), acc, where="post", color=line.get_color(), ls=ls)
        axes[2].plot(tpr, prec, color=line.get_color(), ls=ls)
    for ax in axes[:2]:
        log_axis(ax)
        ax.axvline(fpr_mark, color="k", ls=":", lw=1)
        ax.set_xlabel("false positive rate (okay patches flagged)")
    axes[0].set_ylabel("true positive rate")
    axes[0].set_title("(a) ROC")
    axes[1].set_ylabel("accuracy")
    axes[1].set_title("(b) accuracy vs FPR")
    axes[2].set_xlabel("true positive rate")
    axes[2].set_ylabel("precision")
    axes[2].set_title("(c) precision vs TPR")
    fig.legend(loc="outside lower center", ncols=min(4, len(curves)))
    return fig


def axes_or_new(ax, figsize):
    """``ax``, or the axes of a new figure of ``figsize`` inches (constrained layout).

    The plotting functions' ``ax=None``: draw into a new figure of their own size.
    """
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize, layout="constrained")[1]


def plot_grain_statistics(typicality, shown, ax=None):
    """The film grain of patches beside the okay training patches the typicality check knows.

    Each patch is a point: its noise standard deviation (log scale) against the correlation
    of its grain at 1 px (:func:`weldlab.screening.image_statistics`); the okay training
    patches of the typicality check are grey dots behind.

    Parameters
    ----------
    typicality : dict
        ``input_ranges(...)["typicality"]`` of the patch-level input ranges (its scaled
        ``reference`` statistics, ``scale`` and ``centre``).
    shown : sequence of (label, patches, colour, marker)
        Patches shape (n, 192, 192), each group drawn with its colour and marker.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    from .screening import image_statistics

    ax = axes_or_new(ax, (7.5, 5.0))
    reference = np.asarray(typicality["reference"]) * typicality["scale"] + typicality["centre"]  # unscaled
    ax.scatter(np.exp(reference[:, 0]), reference[:, 1], s=4, color=COLOURS["neutral"], alpha=0.4,
               label="okay training patches")
    for label, patches, colour, marker in shown:
        stats = [image_statistics(p) for p in patches]
        ax.scatter([v["noise_std"] for v in stats], [v["noise_lag1"] for v in stats], s=28, color=colour,
                   marker=marker, label=label)
    log_axis(ax, "x")
    ax.set_xlabel("film grain: noise std. (log scale)")
    ax.set_ylabel("grain correlation at 1 px")
    ax.legend(fontsize=11, loc="upper left", bbox_to_anchor=(1.01, 1))
    return ax
