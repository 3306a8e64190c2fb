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

import hashlib
import json
import re
import textwrap
import time
import warnings
from pathlib import Path

import keras
import numpy as np
from matplotlib.colors import to_rgb
from scipy import ndimage

from .figures import COLOURS, FLAG_COLOURS
from .models import check_autoencoder
from .geometry import KERNEL, NETWORK_STRIDE, OFFSET, PATCH, QUIET_KERNEL, window_centre_margin
from .provenance import atomic_file, provenance, write_json
from .radiographs import RadiographError, check_image_array, load_image
from .residuals import kernel_statistics
from .thresholds import DEFAULT_FPR, ResidualThresholds

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


# --- the detector applied to files: verdicts, regions and overlays -------------------------

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
TEST_NAMES = {1: "mean", 2: "std", 3: "both"}
#: Why a region or an image goes to review (the ``reason`` of regions and verdicts).
REASONS = {"indication": "defect-like indication (residual too large)",
           "quiet": "too-quiet residual (smoother than any training film)",
           "input": "input outside the training films' range"}
#: The decision rules: the paper's OR rule, or the two-sided rule with the input checks.
RULES = ("two-sided", "paper")


class Detector:
    """The OOD detector: a fully convolutional autoencoder, its thresholds and input checks.

    Parameters
    ----------
    autoencoder : keras.Model
        The 192 px autoencoder (converted with :func:`fully_convolutional`); a model of
        another geometry or size is refused (:func:`weldlab.models.check_autoencoder`).
    thresholds : weldlab.thresholds.ResidualThresholds or dict
        From :meth:`~weldlab.thresholds.ResidualThresholds.calibrate`; with ``t_quiet``,
        the two-sided rule.
    record : dict, optional
        The model's training record, copied into every verdict.
    input_ranges : dict, optional
        From :func:`weldlab.screening.input_ranges` on the training films: an image outside
        them goes to review with the reason. None: no input checks.
    """

    def __init__(self, autoencoder, thresholds, record=None, input_ranges=None):
        thresholds = ResidualThresholds.from_dict(thresholds)
        if input_ranges is not None and not (isinstance(input_ranges, dict) and "ranges" in input_ranges):
            raise ValueError("input_ranges: expected the result of weldlab.screening.input_ranges")
        check_autoencoder(autoencoder, where="autoencoder")
        self.model_fc = fully_convolutional(autoencoder)
        self.thresholds = thresholds
        self.record = record or {}
        self.input_ranges = input_ranges

    @property
    def rule(self):
        """"two-sided" (quiet test and input checks) or "paper" (the OR rule alone)."""
        return "two-sided" if self.thresholds.two_sided else "paper"

    @classmethod
    def load(cls, model_dir=None, seed=0, rule="two-sided"):
        """Load ``autoencoder.keras`` and ``record.json`` (with ``thresholds``) from a folder.

        Parameters
        ----------
        model_dir : path, optional
            Default: the shipped autoencoder (trained with SNI perturbations) of ``seed``.
        rule : {"two-sided", "paper"}
            "two-sided": the record's ``two_sided_thresholds`` and ``input_ranges["film"]``
            (too-quiet residuals and inputs unlike the training films go to review too);
            "paper": the paper's OR rule alone (``thresholds``), as Tables 2-3 report it.

        Raises
        ------
        ValueError
            If the model or its record is not a weldlab autoencoder of this version
            (naming what differs), or the thresholds the rule needs are missing or invalid.
        """
        from .trained import RECORD, TrainedModel, pretrained_dir

        if rule not in RULES:
            raise ValueError(f"rule: expected one of {RULES}, got {rule!r}")
        trained = TrainedModel.load(model_dir if model_dir is not None else pretrained_dir("ae", seed), "ae")
        where = trained.folder / RECORD
        try:
            thresholds = trained.thresholds(rule)
        except KeyError as exc:
            also = "; or scan with --rule paper" if rule == "two-sided" and "thresholds" in trained.record else ""
            raise ValueError(f"{exc.args[0]} (add what weldlab.scan.calibrate_detector returns to the record{also})") from exc
        ranges = (trained.record.get("input_ranges") or {}).get("film") if rule == "two-sided" else None
        if rule == "two-sided" and ranges is None:
            raise ValueError(f"{where}: has no 'input_ranges' of the training films for the two-sided rule "
                             "(weldlab.screening.input_ranges); use rule='paper' for the OR rule alone")
        check_autoencoder(trained.model, trained.record, where=str(trained.folder))
        return cls(trained.model, thresholds, trained.record, ranges)


