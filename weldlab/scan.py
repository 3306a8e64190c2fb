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

import json
import time
import warnings
from pathlib import Path

import keras
import numpy as np
from scipy import ndimage

from .models import INPUT_SIZE, OUTPUT_OFFSET, load_model
from .provenance import atomic_file, provenance, write_json
from .radiographs import check_image_array, load_image
from .residuals import KERNEL, kernel_statistics, window_flags

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
            # a direct call, not predict(): tiles differ in shape, and predict would retrace
            out = keras.ops.convert_to_numpy(model_fc(window[None, ..., None], training=False))[0, ..., 0]
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


# --- the detector applied to files: verdicts, regions and overlays -------------------------

#: Overlay colours (RGB) of windows flagged by the mean test (orange), the std test (green)
#: or both (blue), as in :data:`weldlab.figures.FLAG_COLOURS`; region frames are red.
FLAG_COLOURS = {1: (255, 127, 14), 2: (44, 160, 44), 3: (31, 119, 180)}
FRAME_COLOUR = (214, 39, 40)
TEST_NAMES = {1: "mean", 2: "std", 3: "both"}


class Detector:
    """The OOD detector: a fully convolutional autoencoder and its two thresholds.

    Parameters
    ----------
    autoencoder : keras.Model
        The 192 px autoencoder (converted with :func:`fully_convolutional`).
    thresholds : dict
        ``t_mean`` and ``t_std`` (from :func:`weldlab.residuals.calibrate_thresholds`).
    record : dict, optional
        The model's training record, copied into every verdict.
    """

    def __init__(self, autoencoder, thresholds, record=None):
        for key in ("t_mean", "t_std"):
            value = thresholds.get(key) if isinstance(thresholds, dict) else None
            if not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
                raise ValueError(f"thresholds: expected a positive finite {key!r}, got {value!r}")
        self.model_fc = fully_convolutional(autoencoder)
        self.thresholds = dict(thresholds)
        self.record = record or {}

    @classmethod
    def load(cls, model_dir=None, seed=0):
        """Load ``autoencoder.keras`` and ``record.json`` (with ``thresholds``) from a folder.

        Parameters
        ----------
        model_dir : path, optional
            Default: the shipped autoencoder (trained with SNI perturbations) of ``seed``.
        """
        from .models import pretrained_dir

        folder = Path(model_dir) if model_dir is not None else pretrained_dir("ae", seed)
        record_file = folder / "record.json"
        if not record_file.is_file():
            raise FileNotFoundError(f"{folder}: no record.json (expected a folder with autoencoder.keras and record.json)")
        try:
            record = json.loads(record_file.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{record_file}: not valid JSON ({exc})") from exc
        if "thresholds" not in record:
            raise ValueError(f"{record_file}: has no calibrated 'thresholds' "
                             "(calibrate them with weldlab.residuals.calibrate_thresholds)")
        model = load_model(folder / "autoencoder.keras")
        try:
            return cls(model, record["thresholds"], record)
        except ValueError as exc:
            raise ValueError(f"{folder}: {exc}") from exc


def flagged_regions(flags, mean, std, thresholds, kernel=KERNEL):
    """Connected groups of flagged windows, as boxes in image pixels.

    Parameters
    ----------
    flags, mean, std : ndarray, shape (h, w)
        From :func:`scan_maps`; window ``(i, j)`` covers image pixels from ``(i + 18, j + 18)``.

    Returns
    -------
    list of dict
        Largest score first: ``box`` ``[row0, col0, row1, col1]`` (end exclusive),
        ``windows`` (how many fired), ``tests`` (windows per test: mean, std, both),
        ``max_abs_mean``, ``max_std`` and ``score`` (the combined score, > 1).
    """
    labels, n = ndimage.label(flags > 0, structure=np.ones((3, 3), bool))
    if n == 0:
        return []
    index = np.arange(1, n + 1)
    slices = ndimage.find_objects(labels)
    abs_mean = np.abs(mean)
    max_mean = ndimage.maximum(abs_mean, labels, index)
    max_std = ndimage.maximum(std, labels, index)
    counts = [np.bincount(labels[flags == code], minlength=n + 1)[1:] for code in (1, 2, 3)]
    out = []
    for k, sl in enumerate(slices):
        out.append({
            "box": [int(sl[0].start + MARGIN), int(sl[1].start + MARGIN),
                    int(sl[0].stop + MARGIN + kernel - 1), int(sl[1].stop + MARGIN + kernel - 1)],
            "windows": int(counts[0][k] + counts[1][k] + counts[2][k]),
            "tests": {TEST_NAMES[c]: int(counts[c - 1][k]) for c in (1, 2, 3)},
            "max_abs_mean": float(max_mean[k]), "max_std": float(max_std[k]),
            "score": float(max(max_mean[k] / thresholds["t_mean"], max_std[k] / thresholds["t_std"])),
        })
    return sorted(out, key=lambda r: -r["score"])


def coverage(flags, shape, kernel=KERNEL):
    """Which image pixels lie in a flagged window, coded as in ``flags`` (bitwise OR).

    Returns
    -------
    ndarray, shape ``shape``, int8
    """
    out = np.zeros(shape, np.int8)
    h, w = flags.shape
    for bit in (1, 2):
        centres = np.zeros(shape, bool)
        centres[MARGIN + kernel // 2 : MARGIN + kernel // 2 + h,
                MARGIN + kernel // 2 : MARGIN + kernel // 2 + w] = (flags & bit) > 0
        out |= ndimage.maximum_filter(centres, size=kernel).astype(np.int8) * bit
    return out


def overlay(image, flags, regions, kernel=KERNEL, alpha=0.55):
    """An RGB picture of the radiograph with flagged windows tinted and regions boxed.

    Parameters
    ----------
    image : ndarray, shape (H, W), float in [0, 1]
    flags : ndarray
        From :func:`scan_maps`.
    regions : list of dict
        From :func:`flagged_regions`.

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
    """
    from skimage.draw import rectangle_perimeter

    rgb = np.repeat(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)
    cov = coverage(flags, image.shape, kernel)
    for code, colour in FLAG_COLOURS.items():
        sel = cov == code
        rgb[sel] = np.round((1 - alpha) * rgb[sel] + alpha * np.asarray(colour)).astype(np.uint8)
    for r in regions:
        r0, c0, r1, c1 = r["box"]
        for pad in (3, 4):  # a 2 px frame a little outside the box
            rr, cc = rectangle_perimeter((r0 - pad, c0 - pad), end=(r1 - 1 + pad, c1 - 1 + pad), shape=image.shape,
                                         clip=True)
            rgb[rr, cc] = FRAME_COLOUR
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
    expected = tuple(n - 2 * MARGIN - kernel + 1 for n in mask.shape)
    if mask.ndim != 2 or flags.shape != expected:
        raise ValueError(f"mask: shape {mask.shape} does not match the scan: flags of shape {flags.shape} "
                         f"come from a radiograph of shape {tuple(n + 2 * MARGIN + kernel - 1 for n in flags.shape)}")
    cov = coverage(flags, mask.shape, kernel) > 0
    inner = np.zeros_like(mask)
    inner[MARGIN:-MARGIN, MARGIN:-MARGIN] = True
    labels, n = ndimage.label(mask & inner, structure=np.ones((3, 3), bool))
    found = np.unique(labels[cov & (labels > 0)])
    on = sum(bool(mask[r0:r1, c0:c1].any()) for r0, c0, r1, c1 in (r["box"] for r in regions))
    return {"defects": int(n), "defects_found": int(found.size), "regions": len(regions),
            "regions_on_defects": int(on), "false_alarm_regions": len(regions) - int(on)}


def scan_image(detector, image, tile=2048, name="image"):
    """Scan one radiograph: verdict, flagged regions and the maps.

    Parameters
    ----------
    detector : Detector
    image : ndarray, shape (H, W), float32 in [0, 1]
        At least 192 px per side.
    tile : int
        See :func:`reconstruct`.

    Returns
    -------
    verdict : dict
        ``verdict`` ("accept": nothing flagged, or "review": send to a human), ``regions``
        (:func:`flagged_regions`), ``max_score``, ``analysed_box`` (the pixels the windows
        cover; an 18 px border is not analysed), ``thresholds``, ``seconds``.
    maps : dict
        From :func:`scan_maps`.
    """
    image = check_image_array(np.asarray(image, np.float32), what=name, min_side=INPUT_SIZE)
    t0 = time.perf_counter()
    maps = scan_maps(detector.model_fc, image, detector.thresholds, tile)
    regions = flagged_regions(maps["flags"], maps["mean"], maps["std"], detector.thresholds)
    score = float(max(np.abs(maps["mean"]).max() / detector.thresholds["t_mean"],
                      maps["std"].max() / detector.thresholds["t_std"]))
    h, w = image.shape
    return {
        "image": name, "shape": [h, w], "verdict": "review" if regions else "accept",
        "regions": regions, "max_score": score,
        "analysed_box": [MARGIN, MARGIN, h - MARGIN, w - MARGIN],
        "thresholds": {k: detector.thresholds[k] for k in ("t_mean", "t_std")},
        "seconds": round(time.perf_counter() - t0, 3),
    }, maps


def scan_files(paths, detector, out_dir, tile=2048, log=print):
    """Scan image files, writing ``<stem>_overlay.png`` and ``<stem>.json`` for each.

    A file that cannot be read (missing, corrupt, too small, unsupported) is reported in
    its JSON and in the returned list, and the other files are still scanned.

    Parameters
    ----------
    paths : sequence of path
        PNG or TIFF radiographs, 8- or 16-bit grayscale (RGB is converted with a warning).
    detector : Detector
    out_dir : path

    Returns
    -------
    list of dict
        One verdict per file; failed files have ``verdict`` "error" and an ``error`` message.
    """
    import imageio.v3 as iio

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = {k: detector.record.get(k) for k in ("model", "training_set", "seed", "preset", "data", "epochs",
                                                 "dataset_key", "git_commit", "weldlab_version", "source")}
    results = []
    for path in map(Path, paths):
        stem = path.stem
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                image = load_image(path, min_side=INPUT_SIZE)
                verdict, maps = scan_image(detector, image, tile, name=str(path))
            except Exception as exc:  # one bad file must not stop the others
                verdict = {"image": str(path), "verdict": "error", "error": f"{type(exc).__name__}: {exc}"}
                maps = None
        verdict["warnings"] = [str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)]
        verdict["model"] = model
        verdict.update(provenance())
        if maps is not None:
            png = out_dir / f"{stem}_overlay.png"
            with atomic_file(png) as tmp:
                iio.imwrite(tmp, overlay(image, maps["flags"], verdict["regions"]))
            verdict["overlay"] = str(png)
        write_json(out_dir / f"{stem}.json", verdict)
        results.append(verdict)
        if verdict["verdict"] == "error":
            log(f"{path}: ERROR {verdict['error']}")
        else:
            log(f"{path}: {verdict['verdict']} ({len(verdict['regions'])} regions, max score "
                f"{verdict['max_score']:.2f}, {verdict['seconds']} s)")
        for w in verdict["warnings"]:
            log(f"{path}: warning: {w}")
    return results
