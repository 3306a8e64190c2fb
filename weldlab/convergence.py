"""Records of the autoencoder's convergence experiments, and their table (chapter 4).

``scripts/ae_experiment.py`` trains one recipe for a fixed budget and writes a record
(JSON) per run to the :data:`RECORDS` folder of the results folder
(``Config.results_root``, by default the repository's ``book/results``); :func:`read_records` loads them and
:func:`convergence_table` sets them side by side with the blur baseline's figures, as
chapter 4's ablation table.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import sets
from .perturbations import INDICATION_PSF_SIGMA, TEST_INDICATIONS
from .config import RESULTS_ROOT
from .figures import axes_or_new, markdown_table

#: The results folder's sub-folder of convergence runs (committed with the repository).
RECORDS = "convergence"

#: The synthetic indication types, in the order of the table's columns.
TYPES = TEST_INDICATIONS


#: The reconstruction goal of issue 22 (``book/method.md`` §8), on validation okay patches:
#: the 99.9th percentile of the patch maximum |<r>| at most the blur's, the median at most
#: ``MEDIAN_OVER_BLUR`` times the blur's, no intensity decile biased by more than
#: ``MAX_BIAS``; and at least ``MIN_FLAGGED`` of every synthetic type flagged at 0.1 % FPR.
MEDIAN_OVER_BLUR = 1.2
MAX_BIAS = 0.002
MIN_FLAGGED = 0.95


def goal(record):
    """Which parts of the reconstruction goal a recorded run meets.

    Returns
    -------
    dict of str -> bool
        ``tail``, ``median``, ``bias``, ``indications`` and ``all``.

    Examples
    --------
    >>> from weldlab.convergence import goal
    >>> blur = {"max_mean": {"median": 0.0067, "tail": 0.021}, "max_abs_bias": 0.0003}
    >>> ae = {"max_mean": {"median": 0.0075, "tail": 0.020}, "max_abs_bias": 0.001}
    >>> found = {t: {"flagged": 0.97} for t in TYPES}
    >>> goal({"quality": {"autoencoder": ae, "blur": blur}, "indications": {"autoencoder": found}})["all"]
    True
    """
    ae, blur = record["quality"]["autoencoder"], record["quality"]["blur"]
    out = {"tail": ae["max_mean"]["tail"] <= blur["max_mean"]["tail"],
           "median": ae["max_mean"]["median"] <= MEDIAN_OVER_BLUR * blur["max_mean"]["median"],
           "bias": ae["max_abs_bias"] <= MAX_BIAS,
           "indications": all(record["indications"]["autoencoder"][t]["flagged"] >= MIN_FLAGGED for t in TYPES)}
    out["all"] = all(out.values())
    return out


def read_records(results_root=RESULTS_ROOT, names=None, data="gdxray"):
    """The recorded runs, oldest first.

    Parameters
    ----------
    results_root : path
        The results folder (``Config.results_root``); the runs are in its :data:`RECORDS`.
    names : sequence of str, optional
        Only these runs (record file stems), in this order, whatever their data. Without:
        every run on ``data`` judged the table's way (its own dataset seed, the literal
        amplitude reading); the others (``<run>.judge7``, ``<run>.after``) only by name.
    data : {"gdxray", "synthetic"}
        Without ``names``: the runs trained on this data source (chapter 4's table holds
        the GDXray runs).

    Returns
    -------
    list of dict
    """
    folder = Path(results_root) / RECORDS
    if names is not None:
        paths = [folder / f"{n}.json" for n in names]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"no such convergence record: {', '.join(missing)}")
        return [json.loads(p.read_text()) for p in paths]
    # a dotted stem is a run judged otherwise (name.judge7, name.after): read it by name
    records = [json.loads(p.read_text()) for p in folder.glob("*.json") if "." not in p.stem]
    return sorted((r for r in records if r["record"]["data"] == data), key=lambda r: r.get("created", ""))


def describe(variant):
    """A run's recipe in a few words (what differs from the plain recipe).

    Examples
    --------
    >>> from weldlab.convergence import describe
    >>> describe({"set": "sni", "scaling": "patch_mean", "okay_weight": 1.0, "clean_fraction": 0.0,
    ...           "batch_size": 16, "learning_rate": 0.001, "schedule": "cosine", "dropout_epochs": 0})
    'sni, patch mean, cosine'
    """
    parts = [variant["set"]]
    if variant.get("start_from"):
        parts.append(f"from {Path(variant['start_from']).name}")
    if variant.get("scaling", "none") != "none":
        units = variant.get("loss_units", "scaled")
        name = {"patch_mean_spread": "patch mean, divided by the spread (0.114)"}.get(
            variant["scaling"], variant["scaling"].replace("_", " "))
        parts.append(name + (" (residuals in image units)" if units == "image" else ""))
    if variant.get("okay_weight", 1.0) != 1.0:
        parts.append(f"okay x{variant['okay_weight']:g}")
    if variant.get("code_weight", 1.0) != 1.0:
        parts.append(f"L_reg x{variant['code_weight']:g}")
    if variant.get("clean_fraction", 0.0):
        parts.append(f"okay-only first {100 * variant['clean_fraction']:.0f} %")
    if variant.get("crop"):
        parts.append(f"{variant['crop']} px crops")
    if variant.get("batch_size", 16) != 16:
        parts.append(f"batch {variant['batch_size']}")
    if variant.get("learning_rate", 1e-3) != 1e-3:
        parts.append(f"lr {variant['learning_rate']:g}")
    parts.append(variant.get("schedule", "cosine"))
    if variant.get("dropout_epochs"):
        parts.append(f"dropout {variant['dropout_epochs']} epochs")
    return ", ".join(parts)


def convergence_table(records):
    """The runs as one wide Markdown table, each beside the blur on the same patches.

    Columns: the recipe, the pairs trained and their rate, the median / 99th / 99.9th
    percentile of the okay patches' maximum ``|<r>|`` (AE, then the blur in brackets), the
    residual RMS in flat areas and at edges, the largest mean residual of an intensity
    decile, and for each synthetic type the fraction flagged at 0.1 % FPR (AUROC in
    brackets). For a terminal; the book shows :func:`residual_table` and
    :func:`indication_table`, which fit its page.

    Returns
    -------
    str
    """
    head = ["run", "recipe", "pairs", "pairs/s", "max abs mean r: median", "p99", "p99.9", "RMS flat", "RMS edge",
            "max abs bias", *TYPES]
    rows = []
    for r in records:
        ae, blur = r["quality"]["autoencoder"], r["quality"]["blur"]
        cells = [r["name"], describe(r["variant"]), f"{r['pairs_trained']:,}", f"{r['pairs_per_second']:.1f}"]
        for key in ("median", "p99", "tail"):
            cells.append(f"{ae['max_mean'][key]:.4f} ({blur['max_mean'][key]:.4f})")
        cells += [f"{ae['rms_flat']:.4f} ({blur['rms_flat']:.4f})", f"{ae['rms_edge']:.4f} ({blur['rms_edge']:.4f})",
                  f"{ae['max_abs_bias']:.4f} ({blur['max_abs_bias']:.4f})"]
        rows.append(cells + _flagged(r["indications"]["autoencoder"]))
    return markdown_table(head, rows, align="l" * len(head))


def _type_names():
    return [t.replace("_", " ") for t in TYPES]


def _flagged(found):
    return [f"{100 * found[t]['flagged']:.0f} % ({found[t]['auroc']:.2f})" for t in TYPES]


#: How the tables' runs are judged where a record predates these entries.
JUDGED_AS_THE_TABLES = {"amplitude_reading": "before", "indication_sigma": INDICATION_PSF_SIGMA}


def _same_blur(records):
    """The blur's figures, once: every run must have been judged on the same patches."""
    keys = {json.dumps(JUDGED_AS_THE_TABLES | r["judged_on"], sort_keys=True) for r in records}
    if len(keys) != 1:
        raise ValueError(f"the runs were judged on different patches ({len(keys)} sets); tabulate them apart")
    return records[0]["quality"]["blur"], records[0]["indications"]["blur"]