def calibrate_detector(autoencoder, val_okay, train_okay, films, fpr=DEFAULT_FPR, films_source="training films"):
    """Everything a :class:`Detector` needs besides the network, for its record.

    Parameters
    ----------
    autoencoder : keras.Model
        The 192 px autoencoder.
    val_okay : ndarray, shape (n, 192, 192)
        Okay validation patches: the thresholds' false positive rate is calibrated on them.
    train_okay : ndarray, shape (m, 192, 192)
        Okay training patches: the patch-level input ranges and typicality reference.
    films : sequence of ndarray, each shape (H, W)
        The training radiographs: the film-level input ranges (for whole-film scans).
    fpr : float
        Patch-level false positive rate of each rule.

    Returns
    -------
    dict
        ``thresholds`` (the paper's OR rule), ``two_sided_thresholds`` (with ``t_quiet``,
        same budget) and ``input_ranges`` (``film`` and ``patch``, from
        :func:`weldlab.screening.input_ranges`; ``patch`` also holds the ``typicality``
        model of the okay training patches, its threshold sharing the same budget:
        :func:`weldlab.screening.calibrate_typicality`).
    """
    from .evaluate import residual_maxima
    from .screening import (atypicality, calibrate_typicality, check_inputs, image_statistics, input_ranges,
                            typicality_model)

    max_mean, max_std, min_std = residual_maxima(autoencoder, val_okay, quiet=True)
    two_sided = ResidualThresholds.calibrate(max_mean, max_std, fpr, min_std)
    source = f"{len(train_okay)} okay training patches"
    train_stats = [image_statistics(p) for p in train_okay]
    val_stats = [image_statistics(p) for p in val_okay]
    patch = input_ranges(None, source, statistics=train_stats)
    # the typicality check gets what the two-sided rule and the ranges leave of the budget
    flagged = (two_sided.score(max_mean, max_std, min_std) > 1) | np.array([bool(r) for r in check_inputs(val_stats, patch)])
    typical = typicality_model(train_stats, source)
    typical["threshold"] = calibrate_typicality(atypicality(val_stats, typical), flagged, fpr)
    patch["typicality"] = typical
    return {
        "thresholds": ResidualThresholds.calibrate(max_mean, max_std, fpr).to_dict(),
        "two_sided_thresholds": two_sided.to_dict(),
        "input_ranges": {"film": input_ranges(films, f"{len(films)} {films_source}", films=True), "patch": patch},
    }


#: The entries of a model record that :func:`calibrate_detector` writes.
CALIBRATION_KEYS = ("thresholds", "two_sided_thresholds", "input_ranges")


def record_or_calibrate(record, autoencoder, datasets, films, fpr=DEFAULT_FPR, films_source="training films"):
    """The detector calibration stored in ``record``, else one measured now.

    The shipped models' records have one; otherwise :func:`calibrate_detector` runs on
    ``datasets["val_okay"]``, ``datasets["train_okay"]`` and ``films``.

    Returns
    -------
    dict
        :data:`CALIBRATION_KEYS` -> their values.
    """
    if all(k in record for k in CALIBRATION_KEYS):
        return {k: record[k] for k in CALIBRATION_KEYS}
    return calibrate_detector(autoencoder, datasets["val_okay"], datasets["train_okay"], films, fpr=fpr,
                              films_source=films_source)


