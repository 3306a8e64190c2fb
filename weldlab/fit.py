"""Your own films: a detector fitted to a family of accepted radiographs (``weldlab fit``).

A detector calibrated on one digitisation rightly sends films of another to review: their
grain, sharpness and exposure lie outside what it was trained on (chapter 10). The
autoencoder trained with SNI perturbations needs no defect labels (paper §5), so a lab can
make its own detector from films of accepted welds:

1. :func:`weldlab.radiographs.load_films` reads the films (8- or 16-bit, one depth) and
   the defects where known (masks or boxes); every file is checked before any work.
2. :func:`split_films` holds some films out of training (seeded): films the model never
   sees, as the films it will scan are new to it.
3. :func:`weldlab.datasets.build_family_datasets` cuts okay patches from the films minus
   their defects (grown by :data:`weldlab.patches.OKAY_MARGIN`): training patches from the
   training films, validation patches from every film (those of the training films
   unseen in training), defect patches for D where masks are given, and generates the
   SNI set.
4. :func:`weldlab.training.train_autoencoder` trains the autoencoder, starting from the
   shipped model's weights by default, with checkpoints: interrupted, it resumes.
5. :func:`weldlab.detector.calibrate_detector` calibrates the paper's and the two-sided
   thresholds on the validation patches, the typicality check with each patch's own film
   left out, and the input ranges of the training films, these widened until each
   training film lies inside the range of the others (:func:`weldlab.screening.input_ranges`'s
   ``groups``); the held-out films are then checked against the film-level ranges, and
   the record says whether they are in range.
6. The detector folder (``autoencoder.keras``, ``record.json``, ``history.json``) is
   written at once at the end; ``weldlab scan --model`` uses it.

The work (patch sets, checkpoints) lives beside the detector in ``<out>.work`` until the
detector is written, so an interrupted fit resumes where it stopped, and a fit of other
films, annotations or parameters starts afresh (a new key).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np

from .config import make_config
from .provenance import atomic_directory, check_replaceable, provenance

#: The share of the films held out of training (rounded up). The thresholds are calibrated
#: on validation patches of every film, not of these alone: a film family varies from film
#: to film (exposure, bead contrast), and two held-out films of eight do not span it.
#: Measured on simulated films of another scanner (the quick fit of ``scripts/fit_family.py``,
#: 8 films, 4 more held out to test on): thresholds from the two held-out films, the two
#: of lowest contrast, flagged 19 % of the test films' okay patches at 0.1 % FPR; from
#: patches of all eight films, 8 %, every one of them on the one test film whose exposure
#: (1st percentile) lies outside the family's range and which goes to review for it.
CALIBRATION_SHARE = 0.25
#: At least so many films train the model: each film's input statistics are then judged
#: by the range the others give.
MIN_TRAINING_FILMS = 2
#: At least one film more is held out of training.
MIN_FILMS = MIN_TRAINING_FILMS + 1
#: Random stream of the split (see :mod:`weldlab.datasets`).
STREAM_FILM_SPLIT = 20
#: The training recipe of a fit, under the preset's budget (``-p`` overrides it): no dropout,
#: the okay terms weighted 10x and a cosine schedule (the best okay fit of the convergence
#: ablation, chapter 4), from a lower rate when starting from trained weights. Measured on
#: four simulated 16-bit films (320 pairs from the shipped weights, 200 okay patches of a
#: held-out film): the residual's RMS 0.0079 at a rate of 2e-4 without dropout, 0.0100 at
#: 1e-3, and 0.26 with the presets' dropout in the first epoch (dropout shifts what the
#: layers after it see, and the few steps of a fit never undo it); the shipped model 0.0103.
RECIPE = {"ae_dropout_epochs": 0, "ae_okay_weight": 10.0, "ae_schedule": "cosine"}
#: The learning rate of a fit that starts from trained weights (from scratch: the preset's).
WARM_START_LEARNING_RATE = 2e-4
#: What a finished detector folder holds.
DETECTOR_FILES = ("autoencoder.keras", "record.json", "history.json")


def split_films(n, seed=0, share=CALIBRATION_SHARE):
    """Which films train the autoencoder and which are held out of training.

    Parameters
    ----------
    n : int
        Number of films.
    seed : int
    share : float
        The share held out: ``ceil(share * n)`` films, at least one, leaving at least
        :data:`MIN_TRAINING_FILMS`.

    Returns
    -------
    train, calibration : list of int
        Sorted film indices.

    Raises
    ------
    ValueError
        With fewer than :data:`MIN_FILMS` films.

    Examples
    --------
    >>> from weldlab.fit import split_films
    >>> train, calibration = split_films(8)
    >>> len(train), len(calibration), sorted(train + calibration) == list(range(8))
    (6, 2, True)
    """
    if n < MIN_FILMS:
        raise ValueError(f"films: {n} given; a fit needs at least {MIN_FILMS}: {MIN_TRAINING_FILMS} or more to "
                         "train on (each judged against the range of the others) and one held out, which the "
                         "model never sees")
    k = min(max(1, math.ceil(share * n)), n - MIN_TRAINING_FILMS)
    order = np.random.default_rng([int(seed), STREAM_FILM_SPLIT]).permutation(n)
    return sorted(int(i) for i in order[k:]), sorted(int(i) for i in order[:k])


def family_key(films, train, calibration, cfg):
    """Short hash of everything a family's patch sets are made from.

    The films' pixels and defect masks, the split and ``cfg``'s dataset parameters (the
    data source's own ones aside).

    Returns
    -------
    str
    """
    from .datasets import FORMAT_VERSION

    h = hashlib.sha256()
    for r in films:
        h.update(r.name.encode())
        h.update(np.ascontiguousarray(r.image).tobytes())
        h.update(np.packbits(r.mask).tobytes())
    params = {k: v for k, v in cfg.dataset_params().items()
              if not k.startswith("sim_") and k not in ("data", "gdxray_test", "simulator_version")}
    h.update(json.dumps({"train": train, "calibration": calibration, "params": params,
                         "format": FORMAT_VERSION}, sort_keys=True).encode())
    return h.hexdigest()[:16]


def is_detector_folder(path):
    """True if ``path`` holds a fitted detector and nothing else (:data:`DETECTOR_FILES`)."""
    return {p.name for p in Path(path).iterdir()} <= set(DETECTOR_FILES)


def _datasets(train, calibration, cfg, key, folder, describe):
    """The family's patch sets in ``folder``: reused when built from the same key."""
    from .datasets import PatchDatasets, build_family_datasets, is_dataset_folder

    if (folder / "manifest.json").is_file():
        try:
            ds = PatchDatasets(folder)
            if ds.manifest.get("dataset_key") == key:
                return ds
        except (ValueError, OSError):
            pass
        if not is_dataset_folder(folder):
            raise ValueError(f"{folder}: holds files that are not weldlab's patch sets; remove it")
    return build_family_datasets(train, calibration, cfg, key, folder, describe)


def fit_detector(films, out, *, masks=None, boxes=None, preset="quick", overrides=None, seed=0,
                 start_from="shipped", work=None, overwrite=False, verbose=1, log=print, stop_after=None):
    """Fit a detector to a family of films and write it to ``out``.

    Parameters
    ----------
    films : sequence of path
        Grayscale PNG or TIFF films of accepted welds, all 8-bit or all 16-bit, each at
        least :data:`weldlab.geometry.SAMPLING_MIN_SIDE` px per side, at least
        :data:`MIN_FILMS` of them.
    out : path
        The detector folder to write (absent, empty or a detector weldlab wrote).
    masks, boxes : path, optional
        Their defects, where known: a folder of masks named as the films, or a box file
        in GDXray's ``ground_truth.txt`` format (:func:`weldlab.radiographs.load_films`).
        Okay patches avoid them; masks also give D perturbations (the set is then
        ``D+sni``, else ``sni``).
    preset : {"quick", "standard", "paper"}
        How many patches and how long to train (:mod:`weldlab.config`): ``quick`` takes
        minutes and gives a detector to try things with; ``standard`` hours.
    overrides : dict, optional
        Parameters of the preset to change (``-p NAME=VALUE``), e.g. ``{"ae_epochs": 20}``;
        they take precedence over :data:`RECIPE`.
    seed : int
        The split, the patches and the training.
    start_from : "shipped", path or None
        The autoencoder whose weights training starts from: the shipped one trained with
        SNI (default), another model folder, or None (random weights; ``--from-scratch``).
    work : path, optional
        Where the patch sets and checkpoints live until the detector is written
        (default ``<out>.work``); removed on success.
    overwrite : bool
        Replace ``out`` even if it holds files that are not a detector weldlab wrote.
    verbose : int
        Keras' progress: 1 a bar per epoch, 2 a line per epoch, 0 none.
    log : callable
        Receives progress lines.
    stop_after : int, optional
        Stop training (as if interrupted) after so many epochs in this call; for tests.

    Returns
    -------
    weldlab.trained.TrainedModel
        The detector's folder: its record holds the training record, the calibration
        (``thresholds``, ``two_sided_thresholds``, ``input_ranges``) and ``fit`` (the films,
        the split, the annotations, whether the held-out films are in range, the time).

    Raises
    ------
    ValueError, OSError
        Bad input, each naming the file and what was expected, before anything is
        written.
    """
    from .detector import calibrate_detector, patch_films
    from .geometry import SAMPLING_MIN_SIDE
    from .radiographs import load_films
    from .screening import check_input, film_statistics
    from .trained import TrainedModel, pretrained_dir
    from .training import hyperparameters, train_autoencoder

    t0 = time.perf_counter()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out}: is a file; expected a folder for the detector")
    check_replaceable(out, is_detector_folder, "--out", overwrite)
    source = pretrained_dir("ae", 0) if start_from == "shipped" else start_from
    recipe = RECIPE | ({"learning_rate": WARM_START_LEARNING_RATE} if source is not None else {})
    cfg = make_config(preset, **(recipe | dict(overrides or {})))
    radiographs, info = load_films(films, masks, boxes, min_side=SAMPLING_MIN_SIDE)
    train_idx, cal_idx = split_films(len(radiographs), seed)
    train = [radiographs[i] for i in train_idx]
    calibration = [radiographs[i] for i in cal_idx]
    with_defects = info["annotations"] == "masks" and any(r.mask.any() for r in train)
    cfg = dataclasses.replace(cfg, seed=seed, n_train_defect=cfg.n_train_defect if with_defects else 0)
    key = family_key(radiographs, train_idx, cal_idx, cfg)
    work = Path(work) if work is not None else out.with_name(out.name + ".work")
    annotated = f", {len(info['annotated'])} with known defects" if info["annotations"] != "none" else ""
    log(f"{len(radiographs)} {info['bit_depth']}-bit films{annotated}: {len(train)} to train on, "
        f"{len(calibration)} held out; work in {work}")
    fit_record = {
        "films": [r.name for r in radiographs], "training_films": [r.name for r in train],
        "calibration_films": [r.name for r in calibration], "bit_depth": info["bit_depth"],
        "annotations": info["annotations"], "annotated": info["annotated"], "unused_annotations": info["unused"],
        "preset": preset, "recipe": recipe, "overrides": dict(overrides or {}), "seed": seed,
        "start_from": None if source is None else str(source), "family_key": key,
    }
    ds = _datasets(train, calibration, cfg, key, work / "datasets", {"fit": fit_record})
    training_set = "D+sni" if "D" in ds.manifest["perturbation_sets"] else "sni"
    hyper = hyperparameters(cfg, "ae")
    record = train_autoencoder(ds, training_set, seed=seed, out_dir=work / "model", start_from=source,
                               fpr=cfg.fpr, verbose=verbose, log=log, stop_after=stop_after, **hyper)
    trained = TrainedModel.load(work / "model", "ae")
    log("calibrating the thresholds and input ranges ...")
    val_films, train_films = patch_films(ds)
    calibration_entry = calibrate_detector(
        trained.model, ds["val_okay"], ds["train_okay"], [r.image for r in train],
        fpr=cfg.fpr, films_source="training films of the family", val_films=val_films, train_films=train_films)
    held_out = {r.name: [reason.to_dict() for reason in check_input(film_statistics(r.image),
                                                                    calibration_entry["input_ranges"]["film"])]
                for r in calibration}
    fit_record.update({"held_out_films_outside_ranges": {k: v for k, v in held_out.items() if v},
                       "held_out_films_in_range": sum(not v for v in held_out.values()),
                       "seconds": round(time.perf_counter() - t0, 1)})
    record.update(calibration_entry)
    record["fit"] = fit_record
    record["source"] = (f"weldlab fit: {training_set} autoencoder "
                        f"{'from the weights of ' + str(source) if source else 'from random weights'}, "
                        f"trained on {len(train)} films, calibrated on patches of these and {len(calibration)} "
                        "held-out films")
    record.update(provenance())
    with atomic_directory(out) as tmp:
        TrainedModel(tmp, "ae", record, trained.history).save(trained.model)
    shutil.rmtree(work, ignore_errors=True)
    return TrainedModel.load(out, "ae")