def residual_table(records):
    """The okay-residual figures of each run, with the blur as the first row (the book's table).

    Columns: pairs trained and pairs per second, the median / 99th / 99.9th percentile of the
    okay patches' maximum ``|<r>|``, the residual RMS in flat areas and at edges, and the
    largest mean residual of an intensity decile.

    Returns
    -------
    str
    """
    blur, _ = _same_blur(records)

    def row(name, q, pairs="", rate=""):
        m = q["max_mean"]
        return [name, pairs, rate, *(f"{v:.4f}" for v in (m["median"], m["p99"], m["tail"], q["rms_flat"],
                                                           q["rms_edge"], q["max_abs_bias"]))]

    rows = [row("*blur*", blur)]
    rows += [row(r["name"], r["quality"]["autoencoder"], f"{r['pairs_trained']:,}", f"{r['pairs_per_second']:.1f}")
             for r in records]
    return markdown_table(["run", "pairs", "pairs/s", "median", "99th pct", "99.9th pct", "RMS flat", "RMS edge",
                           "worst decile bias"], rows)


def indication_table(records):
    """Each run's share of every synthetic type flagged at 0.1 % FPR (AUROC in brackets).

    The blur is the first row.

    Returns
    -------
    str
    """
    _, blur = _same_blur(records)
    rows = [["*blur*", *_flagged(blur)]] + [[r["name"], *_flagged(r["indications"]["autoencoder"])] for r in records]
    return markdown_table(["run", *_type_names()], rows)


def removal_table(records):
    """How much of the SNI each run removes, and the ceiling of complete removal.

    Columns: the run, ``L_kern,per`` (:func:`weldlab.evaluate.perturbation_removal`) with
    no removal at all (the input as its own reconstruction), with the blur, with the
    autoencoder, the share of the no-removal figure the autoencoder removes, and its
    ``L_kern,ok`` on the okay patches alone (what complete removal would leave). Runs
    recorded before the measure existed are left out.

    Returns
    -------
    str
    """
    rows = [[r["name"], *(f"{r['sni_removal'][k]:.2e}" for k in ("identity", "blur", "autoencoder")),
             f"{100 * removed_share(r):.0f} %", f"{r['sni_removal']['okay']:.2e}"]
            for r in records if r.get("sni_removal")]
    return markdown_table(["run", "no removal", "blur", "autoencoder", "removed", "okay patches alone"], rows)


def removed_share(record, who="autoencoder"):
    """The share of the SNI's ``L_kern,per`` (with no removal) that a reconstruction removes.

    ``who``: the run's ``"autoencoder"``, or the ``"blur"`` on the same pairs.
    """
    m = record["sni_removal"]
    return 1.0 - m[who] / m["identity"]


def ceiling_table(records):
    """Each synthetic type flagged by the blur-level okay residual plus complete removal.

    The ceiling (:func:`weldlab.evaluate.complete_removal_residuals`): what a detector with
    the blur's okay residuals would flag if its reconstruction removed every indication;
    then the blur itself and every run whose record carries the ceiling (all judged on the
    same patches).

    Returns
    -------
    str
    """
    with_ceiling = [r for r in records if "complete_removal" in r["indications"]]
    _same_blur(with_ceiling)
    first = with_ceiling[0]["indications"]
    rows = [["blur, removing every indication completely", *_flagged(first["complete_removal"])],
            ["*blur*", *_flagged(first["blur"])]]
    rows += [[r["name"], *_flagged(r["indications"]["autoencoder"])] for r in with_ceiling]
    return markdown_table(["reconstruction", *_type_names()], rows)


def ideal_reconstruction_path(results_root, preset, digitisation="book"):
    """Where ``scripts/ideal_reconstruction.py`` records what a perfect reconstruction catches.

    ``digitisation`` is ``"book"`` (the simulator's films) or ``"other"`` (the same films read
    by another scanner, :func:`weldlab.simulate.another_digitisation`).
    """
    suffix = "" if digitisation == "book" else f"_{digitisation}"
    return Path(results_root) / f"ideal_reconstruction_synthetic_{preset}{suffix}.json"