def flagged_values(flags, mean, std, quiet=None):
    """The ``flagged`` entry of :func:`scan_maps`, from full ``mean`` and ``std`` maps.

    Parameters
    ----------
    flags, mean, std : ndarray, shape (h, w)
    quiet : ndarray, shape (h, w), optional
        From :func:`weldlab.residuals.quiet_std` (two-sided thresholds).

    Returns
    -------
    dict
        ``index`` (flat indices of the windows with ``flags > 0``), ``abs_mean``, ``std``
        (and ``quiet``).
    """
    index = np.flatnonzero(np.asarray(flags) > 0)
    out = {"index": index, "abs_mean": np.abs(np.ravel(mean)[index]), "std": np.ravel(std)[index]}
    if quiet is not None:
        out["quiet"] = np.ravel(quiet)[index]
    return out


def flagged_regions(flags, flagged, thresholds, kernel=KERNEL):
    """Connected groups of flagged windows, as boxes in image pixels, one reason each.

    Windows flagged as too large (mean or std test) and as too quiet are grouped
    separately, so every region has one reason.

    Parameters
    ----------
    flags : ndarray, shape (h, w)
        From :func:`scan_maps`; window ``(i, j)`` covers image pixels from ``(i + 18, j + 18)``.
    flagged : dict
        From :func:`scan_maps`: ``index`` (flat indices of the flagged windows),
        ``abs_mean`` and ``std`` (their statistics; ``quiet`` with two-sided thresholds).

    Returns
    -------
    list of dict
        Largest score first: ``reason`` ("indication" or "quiet", see :data:`REASONS`),
        ``box`` ``[row0, col0, row1, col1]`` (end exclusive; a quiet region's box is
        widened to the neighbourhoods its windows measured), ``windows`` (how many
        fired), ``tests`` (windows per test: mean, std, both; or quiet), ``max_abs_mean``,
        ``max_std`` (and ``min_quiet``) and ``score`` (> 1: for an indication the
        combined score, for a quiet region ``t_quiet`` / its quietest neighbourhood).
    """
    flags = np.asarray(flags)
    thresholds = ResidualThresholds.from_dict(thresholds)
    codes = flags.ravel()[flagged["index"]]
    out = []
    for reason, bits in (("indication", 3), ("quiet", 4)):
        labels, n = ndimage.label((flags & bits) > 0, structure=np.ones((3, 3), bool))
        if n == 0:
            continue
        slices = ndimage.find_objects(labels)
        sel = (codes & bits) > 0
        region = labels.ravel()[flagged["index"][sel]] - 1  # 0-based region of each of these windows
        grow = (QUIET_KERNEL - kernel) // 2 if reason == "quiet" else 0
        if reason == "indication":
            max_mean, max_std = np.zeros(n), np.zeros(n)
            np.maximum.at(max_mean, region, flagged["abs_mean"][sel])
            np.maximum.at(max_std, region, flagged["std"][sel])
            c = codes[sel] & 3
            counts = {TEST_NAMES[code]: np.bincount(region[c == code], minlength=n) for code in (1, 2, 3)}
        else:
            min_quiet = np.full(n, np.inf)
            np.minimum.at(min_quiet, region, flagged["quiet"][sel])
            counts = {"quiet": np.bincount(region, minlength=n)}
        h, w = flags.shape
        for k, sl in enumerate(slices):
            entry = {
                "reason": reason,
                "box": [int(max(sl[0].start - grow, 0) + OFFSET), int(max(sl[1].start - grow, 0) + OFFSET),
                        int(min(sl[0].stop + grow, h) + OFFSET + kernel - 1),
                        int(min(sl[1].stop + grow, w) + OFFSET + kernel - 1)],
                "windows": int(sum(v[k] for v in counts.values())),
                "tests": {name: int(v[k]) for name, v in counts.items()},
            }
            if reason == "indication":
                entry.update({"max_abs_mean": float(max_mean[k]), "max_std": float(max_std[k]),
                              "score": float(thresholds.paper.score(max_mean[k], max_std[k]))})
            else:
                entry.update({"min_quiet": float(min_quiet[k]),
                              "score": float(thresholds.quiet_score(min_quiet[k]))})
            out.append(entry)
    return sorted(out, key=lambda r: -r["score"])