def held_out_check(detectors, films, n_okay=300, n_synthetic=100, seed=0):
    """How detectors treat held-out films of a family: okay patches, synthetic indications, whole films.

    Parameters
    ----------
    detectors : dict
        name -> :class:`weldlab.detector.Detector` (two-sided, with patch input ranges).
    films : list of Radiograph
        Films none of the detectors was fitted or calibrated on, with their defect masks.
    n_okay : int
        Okay patches to cut from them (spread over the films).
    n_synthetic : int
        Patches per synthetic indication type (:data:`weldlab.perturbations.TEST_INDICATIONS`),
        each pasted into one of the okay patches.
    seed : int

    Returns
    -------
    dict
        ``patches``: input kind (``okay``, ``defect`` and the five types) -> detector ->
        :func:`weldlab.review.review_rates` (the fraction each reviewer sends to review);
        ``okay_outside_by_statistic``: detector -> how many okay patches each input
        statistic finds outside its range (``typicality`` for the joint check);
        ``okay_by_film``: detector -> film -> the share of its okay patches sent to review;
        ``films``: detector -> film -> ``verdict`` and the ``input`` statistics outside
        the ranges (:func:`weldlab.review.film_reviews`); ``n_films``.
    """
    from . import perturbations as pert
    from .patches import sample_patches
    from .review import review_rates
    from .screening import check_inputs, image_statistics

    per = math.ceil(n_okay / len(films))
    okay, defect, origin = [], [], []
    for i, r in enumerate(films):
        o, d = sample_patches(r.image, r.mask, per, per // 2, np.random.default_rng([seed, 30, i]))
        okay.append(o["patches"])
        defect.append(d["patches"])
        origin += [r.name] * len(o["patches"])
    okay, origin = np.concatenate(okay)[:n_okay], np.array(origin[:n_okay])
    inputs = {"okay": okay, "defect": np.concatenate(defect)}
    rng = np.random.default_rng([seed, 31])
    for kind in pert.TEST_INDICATIONS:
        inputs[kind] = pert.paste_indications(okay, kind, rng.integers(0, len(okay), n_synthetic),
                                              int(rng.integers(2**31)))[0]
    patches = {name: review_rates(inputs, d, d.record["thresholds"]) for name, d in detectors.items()}
    sent = {name: d.patch_scores(okay)["detector"] > 1 for name, d in detectors.items()}
    by_film = {name: {r.name: float(np.mean(s[origin == r.name])) for r in films if np.any(origin == r.name)}
               for name, s in sent.items()}
    stats = [image_statistics(p) for p in okay]
    outside = {name: Counter(r.statistic for reasons in check_inputs(stats, d.patch_ranges) for r in reasons)
               for name, d in detectors.items() if d.patch_ranges is not None}
    return {"patches": {kind: {name: patches[name][kind] for name in detectors} for kind in inputs},
            "okay_outside_by_statistic": {name: dict(c) for name, c in outside.items()},
            "okay_by_film": by_film,
            "films": held_out_films(detectors, films), "n_films": len(films)}


def held_out_films(detectors, films):
    """Each detector's whole-film verdict on each film, with the input statistics it found outside.

    Returns
    -------
    dict
        detector -> film name -> ``verdict`` and ``input`` (sorted statistic names;
        :func:`weldlab.review.film_reviews`).
    """
    from .review import film_reviews, statistics_outside

    return {name: {film: {"verdict": v["verdict"], "input": sorted(statistics_outside(v["reasons"]))}
                   for film, v in film_reviews({r.name: r.image for r in films}, d).items()}
            for name, d in detectors.items()}


#: Where ``scripts/fit_family.py`` records its runs, under the results folder.
RECORDS = "fit"
#: The rows of :func:`held_out_table`: input kind -> how the table names it.
HELD_OUT_ROWS = {"okay": "okay patches", "defect": "real defect patches", "hollow": "hollow",
                 "dogbone": "dogbone", "elongated": "elongated", "partial_circle": "partial circle",
                 "raster": "raster"}


def read_fit_records(results_root, names):
    """Recorded fits (``<results_root>/fit/<name>.json``), in the order asked.

    Raises
    ------
    FileNotFoundError
        Naming the missing records and the script that makes them.
    """
    paths = [Path(results_root) / RECORDS / f"{name}.json" for name in names]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"no recorded fit: {', '.join(missing)} (scripts/fit_family.py makes them)")
    return [json.loads(p.read_text()) for p in paths]