def read_ideal_reconstruction(results_root=RESULTS_ROOT, preset="standard", digitisation="book"):
    """The record ``scripts/ideal_reconstruction.py`` wrote (simulated films only).

    Returns
    -------
    dict
        Its ``types`` map ``"<type> (<reading>)"`` to the share of 200 patches flagged by each
        reconstruction (``ideal``, ``ae_complete_removal``, ``ae``, ``blur``) and the median
        peak of the pasted indication (``peak_median``).
    """
    path = ideal_reconstruction_path(results_root, preset, digitisation)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no record of the perfect reconstruction; `python "
                                f"scripts/ideal_reconstruction.py --preset {preset} --digitisation {digitisation}` "
                                "makes it")
    return json.loads(path.read_text())


#: The reconstructions of :func:`read_ideal_reconstruction`'s record and their column names: the
#: perfect one, the shipped AE with perfect removal, the AE as it is, the classical baseline.
IDEAL_COLUMNS = {"ideal": "perfect reconstruction",
                 "ae_complete_removal": "AE's okay fit, indication removed whole",
                 "ae": "AE as shipped", "blur": "blur"}


def ideal_reconstruction_rows(record, reading="before"):
    """Per synthetic type, the share each reconstruction flags, at one amplitude reading.

    Returns
    -------
    dict of str -> dict
        type -> the record's row (``peak_median`` and one share per :data:`IDEAL_COLUMNS`).

    Examples
    --------
    >>> from weldlab.convergence import TYPES, ideal_reconstruction_rows
    >>> row = {"peak_median": 0.05, "ideal": 1.0, "ae_complete_removal": 0.9, "ae": 0.0, "blur": 0.0}
    >>> rec = {"types": {f"{t} ({r})": row for t in TYPES for r in ("before", "after")}}
    >>> ideal_reconstruction_rows(rec)["hollow"]["ae_complete_removal"]
    0.9
    """
    missing = [t for t in TYPES if f"{t} ({reading})" not in record["types"]]
    if missing:
        raise KeyError(f"the perfect-reconstruction record has no row for {', '.join(missing)} ({reading})")
    return {t: record["types"][f"{t} ({reading})"] for t in TYPES}


def ideal_reconstruction_table(record, reading="before", columns=None):
    """Markdown: per synthetic type, the share flagged by a perfect reconstruction and the AE.

    Parameters
    ----------
    record : dict
        :func:`read_ideal_reconstruction`'s.
    reading : {"before", "after"}
    columns : dict, optional
        Which of :data:`IDEAL_COLUMNS` to show, and their names (default all, as named there).

    Returns
    -------
    str
    """
    columns = IDEAL_COLUMNS if columns is None else columns
    rows = ideal_reconstruction_rows(record, reading)
    body = [[t.replace("_", " "), f"{rows[t]['peak_median']:.3f}",
             *(f"{100 * rows[t][c]:.1f}" for c in columns)] for t in TYPES]
    return markdown_table(["type", "median peak in the patch", *(f"{v} (%)" for v in columns.values())], body)


def recipes(records):
    """Each run's recipe as a Markdown list (the key to the tables' run names)."""
    return "\n".join(f"- **{r['name']}**: {describe(r['variant'])}, {r['pairs_trained']:,} pairs" for r in records)


#: The results folder's records of the training step's speed levers (``scripts/bench_step.py``),
#: one per kind of CPU: without native bfloat16 arithmetic (AVX2), then with it (AVX512-BF16).
STEP_SPEEDS = ("step_speed.json", "step_speed_bf16.json")


def speed_by_setting(record):
    """A speed record's pairs per second by ``(backend, jit, onednn, precision)``.

    Settings that failed (a backend that was not installed) are left out.
    """
    return {(r.get("backend", "tensorflow"), r["jit"], r["onednn"], r["precision"]): r["pairs_per_second"]
            for r in record["rows"] if "error" not in r}


def speed_table(record):
    """The measured speed levers of the AE training step as a Markdown table.

    Parameters
    ----------
    record : dict
        One of :func:`read_speeds`.

    Returns
    -------
    str
        One row per setting: the Keras backend, XLA, oneDNN (TensorFlow's only), precision,
        seconds per step of 16 pairs and pairs per second ("not measured" where the
        setting failed, e.g. a backend that is not installed).
    """
    rows = []
    for r in record["rows"]:
        backend = r.get("backend", "tensorflow")
        if "error" in r:
            rows.append([backend, r["jit"], "", r["precision"], "not measured", ""])
            continue
        xla = {"auto": f"auto ({'on' if r['jit_resolved'] else 'off'})", "on": "on", "off": "off"}[r["jit"]]
        onednn = ("on" if r["onednn"] == "1" else "off") if backend == "tensorflow" else "n/a"
        rows.append([backend, xla, onednn, r["precision"], f"{r['seconds_per_step']:.2f}",
                     f"{r['pairs_per_second']:.1f}"])
    return markdown_table(["Keras backend", "XLA (jit_compile)", "oneDNN kernels", "precision", "s per step",
                           "pairs/s"], rows, align="llllrr")


def plot_learning_curves(records, ax=None):
    """Validation okay loss (``L_ok``) against training pairs, one line per run.

    Parameters
    ----------
    records : list of dict
        From :func:`read_records`.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = axes_or_new(ax, (8, 4))
    for i, r in enumerate(records):
        per_epoch = r["variant"]["steps_per_epoch"] * r["variant"]["batch_size"]
        h = r["history"]
        line = "-o" if i < 10 else "--s"  # the colour cycle has ten colours
        ax.plot([e["epoch"] * per_epoch for e in h], [e["val_ok_loss"] for e in h], line, ms=3,
                label=r["name"])  # the recipes are listed by name beside the tables (:func:`recipes`)
    ax.set_xscale("log")  # 3,200-pair runs beside 36,000-pair ones
    ax.set_yscale("log")
    ax.set_xlabel("training pairs")
    ax.set_ylabel("validation L_ok (mean squared residual)")
    ax.legend(fontsize=11, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the lines, not on them
    return ax


#: The results folder's record of ``scripts/removal_by_size.py``.
REMOVAL_BY_SIZE = "removal_by_size.json"


def read_removal_by_size(results_root=RESULTS_ROOT):
    """How much of a smooth bump each model leaves in its residual, by the bump's size.

    Returns
    -------
    dict
        ``rows`` (one per PSF ``sigma`` and disc ``diameter``: the share of the bump's peak
        left in the residual under each model's column and ``blur``), ``models`` (the model
        folders, whose last part names the columns), ``receptive_field`` (px) and the
        provenance.
    """
    return json.loads((Path(results_root) / REMOVAL_BY_SIZE).read_text())


def removal_label(record, column):
    """A column of :func:`read_removal_by_size` by its run's name ("shipped" for the shipped model)."""
    for folder in record["models"]:
        if Path(folder).name == column:
            return "shipped" if Path(folder).parts[:2] == ("weldlab", "pretrained") else column
    return column