def coverage(flags, shape, kernel=KERNEL):
    """Which image pixels lie in a flagged window, coded as in ``flags`` (bitwise OR).

    Returns
    -------
    ndarray, shape ``shape``, int8
    """
    out = np.zeros(shape, np.int8)
    h, w = flags.shape
    for bit in (1, 2, 4):
        if not (flags & bit).any():
            continue
        centres = np.zeros(shape, bool)
        m = window_centre_margin(kernel)
        centres[m : m + h, m : m + w] = (flags & bit) > 0
        out |= ndimage.maximum_filter(centres, size=kernel).astype(np.int8) * bit
    return out


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
        From :func:`scan_maps`.
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


def compare_with_mask(regions, flags, mask, kernel=KERNEL):
    """How a scan's flagged regions relate to the known defects of an annotated radiograph.

    Parameters
    ----------
    regions : list of dict
        From :func:`flagged_regions`.
    flags : ndarray
        From :func:`scan_maps`.
    mask : ndarray, shape (H, W), bool
        True on defect pixels.

    Returns
    -------
    dict
        ``defects`` (8-connected defect regions with a pixel in the analysed area),
        ``defects_found`` (those with a pixel inside a flagged window), ``regions``,
        ``regions_on_defects`` (boxes holding a defect pixel) and ``false_alarm_regions``.
    """
    mask = np.asarray(mask, bool)
    flags = np.asarray(flags)
    expected = tuple(n - 2 * OFFSET - kernel + 1 for n in mask.shape)
    if mask.ndim != 2 or flags.shape != expected:
        raise ValueError(f"mask: shape {mask.shape} does not match the scan: flags of shape {flags.shape} "
                         f"come from a radiograph of shape {tuple(n + 2 * OFFSET + kernel - 1 for n in flags.shape)}")
    cov = coverage(flags, mask.shape, kernel) > 0
    inner = np.zeros_like(mask)
    inner[OFFSET:-OFFSET, OFFSET:-OFFSET] = True
    labels, n = ndimage.label(mask & inner, structure=np.ones((3, 3), bool))
    found = np.unique(labels[cov & (labels > 0)])
    on = sum(bool(mask[r0:r1, c0:c1].any()) for r0, c0, r1, c1 in (r["box"] for r in regions))
    return {"defects": int(n), "defects_found": int(found.size), "regions": len(regions),
            "regions_on_defects": int(on), "false_alarm_regions": len(regions) - int(on)}


#: Largest image accepted by :func:`scan_image` (pixels). A file scan holds the image
#: (4 bytes per pixel, plus its decoded file while loading), the flag map (1), the region
#: labels (4, briefly) and the overlay's RGB picture (3): about 10 bytes per pixel measured,
#: plus the network's per-tile working memory (about 1.5 GB at the default 1024 px tile,
#: 3.3 GB at 2048). At the limit that is about 4.5 GB. Larger films: scan them in parts.
MAX_PIXELS = 300_000_000


