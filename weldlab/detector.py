"""The OOD detector: an autoencoder, its calibrated thresholds and input checks, and its verdict.

:class:`Detector` holds the fully convolutional autoencoder (:mod:`weldlab.tiling`), the
thresholds of the paper's OR rule or of the two-sided rule, and the training films' input
ranges; :func:`calibrate_detector` measures them for a model's record. :func:`scan_image`
applies a detector to one radiograph: the flagged windows become regions
(:func:`flagged_regions`), and the regions and input checks become a
:class:`weldlab.verdict.Verdict` with its reasons. :func:`compare_with_mask` sets a scan
beside the known defects of an annotated film.
"""

from __future__ import annotations

import time

import numpy as np
from scipy import ndimage

from .geometry import KERNEL, OFFSET, QUIET_KERNEL, window_centre_margin
from .models import check_autoencoder
from .thresholds import DEFAULT_FPR, ResidualThresholds
from .tiling import TILE, fully_convolutional, scan_maps
from .verdict import RULES, Reason, Verdict

TEST_NAMES = {1: "mean", 2: "std", 3: "both"}


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
    patch_ranges : dict, optional
        The same for single 192 px patches (from the okay training patches, with their
        ``typicality`` model), used by :meth:`patch_scores`. None: patches are not checked.
    """

    def __init__(self, autoencoder, thresholds, record=None, input_ranges=None, patch_ranges=None):
        thresholds = ResidualThresholds.from_dict(thresholds)
        for name, ranges in (("input_ranges", input_ranges), ("patch_ranges", patch_ranges)):
            if ranges is not None and not (isinstance(ranges, dict) and "ranges" in ranges):
                raise ValueError(f"{name}: expected the result of weldlab.screening.input_ranges")
        check_autoencoder(autoencoder, where="autoencoder")
        self.model_fc = fully_convolutional(autoencoder)
        self.thresholds = thresholds
        self.record = record or {}
        self.input_ranges = input_ranges
        self.patch_ranges = patch_ranges

    def patch_scores(self, patches, batch_size=64):
        """The detector's rule on single patches: one score per patch, above 1 meaning review.

        Parameters
        ----------
        patches : ndarray, shape (n, 192, 192)
        batch_size : int

        Returns
        -------
        dict of ndarray, each shape (n,)
            ``residual`` (the thresholds' score: :meth:`ResidualThresholds.score`, with the
            quiet test under the two-sided rule), ``inputs`` (2 where a patch lies outside
            :attr:`patch_ranges`, else 0; all 0 without them) and ``detector``: a patch goes
            to review when either does. Also the residual's ``max_mean`` and ``max_std``
            (and, two-sided, ``min_std``), so that other thresholds can score the patches
            without another pass of the network.

        Examples
        --------
        >>> import numpy as np
        >>> from weldlab.detector import Detector
        >>> d = Detector.load()
        >>> flat = np.full((1, 192, 192), 0.45, np.float32)  # no grain: too quiet
        >>> bool(d.patch_scores(flat)["detector"][0] > 1)
        True
        """
        from .evaluate import residual_maxima
        from .screening import check_inputs, image_statistics

        two_sided = self.thresholds.two_sided
        maxima = residual_maxima(self.model_fc, patches, batch_size, quiet=two_sided)
        residual = self.thresholds.score(*maxima)
        inputs = np.zeros(len(residual))
        if self.patch_ranges is not None:
            reasons = check_inputs([image_statistics(p) for p in patches], self.patch_ranges)
            inputs = np.array([2.0 if r else 0.0 for r in reasons])
        return {"residual": residual, "inputs": inputs, "detector": np.maximum(residual, inputs),
                **dict(zip(("max_mean", "max_std", "min_std"), maxima))}

    @classmethod
    def from_calibration(cls, autoencoder, calibration, record=None):
        """The two-sided detector of a calibration (:func:`calibrate_detector`'s result).

        Parameters
        ----------
        autoencoder : keras.Model
        calibration : dict
            ``two_sided_thresholds`` and ``input_ranges`` (``patch``, and ``film`` where
            whole films are to be checked too).
        record : dict, optional
            The model's training record.
        """
        ranges = calibration["input_ranges"]
        return cls(autoencoder, calibration["two_sided_thresholds"], record, ranges.get("film"), ranges["patch"])

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
            (too-quiet residuals and inputs unlike the training films go to review too;
            ``input_ranges["patch"]``, where the record has them, for :meth:`patch_scores`);
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
            raise ValueError(f"{exc.args[0]} (add what weldlab.detector.calibrate_detector returns to the record{also})") from exc
        ranges = (trained.record.get("input_ranges") or {}).get("film") if rule == "two-sided" else None
        if rule == "two-sided" and ranges is None:
            raise ValueError(f"{where}: has no 'input_ranges' of the training films for the two-sided rule "
                             "(weldlab.screening.input_ranges); use rule='paper' for the OR rule alone")
        check_autoencoder(trained.model, trained.record, where=str(trained.folder))
        patch = (trained.record.get("input_ranges") or {}).get("patch") if rule == "two-sided" else None
        return cls(trained.model, thresholds, trained.record, ranges, patch)


def detector_for(trained, datasets, films, fpr=DEFAULT_FPR, films_source="training films"):
    """The two-sided detector of a trained autoencoder, with its calibration.

    The calibration stored in the model's record (the shipped models), else one measured
    now on the datasets and films (:func:`record_or_calibrate`); what the chapters and a
    user's own model need, in one call.

    Parameters
    ----------
    trained : weldlab.trained.TrainedModel
        An autoencoder's folder.
    datasets : weldlab.datasets.PatchDatasets
    films : sequence of ndarray, each shape (H, W)
        The training radiographs (their film-level input ranges).
    fpr : float
    films_source : str
        What the films are, for the ranges' record.

    Returns
    -------
    detector : Detector
        The two-sided rule with the film-level input checks.
    calibration : dict
        :data:`CALIBRATION_KEYS` -> their values (the paper's thresholds and the
        patch-level input ranges too).
    """
    calibration = record_or_calibrate(trained.record, trained.model, datasets, films, fpr=fpr,
                                      films_source=films_source)
    return Detector.from_calibration(trained.model, calibration, trained.record), calibration


def calibrate_detector(autoencoder, val_okay, train_okay, films, fpr=DEFAULT_FPR, films_source="training films",
                       val_films=None, train_films=None):
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
    val_films, train_films : array_like of int, shapes (n,) and (m,), optional
        The film of each validation and training patch (:func:`patch_films`); both or
        neither. Given, the typicality threshold is calibrated with each validation
        patch's own film left out of its neighbours, as a new film's patches have no
        neighbours from their own film (``typicality["calibrated"]`` says which), and the
        patch-level ranges are widened where a training film lies outside the range of
        the others (:func:`weldlab.screening.input_ranges`'s ``groups``), as is the quiet
        test's floor (:func:`weldlab.screening.grain_margin`). The film-level ranges are
        always widened so (each film its own group).

    Returns
    -------
    dict
        ``thresholds`` (the paper's OR rule), ``two_sided_thresholds`` (with ``t_quiet``,
        same budget, lowered by the grain's margin: ``quiet_margin``) and ``input_ranges`` (``film`` and ``patch``, from
        :func:`weldlab.screening.input_ranges`; ``patch`` also holds the ``typicality``
        model of the okay training patches, its threshold sharing the same budget:
        :func:`weldlab.screening.calibrate_typicality`).
    """
    if (val_films is None) != (train_films is None):
        raise ValueError("val_films, train_films: give the films of both patch sets, or neither")
    from .evaluate import residual_maxima
    from .screening import (atypicality, calibrate_typicality, check_inputs, grain_margin, image_statistics,
                            input_ranges, typicality_model)

    max_mean, max_std, min_std = residual_maxima(autoencoder, val_okay, quiet=True)
    # the quiet test is a floor on the grain: lowered as the input checks' grain range is widened
    two_sided = ResidualThresholds.calibrate(max_mean, max_std, fpr, min_std,
                                             quiet_margin=grain_margin(min_std, val_films))
    source = f"{len(train_okay)} okay training patches"
    train_stats = [image_statistics(p) for p in train_okay]
    val_stats = [image_statistics(p) for p in val_okay]
    patch = input_ranges(None, source, statistics=train_stats, groups=train_films)
    # the typicality check gets what the two-sided rule and the ranges leave of the budget
    flagged = (two_sided.score(max_mean, max_std, min_std) > 1) | np.array([bool(r) for r in check_inputs(val_stats, patch)])
    typical = typicality_model(train_stats, source, films=train_films)
    distances = atypicality(val_stats, typical, films=val_films)
    typical.pop("films", None)  # only for the calibration: a new film's patches have no film here
    typical["threshold"] = calibrate_typicality(distances, flagged, fpr)
    typical["calibrated"] = "own film left out" if val_films is not None else "all training patches"
    patch["typicality"] = typical
    return {
        "thresholds": ResidualThresholds.calibrate(max_mean, max_std, fpr).to_dict(),
        "two_sided_thresholds": two_sided.to_dict(),
        "input_ranges": {"film": input_ranges(films, f"{len(films)} {films_source}", films=True,
                                              groups=np.arange(len(films))), "patch": patch},
    }


def patch_films(datasets):
    """The training film of each okay validation and training patch.

    Parameters
    ----------
    datasets : weldlab.datasets.PatchDatasets

    Returns
    -------
    val_films, train_films : ndarray of int, shapes (n,) and (m,)
        Indices into the datasets' training radiographs.
    """
    return tuple(np.asarray(datasets.raw(f"{name}_origin"))[:, 0].astype(int) for name in ("val_okay", "train_okay"))


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
    val_films, train_films = patch_films(datasets)
    return calibrate_detector(autoencoder, datasets["val_okay"], datasets["train_okay"], films, fpr=fpr,
                              films_source=films_source, val_films=val_films, train_films=train_films)


def flagged_values(flags, mean, std, quiet=None):
    """The ``flagged`` entry of :func:`weldlab.tiling.scan_maps`, from full ``mean`` and ``std`` maps.

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
        From :func:`weldlab.tiling.scan_maps`; window ``(i, j)`` covers image pixels from ``(i + 18, j + 18)``.
    flagged : dict
        From :func:`weldlab.tiling.scan_maps`: ``index`` (flat indices of the flagged windows),
        ``abs_mean`` and ``std`` (their statistics; ``quiet`` with two-sided thresholds).

    Returns
    -------
    list of dict
        Largest score first: ``reason`` ("indication" or "quiet", see :data:`weldlab.verdict.REASON_KINDS`),
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


def compare_with_mask(regions, flags, mask, kernel=KERNEL):
    """How a scan's flagged regions relate to the known defects of an annotated radiograph.

    Parameters
    ----------
    regions : list of dict
        From :func:`flagged_regions`.
    flags : ndarray
        From :func:`weldlab.tiling.scan_maps`.
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


def scan_image(detector, image, tile=TILE, name="image", keep_maps=True, progress=None):
    """Scan one radiograph: its verdict (with reasons and flagged regions) and the maps.

    Parameters
    ----------
    detector : Detector
    image : ndarray, shape (H, W), float32 in [0, 1]
        At least 192 px per side, at most :data:`weldlab.tiling.MAX_PIXELS` pixels.
    tile : int
        See :func:`weldlab.tiling.reconstruct`.
    keep_maps, progress
        See :func:`weldlab.tiling.scan_maps`.

    Returns
    -------
    verdict : weldlab.verdict.Verdict
        "accept" (nothing flagged and the image within the training films' ranges) or
        "review" (send to a human), with one :class:`~weldlab.verdict.Reason` per input
        statistic outside its range and per kind of flagged region (its count and the
        strongest one's box); ``regions`` (:func:`flagged_regions`), ``max_score``,
        ``analysed_box`` (the pixels the windows cover; an 18 px border is not analysed),
        ``thresholds``, ``seconds``, and with input checks ``input`` (the image's
        ``statistics`` and where the ranges are ``from``; the statistics outside them are
        the reasons of kind "input").
    maps : dict
        From :func:`weldlab.tiling.scan_maps`.

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.detector import Detector, scan_image
    >>> from weldlab.simulate import simulate_radiograph
    >>> detector = Detector.load()  # the shipped autoencoder, two-sided rule
    >>> film = simulate_radiograph(np.random.default_rng(1), height=300, width=600).image
    >>> verdict, maps = scan_image(detector, film)
    >>> verdict.decision in ("accept", "review"), verdict.rule, maps["flags"].shape
    (True, 'two-sided', (256, 556))
    >>> all(r.kind in ("indication", "quiet", "input") for r in verdict.reasons)
    True
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
        checked = {"statistics": stats, "ranges_from": detector.input_ranges.get("source")}
        reasons += outside
    for kind in ("indication", "quiet"):
        mine = [r for r in regions if r["reason"] == kind]
        if mine:
            reasons.append(Reason(kind, value=mine[0]["score"], box=tuple(mine[0]["box"]), regions=len(mine)))
    h, w = image.shape
    verdict = Verdict(
        image=name, shape=(h, w), reasons=tuple(reasons), rule=detector.rule, max_score=float(score),
        regions=tuple(regions), analysed_box=(OFFSET, OFFSET, h - OFFSET, w - OFFSET),
        thresholds={k: th[k] for k in ("t_mean", "t_std", "t_quiet") if k in th},
        seconds=round(time.perf_counter() - t0, 3), input=checked)
    return verdict, maps