def scale_transfer_path(results_root, data, preset):
    """Where :func:`record_scale_transfer` records the shipped autoencoders' scale transfer."""
    return Path(results_root) / f"scale_transfer_{data}_{preset}.json"


def record_scale_transfer(cfg, datasets, n=500, log=print):
    """Measure and record how much okay structure, by spatial period, every shipped AE keeps.

    For each autoencoder shipped for ``datasets`` (:func:`weldlab.trained.shipped_configurations`
    with their dataset key), the reconstructions of the first ``n`` validation okay patches
    are compared with the patches in the Fourier domain
    (:func:`weldlab.evaluate.scale_transfer`), beside the blur baseline's. The record goes to
    :func:`scale_transfer_path` under ``cfg.results_root``, which chapter 7 reads (and asserts
    covers every shipped AE): ``scripts/ship_models.py`` calls this after shipping an AE, and
    ``scripts/scale_transfer.py`` on its own.

    Parameters
    ----------
    cfg : weldlab.config.Config
    datasets : weldlab.datasets.PatchDatasets
        The datasets ``cfg`` builds (their ``val_okay``, shape (m, 192, 192)).
    n : int
        Validation okay patches (the first ``n``).
    log : callable
        Called with a line per model.

    Returns
    -------
    record : dict
        As :func:`read_scale_transfer` returns it (periods in the order
        :func:`weldlab.evaluate.scale_transfer` gives them).
    path : pathlib.Path
        Where it was written.
    """
    import time

    from .evaluate import background_residuals, reconstruction_residuals, scale_transfer
    from .patches import crop
    from .provenance import provenance, write_json
    from .trained import TrainedModel, shipped_configurations, shipped_for

    t0 = time.perf_counter()
    key = datasets.manifest["dataset_key"]
    x = datasets["val_okay"][:n]
    models = []
    for training_set, seed in shipped_configurations("ae", cfg.data, key):
        shipped = TrainedModel.load(shipped_for("ae", training_set, seed, cfg.data, key), "ae")
        transfer = scale_transfer(x, crop(x) - reconstruction_residuals(shipped.model, x))
        models.append({"training_set": training_set, "seed": seed, "transfer": transfer,
                       "rms_over_noise": shipped.record["convergence"]["rms_over_noise"]})
        log(f"scale transfer of AE {training_set} seed {seed}: "
            + ", ".join(f"{k} {v:.3f}" for k, v in transfer.items()))
    record = {"preset": cfg.preset, "data": cfg.data, "dataset_key": key, "n_val_okay": len(x),
              "blur": scale_transfer(x, crop(x) - background_residuals(x)), "models": models,
              "seconds": round(time.perf_counter() - t0, 1), **provenance()}
    path = scale_transfer_path(cfg.results_root, cfg.data, cfg.preset)
    write_json(path, record)
    return record, path


def read_scale_transfer(results_root=RESULTS_ROOT, data="gdxray", preset="standard"):
    """The recorded share of okay patches' structure, by spatial period, each shipped AE keeps.

    Returns
    -------
    dict
        ``models`` (each with ``training_set``, ``seed``, ``transfer``: period range ->
        share, :func:`weldlab.evaluate.scale_transfer`, and ``rms_over_noise`` from its
        training record's convergence entry), ``blur`` (the baseline's
        transfer), ``n_val_okay``, ``dataset_key`` and the provenance.
    """
    record = json.loads(scale_transfer_path(results_root, data, preset).read_text())

    def by_period(transfer):  # the JSON's keys are sorted as text: "16-32 px" before "2-4 px"
        return dict(sorted(transfer.items(), key=lambda kv: float(kv[0].split("-")[0])))

    record["blur"] = by_period(record["blur"])
    for m in record["models"]:
        m["transfer"] = by_period(m["transfer"])
    return record


#: The population of new simulated films :func:`record_new_films` draws from, and the okay
#: patches it takes from each.
NEW_FILMS, PATCHES_PER_NEW_FILM = 150, 40


def new_films_path(results_root, preset):
    """Where :func:`record_new_films` records how the simulated-film calibration carries over."""
    return Path(results_root) / f"new_films_synthetic_{preset}.json"