def scan_image(detector, image, tile=TILE, name="image", keep_maps=True, progress=None):
    """Scan one radiograph: verdict, its reasons, flagged regions and the maps.

    Parameters
    ----------
    detector : Detector
    image : ndarray, shape (H, W), float32 in [0, 1]
        At least 192 px per side, at most :data:`MAX_PIXELS` pixels.
    tile : int
        See :func:`reconstruct`.
    keep_maps, progress
        See :func:`scan_maps`.

    Returns
    -------
    verdict : dict
        ``verdict`` ("accept": nothing flagged and the image within the training films'
        ranges, or "review": send to a human), ``reasons`` (one line per reason, naming
        :data:`REASONS` and where), ``rule``, ``input`` (with input checks: the image's
        ``statistics`` and the reasons it lies ``outside`` the ranges), ``regions``
        (:func:`flagged_regions`), ``max_score``, ``analysed_box`` (the pixels the windows
        cover; an 18 px border is not analysed), ``thresholds``, ``seconds``.
    maps : dict
        From :func:`scan_maps`.

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.scan import Detector, scan_image
    >>> from weldlab.simulate import simulate_radiograph
    >>> detector = Detector.load()  # the shipped autoencoder, two-sided rule
    >>> film = simulate_radiograph(np.random.default_rng(1), height=300, width=600).image
    >>> verdict, maps = scan_image(detector, film)
    >>> verdict["verdict"] in ("accept", "review"), verdict["rule"], maps["flags"].shape
    (True, 'two-sided', (256, 556))
    """
    from .screening import check_input, film_statistics

    image = np.asarray(image, np.float32)
    t0 = time.perf_counter()
    th = detector.thresholds
    maps = scan_maps(detector.model_fc, image, th, tile, keep_maps=keep_maps, progress=progress,
                     name=name)  # validates the image (once)
    regions = flagged_regions(maps["flags"], maps["flagged"], th)
    score = th.score(maps["max_abs_mean"], maps["max_std"], maps.get("min_quiet"))
    reasons, checked = [], None
    if detector.input_ranges is not None:
        stats = film_statistics(image)
        outside = check_input(stats, detector.input_ranges)
        checked = {"statistics": stats, "outside": outside, "ranges_from": detector.input_ranges.get("source")}
        reasons += [f"{REASONS['input']}: {why}" for why in outside]
    for reason in ("indication", "quiet"):
        mine = [r for r in regions if r["reason"] == reason]
        if mine:
            reasons.append(f"{REASONS[reason]}: {len(mine)} region{'s' * (len(mine) > 1)}, "
                           f"the strongest at rows {mine[0]['box'][0]}-{mine[0]['box'][2]}, "
                           f"columns {mine[0]['box'][1]}-{mine[0]['box'][3]}")
    h, w = image.shape
    verdict = {
        "image": name, "shape": [h, w], "verdict": "review" if reasons else "accept", "reasons": reasons,
        "rule": detector.rule, "regions": regions, "max_score": float(score),
        "analysed_box": [OFFSET, OFFSET, h - OFFSET, w - OFFSET],
        "thresholds": {k: th[k] for k in ("t_mean", "t_std", "t_quiet") if k in th},
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if checked is not None:
        verdict["input"] = checked
    return verdict, maps


def _path_hash(path):
    return hashlib.sha256(str(path).encode()).hexdigest()[:8]


def _base_name(path):
    """``dir/x.png`` -> ``x_png``: inputs that differ only by their suffix stay apart."""
    return path.stem + (f"_{path.suffix[1:]}" if path.suffix else "")


def _outputs(out_dir, base):
    return out_dir / f"{base}.json", out_dir / f"{base}_overlay.png"


def _written_for(json_file, source):
    """True if ``json_file`` is a weldlab verdict for the image file ``source``."""
    try:
        return json.loads(Path(json_file).read_text()).get("source") == str(source)
    except (OSError, ValueError, AttributeError):
        return False


def output_names(paths, out_dir, overwrite=False):
    """Choose each input's output name, unique in the batch and in ``out_dir``.

    An input ``dir/x.png`` writes ``x_png.json`` and ``x_png_overlay.png``. Where two
    different files of the batch would share that name (``a/x.png`` and ``b/x.png``), or
    ``out_dir`` already holds outputs of that name that are not this file's (another
    file's verdict, or files weldlab did not write), an 8-hex hash of the file's absolute
    path is added: ``x_png-1a2b3c4d``. A file given twice is scanned once.

    Parameters
    ----------
    paths : sequence of path
    out_dir : path
    overwrite : bool
        Take the plain name even if outputs of that name are not this file's.

    Returns
    -------
    names : list of (Path, str)
        Each distinct input with its output base name, in the order given.
    duplicates : list of Path
        Inputs given more than once (after the first).
    """
    out_dir = Path(out_dir)
    seen, unique, duplicates = set(), [], []
    for path in map(Path, paths):
        source = path.resolve()
        if source in seen:
            duplicates.append(path)
            continue
        seen.add(source)
        unique.append((path, source))
    bases = [_base_name(p) for p, _ in unique]
    shared = {b for b in bases if bases.count(b) > 1}
    names = []
    for (path, source), base in zip(unique, bases):
        if base in shared or not (overwrite or _free_for(out_dir, base, source)):
            base = f"{base}-{_path_hash(source)}"
        names.append((path, base))
    return names, duplicates


def _free_for(out_dir, base, source):
    """No outputs named ``base`` yet, or they are ``source``'s own (a rescan)."""
    json_file, png = _outputs(out_dir, base)
    if json_file.exists() or json_file.is_symlink():
        return not json_file.is_symlink() and _written_for(json_file, source)
    return not (png.exists() or png.is_symlink())


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _error_message(exc):
    """One line, without terminal colour codes, for a verdict's ``error``."""
    text = _ANSI.sub("", str(exc)).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}"