def films_drawn(record, names):
    """What the simulator drew for films of a recorded fit's family (``scripts/fit_family.py``).

    Each film is simulated again alone (:func:`weldlab.simulate.simulate_radiographs`'s
    ``indices``: the same film as among all), at the record's size and film seed; the other
    scanner does not change what was drawn.

    Parameters
    ----------
    record : dict
        From :func:`read_fit_records` (``seeds``, ``size``).
    names : iterable of str
        Film names ``sim_NNNN`` of that family.

    Returns
    -------
    dict
        name -> the drawn parameters (``crown_exponent``: the bead profile's exponent, below 1
        where the bead meets the plate steeply; ``undercut_mm``: the toe groove's depth; ...).
    """
    from .simulate import simulate_radiographs

    out = {}
    for name in names:
        i = int(name.removeprefix("sim_")) - 1
        drawn = []
        simulate_radiographs(i + 1, record["seeds"]["films"], *record["size"], indices=[i], drawn=drawn)
        out[name] = drawn[0]
    return out


def held_out_table(records):
    """Markdown: what the shipped and each recorded fitted detector send to review on held-out films.

    Parameters
    ----------
    records : list of dict
        From :func:`read_fit_records`: each a fit of ``films`` films, checked on the same
        held-out films (:func:`held_out_check`).

    Returns
    -------
    str
        One row per :data:`HELD_OUT_ROWS`, each the percentage of those patches the
        detector (two-sided rule and input checks) sends to review, and one for whole films,
        how many go to review for their input; a column for the shipped detector (from the
        first record) and one per fit.
    """
    from .figures import markdown_table

    first = records[0]["held_out"]
    header = ["held-out input", "shipped"] + [
        f"fit: {r['films']} films, {r['pairs_trained']:,} pairs, {r['fit_seconds'] / 60:.0f} min" for r in records]
    rows = []
    for kind, label in HELD_OUT_ROWS.items():
        cells = [first["patches"][kind]["shipped"]] + [r["held_out"]["patches"][kind]["fitted"] for r in records]
        rows.append([f"{label} ({cells[0]['n']})"] + [f"{100 * c['detector']:.1f} %" for c in cells])

    def films_sent(check, name):
        verdicts = check["films"][name].values()
        return f"{sum(v['verdict'] == 'review' and bool(v['input']) for v in verdicts)} of {len(verdicts)}"

    rows.append([f"whole films, for their input ({first['n_films']})", films_sent(first, "shipped")]
                + [films_sent(r["held_out"], "fitted") for r in records])
    return markdown_table(header, rows)