def record_new_films(cfg, datasets, n_films=NEW_FILMS, per_film=PATCHES_PER_NEW_FILM, training_set=None, seed=0,
                     log=print):
    """Measure and record, film by film, the okay patches a shipped AE's thresholds flag.

    The shipped simulated-film autoencoder (by default the chapters' configuration) and
    the blur baseline, each at thresholds calibrated on the validation okay patches, are
    applied to the okay patches of the validation (calibration) films, of the test films
    and of ``n_films`` new films that no dataset holds (:func:`weldlab.datasets.new_films`):
    whether the false positive rate a calibration realises on the test films is what it
    realises on films in general. What the simulator drew for each film is recorded with
    it, to see which films are flagged and which kinds of film the calibration films hold:
    ``new_films_drawn`` (one per new film) and ``films_drawn`` (``"validation"`` and
    ``"test"``, one per row of those splits). Chapter 5 shows the record
    (:func:`read_new_films`, :func:`new_films_summary`); ``scripts/new_films.py`` makes it.

    Parameters
    ----------
    cfg : weldlab.config.Config
        On simulated data.
    datasets : weldlab.datasets.PatchDatasets
        The datasets ``cfg`` builds; a model is shipped for them.
    n_films, per_film : int
    training_set : str, optional
        Which shipped AE (default :data:`weldlab.sets.SHIPPED` ``["ae"]``).
    seed : int
    log : callable

    Returns
    -------
    record : dict
    path : pathlib.Path

    Raises
    ------
    FileNotFoundError
        If no such AE is shipped for ``datasets``.
    ValueError
        If the datasets' manifest lacks what the simulator drew for each film (datasets
        built before it kept ``radiograph_params``).
    """
    import time

    import numpy as np

    from .datasets import new_films
    from .evaluate import film_false_positives, residual_maxima
    from .provenance import provenance, write_json
    from .thresholds import ResidualThresholds, from_record
    from .trained import TrainedModel, shipped_for

    t0 = time.perf_counter()
    key = datasets.manifest["dataset_key"]
    training_set = sets.SHIPPED["ae"] if training_set is None else training_set
    folder = shipped_for("ae", training_set, seed, cfg.data, key)
    if folder is None:
        raise FileNotFoundError(f"no AE {training_set} seed {seed} is shipped for the {cfg.data} datasets {key} "
                                f"(preset {cfg.preset})")
    film_params = datasets.manifest.get("radiograph_params")  # written when the datasets were built
    if not film_params:
        raise ValueError(f"{datasets.path}: the manifest does not say what the simulator drew for each film "
                         "(datasets built before it did); build them again (weldlab datasets --rebuild)")
    shipped = TrainedModel.load(folder, "ae")
    drawn = []
    _, new = new_films(cfg, n_films, per_film, drawn=drawn)
    log(f"{n_films} new films simulated ({time.perf_counter() - t0:.0f} s)")

    def by_film(name):
        films = np.asarray(datasets[f"{name}_origin"])[:, 0].astype(int)
        x = datasets[name]
        return [x[np.flatnonzero(films == f)] for f in np.unique(films)], np.unique(films)

    (val, val_films), (test, test_films) = by_film("val_okay"), by_film("test_okay")
    splits = {"validation": val, "test": test, "new": [p["patches"] for p in new]}
    films_drawn = {"validation": [film_params["train"][f] for f in val_films],
                   "test": [film_params["test"][f] for f in test_films]}
    blur = ResidualThresholds.calibrate(*residual_maxima(None, datasets["val_okay"]), cfg.fpr)
    detectors = {}
    for name, model, thresholds in (("autoencoder", shipped.model, from_record(shipped.record)),
                                    ("blur", None, blur)):
        detectors[name] = {"thresholds": {"t_mean": thresholds.t_mean, "t_std": thresholds.t_std},
                           **{split: film_false_positives(model, thresholds, films) for split, films in splits.items()}}
        rows = detectors[name]["new"]
        log(f"{name}: {sum(r['flagged'] for r in rows)} of {sum(r['n'] for r in rows)} new okay patches flagged")
    record = {"preset": cfg.preset, "data": cfg.data, "dataset_key": key, "fpr": cfg.fpr,
              "model": {"training_set": training_set, "seed": seed},
              "n_films": n_films, "per_film": per_film, "new_films_drawn": drawn, "films_drawn": films_drawn,
              "detectors": detectors,
              "seconds": round(time.perf_counter() - t0, 1), **provenance()}
    path = new_films_path(cfg.results_root, cfg.preset)
    write_json(path, record, indent=None)  # 40,000 patch maxima
    return record, path


def read_new_films(results_root=RESULTS_ROOT, preset="standard"):
    """The record :func:`record_new_films` wrote (``scripts/new_films.py`` makes it)."""
    path = new_films_path(results_root, preset)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no record of the calibration on new films; "
                                f"`python scripts/new_films.py --preset {preset}` makes it")
    return json.loads(path.read_text())


def new_films_summary(rows, test_films, draws=20000, seed=0):
    """Rates of one detector on one split of :func:`record_new_films`' record.

    Parameters
    ----------
    rows : list of dict
        One per film (:func:`weldlab.evaluate.film_false_positives`).
    test_films : int
        Size of the test sets to draw from these films (without replacement).
    draws : int
    seed : int

    Returns
    -------
    dict
        ``fpr`` (all patches), ``films``, ``films_flagged`` (films with any flagged patch),
        ``worst_film`` (its share flagged), ``by_mean`` (share of the flagged patches that
        the mean test flags), ``brighter`` (share of those whose worst window's residual is
        negative: the reconstruction brighter than the film), ``gray`` (median gray level
        there), and ``draws``: the FPR of ``draws`` test sets of ``test_films`` of these
        films, as quantiles ``{"50": ..., "90": ...}`` and ``above_half_percent`` (the
        share of them above 0.5 %).

    Examples
    --------
    >>> from weldlab.convergence import new_films_summary
    >>> rows = [{"n": 40, "flagged": 0, "by_mean": 0, "by_std": 0, "worst": []}] * 9
    >>> rows = rows + [{"n": 40, "flagged": 4, "by_mean": 2, "by_std": 3, "worst": [[-0.03, 0.2], [0.02, 0.3]]}]
    >>> s = new_films_summary(rows, test_films=5)
    >>> s["fpr"], s["films_flagged"], s["worst_film"], s["brighter"]
    (0.01, 1, 0.1, 0.5)
    >>> round(s["draws"]["above_half_percent"], 1)  # the one film with flags is in half the draws of 5 of 10
    0.5
    """
    import numpy as np

    n = np.array([r["n"] for r in rows])
    flagged = np.array([r["flagged"] for r in rows])
    worst = np.array([w for r in rows for w in r["worst"]]).reshape(-1, 2)
    per_film = flagged / np.maximum(n, 1)
    rng = np.random.default_rng(seed)
    picks = rng.permuted(np.tile(np.arange(len(rows)), (draws, 1)), axis=1)[:, :test_films]
    drawn = flagged[picks].sum(1) / n[picks].sum(1)
    return {"fpr": float(flagged.sum() / n.sum()), "films": len(rows), "films_flagged": int(np.count_nonzero(flagged)),
            "worst_film": float(per_film.max()),
            "by_mean": float(sum(r["by_mean"] for r in rows) / max(flagged.sum(), 1)),
            "brighter": float(np.mean(worst[:, 0] < 0)) if len(worst) else float("nan"),
            "gray": float(np.median(worst[:, 1])) if len(worst) else float("nan"),
            "draws": {**{q: float(np.quantile(drawn, int(q) / 100)) for q in ("50", "90")},
                      "above_half_percent": float(np.mean(drawn > 0.005))}}