def scan_files(paths, detector, out_dir, tile=TILE, log=print, overwrite=False):
    """Scan image files, writing a JSON verdict and an overlay PNG for each.

    Outputs are named by :func:`output_names` (unique per input; nothing weldlab did not
    write for the same input is replaced unless ``overwrite``). Each input's outputs are
    written to temporary files first and then moved into place together; a rescan that
    fails replaces the old verdict by the error and removes the old overlay, so no
    verdict sits beside an overlay of another image. A file that cannot be read
    (missing, a folder, corrupt, too small or too large, unsupported) is reported in its
    JSON and in the returned list, and the other files are still scanned.

    Parameters
    ----------
    paths : sequence of path
        PNG or TIFF radiographs, 8- or 16-bit grayscale (RGB is converted with a warning).
    detector : Detector
    out_dir : path
        Created if missing; an existing file there is an error.
    tile : int
        See :func:`reconstruct` (checked before any file is read).
    log : callable
        Receives one line per file as it starts and as it ends.

    Returns
    -------
    list of dict
        One verdict per distinct file; failed files have ``verdict`` "error" and an
        ``error`` message. Each verdict names its outputs (``json``, ``overlay``).
    """
    import imageio.v3 as iio

    tile = check_tile(tile)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"--out {out_dir}: is a file; expected a folder for the verdicts and overlays")
    out_dir.mkdir(parents=True, exist_ok=True)
    model = {k: detector.record.get(k) for k in ("model", "training_set", "seed", "preset", "data", "epochs",
                                                 "dataset_key", "git_commit", "weldlab_version", "source")}
    names, duplicates = output_names(paths, out_dir, overwrite)
    for path in duplicates:
        log(f"{path}: given more than once; scanned once")
    results = []
    for i, (path, base) in enumerate(names, 1):
        json_file, png = _outputs(out_dir, base)
        log(f"[{i}/{len(names)}] {path} ...")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                image = load_image(path, min_side=PATCH)

                head = f"[{i}/{len(names)}] {path}"

                def progress(done, total, head=head):
                    if total > 1 and (done == total or done % max(1, total // 10) == 0):
                        log(f"{head}: {done}/{total} tiles")

                verdict, maps = scan_image(detector, image, tile, name=str(path), keep_maps=False,
                                           progress=progress)
            except Exception as exc:  # one bad file must not stop the others
                verdict = {"image": str(path), "verdict": "error", "error": _error_message(exc)}
                maps = None
        verdict["source"] = str(path.resolve())
        verdict["warnings"] = [str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)]
        verdict["model"] = model
        verdict.update(provenance())
        verdict["json"] = str(json_file)
        if maps is not None:
            verdict["overlay"] = str(png)
            with atomic_file(png) as tmp_png:
                caption = [f"{verdict['verdict'].upper()} ({verdict['rule']} rule)"] + verdict["reasons"]
                iio.imwrite(tmp_png, overlay(image, maps["flags"], verdict["regions"], caption=caption,
                                             input_outside=bool(verdict.get("input", {}).get("outside"))))
                write_json(json_file, verdict)
        else:
            write_json(json_file, verdict)
            png.unlink(missing_ok=True)  # the old overlay (of this input: the name was checked) goes too
        results.append(verdict)
        if verdict["verdict"] == "error":
            log(f"[{i}/{len(names)}] {path}: ERROR {verdict['error']}")
        else:
            log(f"[{i}/{len(names)}] {path}: {verdict['verdict']} ({len(verdict['regions'])} regions, max score "
                f"{verdict['max_score']:.2f}, {verdict['seconds']} s)")
            for why in verdict["reasons"]:  # wrapped for a terminal (and a book page)
                log(textwrap.fill(why, 79, initial_indent="    ", subsequent_indent="      "))
        for w in verdict["warnings"]:
            log(f"{path}: warning: {w}")
    return results