def calibration_films_needed(rows, n_calibration, max_patches=2000, fpr=0.001, draws=200, seed=0):
    """The okay FPR on held-out films of thresholds calibrated on ``n`` films, for each ``n``.

    Each draw calibrates the OR rule (:meth:`weldlab.thresholds.ResidualThresholds.calibrate`)
    on the patches of ``n`` films drawn at random (at most ``max_patches`` of them, as a
    preset's validation split) and counts the okay patches it flags on all the other films.

    Parameters
    ----------
    rows : list of dict
        One per film, with ``max_mean`` and ``max_std`` (:func:`weldlab.evaluate.film_false_positives`).
    n_calibration : sequence of int
        Numbers of calibration films, each less than ``len(rows)``.
    max_patches : int
    fpr : float
    draws : int
    seed : int

    Returns
    -------
    dict
        ``n`` -> ``{"mean", "median", "p90"}``: the held-out films' FPR over the draws.

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.convergence import calibration_films_needed
    >>> rng = np.random.default_rng(0)
    >>> rows = [{"max_mean": list(rng.normal(1 + 0.2 * (i % 7 == 0), 0.05, 40)), "max_std": [0.1] * 40}
    ...         for i in range(60)]
    >>> out = calibration_films_needed(rows, [10, 40], draws=50)
    >>> out[40]["mean"] < out[10]["mean"]  # more calibration films, fewer surprises
    True
    """
    import warnings

    import numpy as np

    from .thresholds import CalibrationWarning, ResidualThresholds

    mm = np.concatenate([r["max_mean"] for r in rows])
    ms = np.concatenate([r["max_std"] for r in rows])
    film = np.repeat(np.arange(len(rows)), [len(r["max_mean"]) for r in rows])
    rng = np.random.default_rng(seed)
    out = {}
    for n in n_calibration:
        if not 0 < int(n) < len(rows):
            raise ValueError(f"n_calibration: expected between 1 and {len(rows) - 1} films, got {n!r}")
        rates = []
        for _ in range(draws):
            held = np.isin(film, rng.choice(len(rows), int(n), replace=False))
            idx = np.flatnonzero(held)
            idx = rng.choice(idx, min(int(max_patches), idx.size), replace=False)
            with warnings.catch_warnings():  # too few patches: flag none of them, as the chapters do
                warnings.simplefilter("ignore", CalibrationWarning)
                th = ResidualThresholds.calibrate(mm[idx], ms[idx], fpr)
            rates.append(np.mean(th.score(mm[~held], ms[~held]) > th.cut))
        rates = np.array(rates)
        out[int(n)] = {"mean": float(rates.mean()), "median": float(np.median(rates)),
                       "p90": float(np.quantile(rates, 0.9))}
    return out


def _steep_and_deep(drawn, undercut_mm):
    return [d["crown_exponent"] < 1 and d["undercut_mm"] > undercut_mm for d in drawn]


def bead_edge_films(record, detector="autoencoder"):
    """How many films of each split have a steep bead edge with a deep toe groove.

    A film is *steep and deep* when the simulator drew its bead profile's exponent below 1
    (the bead meets the plate steeply) and its undercut (the groove at the toe of the
    bead) deeper than the new films' median. The okay patches the detector flags on new
    films sit mostly on such films; this says whether the calibration films hold their
    share of them.

    Parameters
    ----------
    record : dict
        From :func:`read_new_films` (with ``films_drawn``).
    detector : str
        ``"autoencoder"`` or ``"blur"``.

    Returns
    -------
    dict
        ``undercut_mm`` (the new films' median), ``films``: split -> ``(k, n)`` (steep and
        deep films, films), ``flagged``: the share of new films with any flagged okay patch
        among the steep and deep ones and among the others (``"steep_deep"``,
        ``"others"``), ``patches``: the share of the new films' flagged patches that lie on
        steep and deep films, and ``chance``: the probability that as many films as the
        validation ones, drawn at random from a population with the new films' share of
        them, hold no more of them than the validation films do.

    Examples
    --------
    >>> from weldlab.convergence import bead_edge_films
    >>> film = lambda e, u: {"crown_exponent": e, "undercut_mm": u}
    >>> new = [film(0.9, 0.2), film(1.2, 0.2), film(0.9, 0.05), film(1.1, 0.05)] * 5
    >>> rows = [{"n": 10, "flagged": 3 if i % 4 == 0 else 0} for i in range(20)]
    >>> rec = {"new_films_drawn": new, "films_drawn": {"validation": [film(1.2, 0.1)] * 8, "test": new[:4]},
    ...        "detectors": {"autoencoder": {"new": rows}}}
    >>> out = bead_edge_films(rec)
    >>> out["films"]["new"], out["films"]["validation"], out["flagged"]["steep_deep"], out["patches"]
    ((5, 20), (0, 8), 1.0, 1.0)
    >>> round(out["chance"], 3)  # 8 films with none of a quarter's kind: 0.75 ** 8
    0.1
    """
    import numpy as np
    from scipy.stats import binom

    new = record["new_films_drawn"]
    undercut = float(np.median([d["undercut_mm"] for d in new]))
    kinds = {"validation": record["films_drawn"]["validation"], "test": record["films_drawn"]["test"], "new": new}
    films = {split: (int(sum(_steep_and_deep(d, undercut))), len(d)) for split, d in kinds.items()}
    sd = np.array(_steep_and_deep(new, undercut))
    flagged = np.array([r["flagged"] for r in record["detectors"][detector]["new"]])
    k, n = films["validation"]
    return {"undercut_mm": undercut, "films": films,
            "flagged": {"steep_deep": float(np.mean(flagged[sd] > 0)) if sd.any() else float("nan"),
                        "others": float(np.mean(flagged[~sd] > 0)) if (~sd).any() else float("nan")},
            "patches": float(flagged[sd].sum() / max(flagged.sum(), 1)),
            "chance": float(binom.cdf(k, n, sd.mean()))}


def plot_bead_edge_films(record, detector="autoencoder", ax=None):
    """Each film's bead profile exponent against its undercut, by split.

    New films are circles, filled and sized by the share of their okay patches the detector
    flags (open: none); the validation (calibration) and test films are marked on top. Dashed
    lines bound the steep and deep corner of :func:`bead_edge_films`.

    Parameters
    ----------
    record : dict
        From :func:`read_new_films`.
    detector : str
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    import numpy as np

    from .figures import COLOURS

    ax = axes_or_new(ax, (8, 4.6))
    new = record["new_films_drawn"]
    rows = record["detectors"][detector]["new"]
    share = np.array([r["flagged"] / max(r["n"], 1) for r in rows])

    def xy(films):
        return np.array([d["crown_exponent"] for d in films]), np.array([d["undercut_mm"] for d in films])

    x, y = xy(new)
    hit = share > 0
    ax.scatter(x[~hit], y[~hit], s=28, facecolors="none", edgecolors="0.55", lw=1,
               label="new film, no okay patch flagged")
    ax.scatter(x[hit], y[hit], s=30 + 400 * share[hit], color=COLOURS["defect"], alpha=0.75, edgecolors="k", lw=0.5,
               label="new film with flagged okay patches\n(area: share flagged)")
    for split, marker, colour, label in (("validation", "^", COLOURS["okay"], "calibration (training) film"),
                                         ("test", "s", COLOURS["std"], "test film")):
        ax.scatter(*xy(record["films_drawn"][split]), marker=marker, s=40, color=colour, edgecolors="k", lw=0.5,
                   label=label, zorder=3)
    undercut = bead_edge_films(record, detector)["undercut_mm"]
    ax.axvline(1, color="0.3", ls="--", lw=1)
    ax.axhline(undercut, color="0.3", ls="--", lw=1)
    ax.text(ax.get_xlim()[0], ax.get_ylim()[1], " steep and deep", va="top", fontsize=11)
    ax.set_xlabel("bead profile exponent (below 1: the bead meets the plate steeply)")
    ax.set_ylabel("undercut (mm)")
    ax.legend(fontsize=11, loc="upper left", bbox_to_anchor=(1.01, 1))
    return ax


def scale_transfer_table(record):
    """One row per shipped autoencoder (and the blur), one column per range of period.

    Each cell is the share of the okay patches' structure at those periods that the
    model keeps; the last column is the model's residual RMS over the film noise.

    Examples
    --------
    >>> from weldlab.convergence import scale_transfer_table
    >>> t = {"2-8 px": -0.001, "8-78 px": 0.6}
    >>> m = {"training_set": "sni", "seed": 0, "transfer": t, "rms_over_noise": 1.19}
    >>> print(scale_transfer_table({"blur": {"2-8 px": 0.0, "8-78 px": 0.7}, "models": [m]}))
    | model | 2-8 px | 8-78 px | residual RMS / film noise |
    | --- | ---: | ---: | ---: |
    | blur (sigma 4 px) | 0.00 | 0.70 | – |
    | AE sni, seed 0 | 0.00 | 0.60 | 1.19 |
    """
    scales = list(record["blur"])

    def share(v):  # a share that rounds to zero is shown as 0.00, whatever its sign
        return f"{v if abs(v) >= 0.005 else 0.0:.2f}"

    rows = [["blur (sigma 4 px)"] + [share(record["blur"][s]) for s in scales] + ["–"]]
    rows += [[f"AE {m['training_set']}, seed {m['seed']}"] + [share(m["transfer"][s]) for s in scales]
             + [f"{m['rms_over_noise']:.2f}"] for m in record["models"]]
    return markdown_table(["model"] + scales + ["residual RMS / film noise"], rows)


def scale_kept(record, scale, perturbed):
    """The (min, max) share of the period range ``scale`` the recorded autoencoders keep.

    Those trained with perturbations (``perturbed=True``) or without (None and
    okay+defects); None if the record holds none of them.
    """
    shares = [m["transfer"][scale] for m in record["models"]
              if sets.parse("ae", m["training_set"]).perturbed == perturbed]
    return (min(shares), max(shares)) if shares else None


def scale_transfer_summary(record, scale="16-32 px"):
    """What :func:`read_scale_transfer`'s record says at one range of periods, in words.

    The sentences are computed from the record: the range kept by the autoencoders
    trained with perturbations and by those trained without, beside the blur's, and
    the consequence for the okay residual only where the first keep less than the blur.

    Returns
    -------
    str
        Markdown; empty if the record holds no autoencoder.

    Examples
    --------
    >>> from weldlab.convergence import scale_transfer_summary
    >>> ae = lambda s, kept: {"training_set": s, "seed": 0, "transfer": {"16-32 px": kept}}
    >>> rec = {"blur": {"16-32 px": 0.57}, "models": [ae("sni", 0.38), ae("none", 0.80)]}
    >>> print(scale_transfer_summary(rec)[:120])
    At periods of 16-32 px, the autoencoders trained with perturbations keep 0.38 of the okay patches' structure, less than
    """
    blur, parts = record["blur"][scale], []
    perturbed, plain = scale_kept(record, scale, True), scale_kept(record, scale, False)

    def kept(span):
        lo, hi = span
        return f"{lo:.2f}" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f}-{hi:.2f}"

    if perturbed:
        than = "less than" if perturbed[1] < blur else "not less than"
        parts.append(f"At periods of {scale}, the autoencoders trained with perturbations keep "
                     f"{kept(perturbed)} of the okay patches' structure, {than} the blur ({blur:.2f})")
    if plain:
        parts.append(("; those" if parts else f"At periods of {scale}, the autoencoders")
                     + f" trained without perturbations keep {kept(plain)}")
    if not parts:
        return ""
    text = "".join(parts) + "."
    if perturbed and perturbed[1] < blur:
        text += (" The perturbation-trained reconstructions are smoother than the blur at that scale, so"
                 " real structure of okay patches (the bead's edges and ripples, changes of thickness) stays"
                 " in their residual; the 0.1 % threshold has to sit above it, and indications of no greater"
                 " contrast go unflagged.")
    return text


def plot_removal_by_size(record, ax=None):
    """The share of a bump left in the residual against its diameter, per model and PSF.

    Solid lines: PSF sigma 9 px (the synthetic indications'); dashed: 3 px. A dotted
    vertical line marks the autoencoders' receptive field.

    Parameters
    ----------
    record : dict
        From :func:`read_removal_by_size`.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = axes_or_new(ax, (8, 4))
    rows = record["rows"]
    columns = [k for k in rows[0] if k not in ("sigma", "diameter")]
    sigmas = sorted({r["sigma"] for r in rows}, reverse=True)
    for i, column in enumerate(columns):
        for sigma, style in zip(sigmas, ("-o", "--s", ":^")):
            mine = [r for r in rows if r["sigma"] == sigma]
            ax.plot([r["diameter"] for r in mine], [100 * r[column] for r in mine], style, color=f"C{i}", ms=4,
                    label=f"{removal_label(record, column)}, σ = {sigma:g} px")
    ax.axvline(record["receptive_field"], color="0.4", ls=":", lw=1)
    ax.text(record["receptive_field"], ax.get_ylim()[1], " receptive field", va="top", fontsize=11)
    ax.set_xlabel("bump diameter before smoothing (px)")
    ax.set_ylabel("bump's peak left in the residual (%)")
    ax.legend(fontsize=11, loc="upper left", bbox_to_anchor=(1.01, 1))
    return ax


def read_speeds(results_root=RESULTS_ROOT):
    """The recorded speed levers, one record per kind of CPU (:data:`STEP_SPEEDS`).

    Each is ``scripts/bench_step.py``'s JSON: ``rows`` (one per setting), ``cpu_bf16``
    (whether the CPU computes bfloat16 natively), ``machine``, ``batch_size``, ``steps``.
    """
    return [json.loads((Path(results_root) / name).read_text()) for name in STEP_SPEEDS]


def okay_figures(record):
    """A run's three headline okay-residual figures.

    The median and 99.9th percentile of the okay patches' maximum ``|<r>|``, and the
    largest mean residual of an intensity decile.

    Returns
    -------
    tuple of float
        ``(median, tail, bias)``.
    """
    q = record["quality"]["autoencoder"]
    return q["max_mean"]["median"], q["max_mean"]["tail"], q["max_abs_bias"]


def better_on_all_three(record, reference):
    """Whether a run's :func:`okay_figures` are all below the reference run's.

    Examples
    --------
    >>> from weldlab.convergence import better_on_all_three
    >>> def run(m, t, b):
    ...     return {"quality": {"autoencoder": {"max_mean": {"median": m, "tail": t}, "max_abs_bias": b}}}
    >>> better_on_all_three(run(0.01, 0.03, 0.001), run(0.02, 0.06, 0.006))
    True
    >>> better_on_all_three(run(0.01, 0.07, 0.001), run(0.02, 0.06, 0.006))
    False
    """
    return all(a < b for a, b in zip(okay_figures(record), okay_figures(reference)))


def aurocs(record):
    """The AUROC of each synthetic type (in :data:`TYPES` order) for a run's autoencoder."""
    found = record["indications"]["autoencoder"]
    return [found[t]["auroc"] for t in TYPES]


def findings(records, reference="base"):
    """What the recorded runs show, as Markdown bullet points generated from their numbers.

    Each run is compared with the ``reference`` run (the plain recipe) on the median and the
    99.9th percentile of the okay patches' maximum ``|<r>|`` and on the largest decile bias
    (a run of the reference's own recipe and budget is said to show the spread between runs);
    then the runs that meet the goal (:func:`goal`) are named, and the run with the lowest
    99.9th percentile.

    Returns
    -------
    str
    """
    by_name = {r["name"]: r for r in records}
    if reference not in by_name:
        raise ValueError(f"reference: no recorded run named {reference!r}; have {sorted(by_name)}")
    ref = by_name[reference]["quality"]["autoencoder"]
    blur = by_name[reference]["quality"]["blur"]
    lines = [f"- The plain recipe ({describe(by_name[reference]['variant'])}, {by_name[reference]['pairs_trained']:,} "
             f"pairs): median {ref['max_mean']['median']:.4f}, {ref['max_mean']['median'] / blur['max_mean']['median']:.1f} "
             f"times the blur's {blur['max_mean']['median']:.4f}; 99.9th percentile {ref['max_mean']['tail']:.4f} against "
             f"{blur['max_mean']['tail']:.4f}; the worst intensity decile off by {ref['max_abs_bias']:.4f}."]
    m0, t0, b0 = okay_figures(by_name[reference])
    for r in records:
        if r["name"] == reference:
            continue
        m, t, b = okay_figures(r)
        better = [m < m0, t < t0, b < b0]
        verdict = "better on all three" if all(better) else "worse on all three" if not any(better) else "mixed"
        if describe(r["variant"]) == describe(by_name[reference]["variant"]) and r["pairs_trained"] == by_name[
                reference]["pairs_trained"]:
            verdict = "the same recipe and budget again, so these ratios are the spread between two runs"
        lines.append(f"- {r['name']} ({describe(r['variant'])}, {r['pairs_trained']:,} pairs): median {m:.4f} "
                     f"({m / m0:.2f} times the plain recipe's), 99.9th "
                     f"percentile {t:.4f} ({t / t0:.2f} times), decile bias {b:.4f}: {verdict}.")
    met = [r["name"] for r in records if goal(r)["all"]]
    lines.append(f"- Runs that meet the goal: {', '.join(met)}." if met else
                 "- No run meets the goal yet (99.9th percentile at most the blur's, median within "
                 f"{MEDIAN_OVER_BLUR:g} times the blur's, no decile biased by more than {MAX_BIAS:g}, at least "
                 f"{100 * MIN_FLAGGED:.0f} % of every synthetic type flagged).")
    best = min(records, key=lambda r: okay_figures(r)[1])
    lines.append(f"- Lowest 99.9th percentile: {best['name']} ({describe(best['variant'])}).")
    return "\n".join(lines)
