"""The paper's Tables 2 and 3, measured: every configuration, three seeds, beside the paper.

:func:`measure_tables` trains (or reuses) the models of each configuration for every seed,
evaluates them on the test sets (:mod:`weldlab.evaluate`) and summarises the TPR at 0.1 %
FPR as mean and spread, ``(max - min) / 2``, over the seeds, as the paper does, with the
AUROC beside it. :func:`write_tables` stores the result as JSON (with provenance) plus the
per-patch scores as ``.npz`` for the ROC figures; :func:`table_markdown` renders a table
with the paper's numbers beside ours.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np

from . import metrics
from .config import DATA_SOURCES, RESULTS_ROOT
from .datasets import SENSITIVITY_READINGS, sensitivity_name
from .figures import markdown_table
from .provenance import atomic_file, check_replaceable, jsonable, provenance, write_json
from .sets import AE_SETS, CNN_SETS, USE_CASE_2, label
from .thresholds import fpr_budget

#: Rows of both tables: the three contrast classes of real defects, then the five synthetic
#: indication types (paper Tables 2 and 3).
TABLE_ROWS = ("high", "mid", "low", "hollow", "dogbone", "elongated", "partial_circle", "raster")

#: Paper Table 2 (CNN), TPR (%) at 0.1 % FPR, mean over three models (Lindgren & Zach 2022).
PAPER_TABLE2 = {
    "D": dict(zip(TABLE_ROWS, (78, 45, 15, 46, 45, 24, 31, 71))),
    "D+circular": dict(zip(TABLE_ROWS, (83, 74, 23, 69, 48, 24, 33, 98))),
    "D+circular+partial_circle": dict(zip(TABLE_ROWS, (84, 77, 17, 100, 97, 70, 89, 97))),
    "D+sni": dict(zip(TABLE_ROWS, (85, 76, 21, 100, 97, 86, 90, 100))),
}
#: Paper Table 3 (AE OOD detector), TPR (%) at 0.1 % FPR. The paper has no D+SNI column.
PAPER_TABLE3 = {
    "none": dict(zip(TABLE_ROWS, (50, 6, 0, 12, 10, 3, 4, 100))),
    "D": dict(zip(TABLE_ROWS, (79, 69, 16, 100, 100, 100, 99, 100))),
    "sni": dict(zip(TABLE_ROWS, (94, 90, 26, 100, 100, 100, 99, 100))),
}
#: The real defect classes, pooled for the figures of a table run.
REAL_CLASSES = ("high", "mid", "low")
#: The synthetic indication types among :data:`TABLE_ROWS`.
SYNTHETIC_ROWS = TABLE_ROWS[len(REAL_CLASSES):]
#: The amplitude readings of the sensitivity rows, as their rows say them; the main rows keep
#: the literal "before" (:data:`weldlab.datasets.SENSITIVITY_READINGS`, method.md).
SENSITIVITY_LABELS = {"after": "peak after smoothing", "negated": "darker (sign flipped)"}
#: Sensitivity rows by reading: each synthetic type with its amplitude read that way.
SENSITIVITY_ROWS_BY_READING = {reading: tuple(sensitivity_name(k, reading) for k in SYNTHETIC_ROWS)
                               for reading in SENSITIVITY_READINGS}
#: Each sensitivity reading in the words of :func:`findings`.
SENSITIVITY_WORDS = {"after": "with the amplitude read as the peak after the smoothing",
                     "negated": "with the sign flipped (darker)"}
#: Every sensitivity row, reading by reading.
SENSITIVITY_ROWS = sum(SENSITIVITY_ROWS_BY_READING.values(), ())
#: The synthetic type of each sensitivity row (the paper's number beside it is that type's).
SENSITIVITY_TYPE = {row: kind for rows in SENSITIVITY_ROWS_BY_READING.values() for row, kind in zip(rows, SYNTHETIC_ROWS)}
#: Column labels as the paper writes them (:func:`weldlab.sets.label`).
COLUMN_LABELS = {c: label(c) for c in ("blur", *AE_SETS, *CNN_SETS)} | {USE_CASE_2: "okay + defects (use case 2)"}
ROW_LABELS = {"partial_circle": "partial circle",
              **{row: f"{kind.replace('_', ' ')}, {SENSITIVITY_LABELS[reading]}"
                 for reading, rows in SENSITIVITY_ROWS_BY_READING.items() for row, kind in zip(rows, SYNTHETIC_ROWS)}}


#: Table 3's column of the classical detector (no training, no seeds): a Gaussian-blur
#: background with the autoencoder's residual statistics (:func:`weldlab.evaluate.evaluate_baseline`).
BASELINE = "blur"


#: Columns a run holds only when asked for by name (``--sets ae:okay+defects``): the paper's
#: use case 2 (Fig. 12-13), an autoencoder trained to reconstruct okay *and* defect patches,
#: measured beside Table 3 to show what it still flags. Not one of the paper's table columns.
EXTRA_COLUMNS = {"ae": (USE_CASE_2,), "cnn": ()}


def table_columns(kind):
    """The columns of ``kind``'s table: for "ae" the baseline, its configurations, the extras.

    The extras are :data:`EXTRA_COLUMNS`, last.
    """
    return ((BASELINE,) if kind == "ae" else ()) + tuple(configurations(kind)) + EXTRA_COLUMNS[kind]


def configurations(kind):
    """The training configurations (table columns) of ``kind`` ("ae" or "cnn")."""
    if kind == "ae":
        return AE_SETS
    if kind == "cnn":
        return CNN_SETS
    raise ValueError(f"kind: expected 'ae' or 'cnn', got {kind!r}")


def evaluate_model(kind, model, datasets, fpr, sensitivity=False):
    """Evaluate one model: :func:`weldlab.evaluate.evaluate_autoencoder` or ``evaluate_cnn``."""
    from .evaluate import evaluate_autoencoder, evaluate_cnn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=Warning)  # resolvability is recorded in the result
        return (evaluate_autoencoder if kind == "ae" else evaluate_cnn)(model, datasets, fpr,
                                                                        sensitivity=sensitivity)


#: The modules whose code computes a model's evaluation: their source is part of the key of a
#: cached evaluation (:func:`evaluation_key`), so that changing any of them evaluates every
#: model again (``datasets`` and ``perturbations`` make the sensitivity sets at evaluation time).
EVALUATION_MODULES = ("evaluate", "metrics", "residuals", "thresholds", "geometry", "patches", "models", "datasets",
                      "perturbations")


def evaluation_key(network, dataset_key, fpr, sensitivity):
    """Key of one evaluation: everything it is computed from.

    The network file's bytes (None: the blur baseline, whose parameters are in
    :mod:`weldlab.evaluate`'s source), the datasets' key (the test and validation patches),
    the operating point, whether the sensitivity rows are measured, the source of
    :data:`EVALUATION_MODULES`, and the versions of Keras, its backend, NumPy and SciPy (the
    numbers of inference and of the residual statistics).

    Parameters
    ----------
    network : path or None
    dataset_key : str
    fpr : float
    sensitivity : bool

    Returns
    -------
    str
        16 hex digits.
    """
    import hashlib
    import importlib
    import sys

    import keras
    import scipy

    backend = keras.backend.backend()  # its module is imported by Keras already
    versions = {"keras": keras.__version__, "backend": backend, "numpy": np.__version__, "scipy": scipy.__version__,
                backend: getattr(sys.modules.get(backend), "__version__", None)}
    h = hashlib.sha256(b"" if network is None else Path(network).read_bytes())
    h.update(json.dumps({"dataset_key": dataset_key, "fpr": float(fpr), "sensitivity": bool(sensitivity),
                         **versions}, sort_keys=True).encode())
    for name in EVALUATION_MODULES:
        h.update(Path(importlib.import_module(f"{__package__}.{name}").__file__).read_bytes())
    return h.hexdigest()[:16]


def cached_evaluation(name, key, evaluate, folder):
    """``evaluate()``, reused from ``folder`` when nothing it is made from changed.

    A model's evaluation on the standard GDXray test sets takes minutes; a table run after
    one more model was shipped evaluates only that one. The evaluation is stored as
    ``<folder>/<name>-<key>.npz`` (:func:`evaluation_key`: a changed network, datasets,
    operating point or evaluation code gives another key, and the model is evaluated
    again), written atomically.

    Parameters
    ----------
    name : str
        ``"<kind>/<configuration>/seed<k>"``, or ``"ae/blur"`` for the baseline.
    key : str
    evaluate : callable
        Returns a result of :func:`evaluate_model` (``sets``, ``thresholds``, ``scores``,
        ``maxima`` for the autoencoder, and JSON-ready scalars).
    folder : path or None
        The cache; None evaluates without reading or writing it.

    Returns
    -------
    result : dict
        As ``evaluate()``'s, its thresholds as a plain dict when reused.
    reused : bool
    """
    if folder is None:
        return evaluate(), False
    path = Path(folder) / f"{name}-{key}.npz"
    if path.is_file():
        with np.load(path) as z:
            res = json.loads(str(z["summary"]))
            res["scores"] = {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith("scores/")}
            res["maxima"] = {k.split("/")[1]: (z[k], z[k[: -len("mean")] + "std"])
                             for k in z.files if k.startswith("maxima/") and k.endswith("/mean")}
        return res, True
    res = evaluate()
    summary = {k: v for k, v in res.items() if k not in ("scores", "maxima")}
    summary["thresholds"] = dict(res["thresholds"])
    arrays = {f"scores/{k}": np.asarray(v, np.float32) for k, v in res["scores"].items()}
    for set_name, (mm, ms) in res.get("maxima", {}).items():
        arrays[f"maxima/{set_name}/mean"] = np.asarray(mm, np.float32)
        arrays[f"maxima/{set_name}/std"] = np.asarray(ms, np.float32)
    with atomic_file(path) as tmp:
        np.savez_compressed(tmp, summary=np.array(json.dumps(summary, default=jsonable)), **arrays)
    return res, False


#: The metrics a table run summarises per test set (:func:`summarise`) and shows (:func:`table_markdown`).
TABLE_METRICS = ("tpr_at_test_fpr", "tpr_calibrated", "auroc")


def summarise(per_seed):
    """Mean and spread over seeds of each set's metrics.

    Parameters
    ----------
    per_seed : list of dict
        ``evaluate_*(...)["sets"]`` of each seed.

    Returns
    -------
    dict
        set -> metric -> ``{"mean", "spread", "values"}`` for each of :data:`TABLE_METRICS`.
    """
    out = {}
    for name in per_seed[0]:
        out[name] = {"n": per_seed[0][name]["n"]}
        for metric in TABLE_METRICS:
            values = [s[name][metric] for s in per_seed]
            if np.all(np.isnan(values)):
                out[name][metric] = {"mean": float("nan"), "spread": float("nan"), "values": values}
                continue
            mean, spread = metrics.mean_and_spread(values)
            out[name][metric] = {"mean": mean, "spread": spread, "values": values}
    return out


def measure_tables(cfg, datasets, kinds=("ae", "cnn"), seeds=None, train=True, confs=None,
                   sensitivity=True, available=False, reuse=True, log=print):
    """Train (or reuse) and evaluate every configuration of Tables 2 and 3.

    Parameters
    ----------
    cfg : weldlab.config.Config
    datasets : weldlab.datasets.PatchDatasets
    kinds : sequence of {"ae", "cnn"}
    seeds : sequence of int, optional
        Default ``cfg.seeds`` (three in every preset).
    train : bool
        If False, a missing or stale model (trained from other datasets or with another
        architecture) is an error naming it, instead of being trained.
    confs : sequence of str, or dict of kind -> sequence of str, optional
        Only these configurations (default: each kind's table columns but the
        :data:`EXTRA_COLUMNS`, which are measured only when named); a dict restricts each
        kind separately (a kind missing from it is skipped).
    sensitivity : bool
        Also measure every model on the synthetic types under the other amplitude reading
        (:data:`SENSITIVITY_ROWS`, a sensitivity check beside the main rows).
    available : bool
        Measure each configuration on those of ``seeds`` whose current models exist (none
        is trained; a configuration with none is an error): its mean and spread are then
        over fewer seeds, which its operating points list.
    reuse : bool
        Reuse each model's evaluation from an earlier run when nothing it is made from
        changed (:func:`cached_evaluation`, under ``<artifacts>/evaluations``); False
        evaluates every model afresh and stores nothing. Each operating point records its
        evaluation's key and whether it was reused.

    Returns
    -------
    result : dict
        JSON-ready: ``tables`` (kind -> configuration -> summary from :func:`summarise`),
        ``models`` (their records), thresholds and provenance.
    scores : dict
        ``"<kind>/<configuration>/seed<k>/<set>"`` -> ndarray of per-patch scores.
    """
    from .trained import MODEL_FILES
    from .training import current_model

    seeds = list(cfg.seeds if seeds is None else seeds)
    fpr = cfg.fpr
    cache = cfg.artifacts / "evaluations" if reuse else None
    t0 = time.perf_counter()
    tables, records, operating, scores = {}, {}, {}, {}
    for kind in kinds:
        tables[kind], records[kind], operating[kind] = {}, {}, {}
        wanted = confs.get(kind, ()) if isinstance(confs, dict) else confs
        if kind == "ae" and (wanted is None or BASELINE in wanted):
            from .evaluate import evaluate_baseline

            def baseline():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", category=Warning)
                    return evaluate_baseline(datasets, fpr, sensitivity=sensitivity)

            key = None if cache is None else evaluation_key(None, datasets.manifest["dataset_key"], fpr,
                                                            sensitivity)
            res, reused = cached_evaluation(f"{kind}/{BASELINE}", key, baseline, cache)
            tables[kind][BASELINE] = summarise([res["sets"]])
            operating[kind][BASELINE] = [{"seed": None, "thresholds": dict(res["thresholds"]), "sigma": res["sigma"],
                                          "fpr_calibrated_on_test": res["fpr_calibrated_on_test"],
                                          "evaluation": key, "reused": reused}]
            for name, sc in res["scores"].items():
                scores[f"{kind}/{BASELINE}/{name}"] = np.asarray(sc, np.float32)
            log(f"{kind} {BASELINE} baseline{' (evaluation reused)' if reused else ''}: " + ", ".join(
                f"{n} {v['tpr_at_test_fpr']:.2f}" for n, v in res["sets"].items()))
        for conf in table_columns(kind):
            if conf == BASELINE or (wanted is None and conf in EXTRA_COLUMNS[kind]) or (
                    wanted is not None and conf not in wanted):
                continue
            per_seed = []
            for seed in seeds:
                try:
                    trained = current_model(cfg, datasets, kind, conf, seed, train=train and not available, log=log)
                except FileNotFoundError as exc:
                    if not available:
                        raise
                    log(f"{kind} {conf} seed {seed}: skipped ({exc})")
                    continue
                record = trained.record
                key = None if cache is None else evaluation_key(
                    trained.folder / MODEL_FILES[kind], datasets.manifest["dataset_key"], fpr, sensitivity)
                def evaluate(kind=kind, trained=trained):  # the network is loaded only if evaluated
                    return evaluate_model(kind, trained.model, datasets, fpr, sensitivity)

                res, reused = cached_evaluation(f"{kind}/{conf}/seed{seed}", key, evaluate, cache)
                per_seed.append(res["sets"])
                records[kind].setdefault(conf, []).append(  # the input checks' reference data stays with the model
                    {k: v for k, v in record.items() if k != "input_ranges"})
                operating[kind].setdefault(conf, []).append({
                    "seed": seed, "thresholds": dict(res["thresholds"]),
                    "fpr_calibrated_on_test": res["fpr_calibrated_on_test"],
                    "evaluation": key, "reused": reused})
                for name, s in res["scores"].items():
                    scores[f"{kind}/{conf}/seed{seed}/{name}"] = np.asarray(s, np.float32)
                if kind == "ae":
                    for name, (mm, ms) in res["maxima"].items():
                        scores[f"{kind}/{conf}/seed{seed}/{name}/max_mean"] = np.asarray(mm, np.float32)
                        scores[f"{kind}/{conf}/seed{seed}/{name}/max_std"] = np.asarray(ms, np.float32)
                log(f"{kind} {conf} seed {seed}{' (evaluation reused)' if reused else ''}: " + ", ".join(
                    f"{n} {v['tpr_at_test_fpr']:.2f}" for n, v in res["sets"].items()))
            if not per_seed:
                raise FileNotFoundError(f"{kind} {conf}: no current model of seeds {seeds} "
                                        f"(run `weldlab train {kind} --set {conf}`)")
            tables[kind][conf] = summarise(per_seed)
    n_okay = len(datasets["test_okay"])
    result = {
        "preset": cfg.preset, "data": cfg.data, "seeds": seeds, "fpr": fpr,
        "dataset_key": datasets.manifest["dataset_key"], "counts": datasets.counts,
        "test_okay": n_okay, "test_fpr_resolvable": fpr_budget(n_okay, fpr, warn=False) >= 1,
        "sensitivity": {"amplitude_readings": list(SENSITIVITY_READINGS)} if sensitivity else None,
        "tables": tables, "operating_points": operating, "models": records,
        "paper": {"cnn": PAPER_TABLE2, "ae": PAPER_TABLE3},
        "seconds": round(time.perf_counter() - t0, 1), **provenance(),
    }
    return result, scores


def results_name(preset, data):
    """File stem of a table run: ``tables_<data>_<preset>``."""
    return f"tables_{data}_{preset}"


def is_table_run(path):
    """True if ``path`` (``.json`` or ``.npz``) is a table run written by :func:`write_tables`."""
    path = Path(path)
    try:
        record = json.loads(path.with_suffix(".json").read_text())
        return isinstance(record, dict) and {"tables", "preset", "data"} <= set(record)
    except (OSError, ValueError):
        return False


def check_tables_writable(folder, preset, data, overwrite=False):
    """Refuse (before any work) to replace files in ``folder`` that are not table runs."""
    for suffix in (".json", ".npz"):
        check_replaceable(Path(folder) / f"{results_name(preset, data)}{suffix}", is_table_run, "--out file",
                          overwrite)


def write_tables(result, scores, folder, overwrite=False):
    """Write ``tables_<data>_<preset>.json`` and ``.npz`` (scores) into ``folder``.

    A previous table run of the same name is replaced; any other file of that name is
    refused (:class:`~weldlab.provenance.OutputExistsError`) unless ``overwrite``.

    Returns
    -------
    pathlib.Path
        The JSON file.
    """
    folder = Path(folder)
    stem = results_name(result["preset"], result["data"])
    check_tables_writable(folder, result["preset"], result["data"], overwrite)
    with atomic_file(folder / f"{stem}.npz") as tmp:
        np.savez_compressed(tmp, **scores)
    write_json(folder / f"{stem}.json", result)
    return folder / f"{stem}.json"


#: Presets from the strongest down, for :func:`find_tables`.
PRESET_STRENGTH = ("paper", "standard", "quick")


def find_tables(data, preset, folder=RESULTS_ROOT):
    """The table run to show.

    ``tables_<data>_<preset>.json`` if recorded, else the strongest recorded preset for
    ``data``, else the strongest recorded run on any data source (the
    caller must say so: compare ``result["data"]`` and ``result["preset"]`` with its own).

    Parameters
    ----------
    data, preset : str
        The run wanted.
    folder : path
        The recorded runs (``Config.results_root``; default the repository's
        :data:`~weldlab.config.RESULTS_ROOT`, relative to the working folder).

    Raises
    ------
    FileNotFoundError
        If no table run is recorded in ``folder``.
    """
    folder = Path(folder)

    for d in (data, *[d for d in DATA_SOURCES if d != data]):
        for p in (preset, *PRESET_STRENGTH):
            path = folder / f"{results_name(p, d)}.json"
            if path.is_file():
                return path
    raise FileNotFoundError(f"{folder}: no recorded table run (run `weldlab tables --data {data}`)")


def load_tables(path):
    """Read a table run written by :func:`write_tables`.

    Returns
    -------
    result : dict
    scores : dict of str -> ndarray
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no table results (run `weldlab tables`)")
    result = json.loads(path.read_text())
    with np.load(path.with_suffix(".npz")) as z:
        scores = {k: z[k] for k in z.files}
    return result, scores


def table_rows(result, kind):
    """The rows a run holds for ``kind``: :data:`TABLE_ROWS`, then any :data:`SENSITIVITY_ROWS`."""
    measured = set().union(*(set(v) for v in result["tables"][kind].values()))
    return TABLE_ROWS + tuple(r for r in SENSITIVITY_ROWS if r in measured)


def table_markdown(result, kind, metric="tpr_at_test_fpr", rows="all"):
    """A Markdown table: rows = test sets, columns = configurations, ``ours (spread) | paper``.

    Values are percentages for the TPRs and plain numbers for the AUROC, with the spread
    over seeds in brackets ("1 seed" where there is one; none for the baseline, which has
    no seeds). A column whose seeds were trained with different recipes carries
    :data:`MIXED_MARK` in its head (:func:`mixed_recipes`; :func:`mixed_recipe_lines` names
    them). A run measured with the sensitivity check has its rows last (the paper's number
    beside them is the same type's: the paper does not say which reading it used).

    Parameters
    ----------
    result : dict
        From :func:`load_tables`.
    kind : {"ae", "cnn"}
        Table 3 (the autoencoders and the blur) or Table 2 (the CNNs).
    metric : {"tpr_at_test_fpr", "tpr_calibrated", "auroc"}
        The number in each cell (:data:`TABLE_METRICS`).
    rows : {"all", "main", "sensitivity"}
        Every row the run holds; the paper's rows (:data:`TABLE_ROWS`); or the sensitivity
        rows alone (:data:`SENSITIVITY_ROWS`, an empty string when the run has none).
    """
    if metric not in TABLE_METRICS:
        raise ValueError(f"metric={metric!r}: expected one of {', '.join(TABLE_METRICS)}")
    chosen = table_rows(result, kind)
    if rows == "main":
        chosen = TABLE_ROWS
    elif rows == "sensitivity":
        chosen = chosen[len(TABLE_ROWS):]
        if not chosen:
            return ""
    elif rows != "all":
        raise ValueError(f"rows={rows!r}: expected 'all', 'main' or 'sensitivity'")
    confs = [c for c in table_columns(kind) if c in result["tables"][kind]]  # JSON sorts keys
    paper = result["paper"][kind]
    mixed = mixed_recipes(result)
    head = ["test set"]
    for c in confs:
        head.append(f"{COLUMN_LABELS.get(c, c)} ours" + (MIXED_MARK if (kind, c) in mixed else ""))
        if metric.startswith("tpr") and c in paper:
            head.append(f"{COLUMN_LABELS.get(c, c)} paper")
    lines = []
    for row in chosen:
        cells = [ROW_LABELS.get(row, row)]
        paper_row = SENSITIVITY_TYPE.get(row, row)
        for c in confs:
            v = result["tables"][kind][c].get(row, {}).get(metric)
            if v is None or np.isnan(v["mean"]):
                cells.append("–")
            elif c == BASELINE or len(v["values"]) < 2:  # nothing trained, or one seed: no spread
                value = f"{100 * v['mean']:.0f}" if metric.startswith("tpr") else f"{v['mean']:.3f}"
                cells.append(value if c == BASELINE else f"{value} (1 seed)")
            elif metric.startswith("tpr"):
                cells.append(f"{100 * v['mean']:.0f} ({100 * v['spread']:.0f})")
            else:
                cells.append(f"{v['mean']:.3f} ({v['spread']:.3f})")
            if metric.startswith("tpr") and c in paper:
                cells.append(str(paper[c][paper_row]))
        lines.append(cells)
    return markdown_table(head, lines)


def run_notes(result, path, cfg):
    """What a table run is shown with: where it comes from, and what to keep in mind.

    Parameters
    ----------
    result : dict
        From :func:`load_tables`.
    path : path
        Its file.
    cfg : weldlab.config.Config
        The configuration of the page that shows it.

    Returns
    -------
    list of str
        Markdown paragraphs: the run's provenance; a note when it is not the page's own
        preset and data; a warning when its test okay patches cannot resolve its FPR.
    """
    fpr = f"{100 * result['fpr']:g} %"
    notes = [f"**Recorded run** `{Path(path).name}`: preset **{result['preset']}**, data **{result['data']}**, "
             f"seeds {result['seeds']}, {result['test_okay']} test okay patches, weldlab {result['weldlab_version']} "
             f"(commit `{str(result['git_commit'])[:10]}`), {result['machine']}, {result['seconds'] / 60:.0f} min."]
    if (result["data"], result["preset"]) != (cfg.data, cfg.preset):
        notes.append(f"**No table run is recorded for the {cfg.preset} preset on {cfg.data} data; this chapter shows "
                     f"the recorded {result['preset']} run on {result['data']} data.**")
    if not result["test_fpr_resolvable"]:
        notes.append(f"**Warning: {result['test_okay']} test okay patches cannot resolve an FPR of {fpr} (at least "
                     f"{1 / result['fpr']:,.0f} are needed). The TPRs below are measured at the threshold that flags "
                     "none of them, i.e. at an FPR of 0 on this test set, and are lower bounds of the TPR at "
                     f"{fpr}.**")
    return notes


def operating_points_table(result):
    """Markdown: the FPR each model's calibrated thresholds realise on the test okay patches."""
    rows = []
    for kind in ("ae", "cnn"):
        for conf in table_columns(kind):
            for op in result["operating_points"].get(kind, {}).get(conf, []):
                rows.append([kind.upper(), COLUMN_LABELS.get(conf, conf), "–" if op["seed"] is None else op["seed"],
                             f"{100 * op['fpr_calibrated_on_test']:.2f}"])
    return markdown_table(["model", "configuration", "seed", "FPR on test okay (%)"], rows, align="llrr")


def pooled_scores(scores, kind, conf, seed, statistic=""):
    """A model's scores on the test okay patches and on the real defects of all classes.

    Parameters
    ----------
    scores : dict
        The ``.npz`` of :func:`load_tables`.
    kind, conf : str
        The table and column (the baseline has no seeds).
    seed : int
    statistic : str
        "" for the combined score, or ``"max_mean"`` / ``"max_std"`` for a residual
        maximum (autoencoders only).

    Returns
    -------
    okay, defects : ndarray, shape (n,) and (m,)
    """
    name = f"{kind}/{conf}" if conf == BASELINE else f"{kind}/{conf}/seed{seed}"
    suffix = f"/{statistic}" if statistic else ""
    return scores[f"{name}/okay{suffix}"], np.concatenate([scores[f"{name}/{c}{suffix}"] for c in REAL_CLASSES])


def detection_curve_scores(result, scores, seed, cnn_columns=("D", "D+sni")):
    """The curves of chapter 7's detection figure: every recorded AE column and some CNN ones.

    Returns
    -------
    dict
        "AE, <column>" / "CNN, <column>" -> :func:`pooled_scores` (for
        :func:`weldlab.figures.detection_curves`).
    """
    recorded = result["tables"]
    curves = {f"AE, {COLUMN_LABELS[c]}": pooled_scores(scores, "ae", c, seed)
              for c in table_columns("ae") if c in recorded.get("ae", {})}
    curves.update({f"CNN, {COLUMN_LABELS[c]}": pooled_scores(scores, "cnn", c, seed)
                   for c in cnn_columns if c in recorded.get("cnn", {})})
    return curves


def recorded_runs(folder=RESULTS_ROOT):
    """Every table run recorded in ``folder``, the strongest preset first.

    Returns
    -------
    list of (Path, dict)
    """
    runs = [(f, load_tables(f)[0]) for f in sorted(Path(folder).glob("tables_*.json"))]
    return sorted(runs, key=lambda t: PRESET_STRENGTH.index(t[1]["preset"]))


def runs_table(runs):
    """Markdown: one row per recorded run (:func:`recorded_runs`), its preset, data, columns and seeds."""
    rows = []
    for _, r in runs:
        trained = {kind: ", ".join(COLUMN_LABELS.get(c, c) for c in table_columns(kind) if c in r["tables"].get(kind, {}))
                   or "–" for kind in ("ae", "cnn")}
        okay = f"{r['test_okay']}" + ("" if r["test_fpr_resolvable"] else " (too few)")
        rows.append([r["preset"], r["data"], trained["ae"], trained["cnn"], r["seeds"], okay])
    return markdown_table(["preset", "data", "autoencoder", "CNN", "seeds", "test okay patches"], rows,
                          align="lllllr")


def run_label(path, result):
    """Markdown: a recorded run named by its file, preset, data and seeds."""
    return f"`{Path(path).name}` ({result['preset']} preset, {result['data']} data, seeds {result['seeds']})"


def runs_markdown(runs, shown):
    """Markdown: :func:`runs_table`, then the tables of the strongest run other than ``shown``.

    Parameters
    ----------
    runs : list of (Path, dict)
        From :func:`recorded_runs`, the strongest first.
    shown : path
        The run the page already shows in full.
    """
    others = [(f, r) for f, r in runs if Path(f) != Path(shown)]
    if not others:
        return runs_table(runs)
    return (runs_table(runs) + f"\n\n### The strongest other run: {run_label(*others[0])}\n\n"
            + run_tables(others[0][1]))


def table_problems(result):
    """Cells of a run's tables whose numbers cannot be right (what its sentences rest on).

    Returns
    -------
    list of str
        ``"kind/configuration/row"`` for each TPR outside [0, 1], or measured on no patch;
        empty for a sound run. A NaN (a row with no patches to measure) is not a problem.
    """
    bad = []
    for kind, confs in result["tables"].items():
        for conf, table in confs.items():
            for row, v in table.items():
                m = v["tpr_at_test_fpr"]["mean"]
                if not (np.isnan(m) or (0.0 <= m <= 1.0 and v["n"] > 0)):
                    bad.append(f"{kind}/{conf}/{row}")
    return bad


def run_tables(result):
    """Markdown: a run's tables, TPR and AUROC, for each model it holds.

    Under them, the columns that mix recipes (:func:`mixed_recipe_lines`).
    """
    parts = []
    for kind in result["tables"]:
        table = "Table 3, autoencoder" if kind == "ae" else "Table 2, CNN"
        parts.append(f"**{table}**: TPR (%) at {100 * result['fpr']:g} % FPR, mean (spread) over seeds "
                     f"{result['seeds']}\n\n" + table_markdown(result, kind) + "\n\nAUROC:\n\n"
                     + table_markdown(result, kind, "auroc"))
    mixed = mixed_recipe_lines(result)
    return "\n\n".join(parts + (["\n".join(mixed)] if mixed else []))


def mixed_recipe_lines(result):
    """Markdown bullet points: each column of a run that mixes recipes, and its seeds' recipes.

    Examples
    --------
    >>> from weldlab.results import mixed_recipe_lines
    >>> def rec(seed, epochs):
    ...     return {"seed": seed, "hyperparameters": {"epochs": epochs, "steps_per_epoch": 30,
    ...                                               "batch_size": 32, "lr_patience": 0}}
    >>> line, = mixed_recipe_lines({"models": {"cnn": {"D": [rec(0, 100), rec(1, 30), rec(2, 30)]}}})
    >>> line.split(": ", 1)[1]
    'seed 0: 100 x 30 x 32, constant rate; seeds 1, 2: 30 x 30 x 32, constant rate.'
    """
    return [f"- {MIXED_MARK} {kind.upper()} {COLUMN_LABELS.get(conf, conf)} mixes recipes, so its mean and spread are not one "
            "recipe's: " + "; ".join(f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}: {r}"
                                     for r, seeds in by_recipe.items()) + "."
            for (kind, conf), by_recipe in mixed_recipes(result).items()]


def findings(result, caught=0.95):
    """What a table run shows, in sentences computed from it (Markdown bullet points).

    For each AE configuration: how many synthetic types it flags at least ``caught`` of and,
    when the run holds the blur baseline, on how many test sets it beats it; each column whose seeds were trained
    with different recipes (:func:`mixed_recipes`); for every column measured with the
    sensitivity check, that count under both readings; the CNN trained on D alone: how many
    synthetic types it flags fewer than half of; the autoencoder of use case 2, when measured:
    what it flags of the high-contrast defects, the synthetic types and the raster; per model
    kind, the largest FPR its calibrated thresholds realise on the test okay patches.

    Returns
    -------
    list of str
    """
    def tpr(kind, conf, row):
        return result["tables"][kind][conf][row]["tpr_at_test_fpr"]["mean"]

    lines, n = [], len(SYNTHETIC_ROWS)
    ae = result["tables"].get("ae", {})
    for conf in [c for c in configurations("ae") if c in ae]:
        found = [r for r in SYNTHETIC_ROWS if tpr("ae", conf, r) >= caught]
        caught_words = (f"flags at least {100 * caught:.0f} % of **{len(found)} of {n}** synthetic types "
                        f"(high-contrast defects: {100 * tpr('ae', conf, 'high'):.0f} %")
        if BASELINE in ae:
            rows = [r for r in TABLE_ROWS if r in ae[conf]]  # the sensitivity rows are counted apart
            wins = [r for r in rows if tpr("ae", conf, r) > tpr("ae", BASELINE, r)]
            lines.append(f"- The autoencoder trained with {COLUMN_LABELS[conf]} beats the blur baseline on "
                         f"**{len(wins)} of {len(rows)}** test sets and {caught_words} against the blur's "
                         f"{100 * tpr('ae', BASELINE, 'high'):.0f} %).")
        else:
            lines.append(f"- The autoencoder trained with {COLUMN_LABELS[conf]} {caught_words}); this run has no "
                         "blur baseline to compare it with.")
    if USE_CASE_2 in ae:
        found = [r for r in SYNTHETIC_ROWS if tpr("ae", USE_CASE_2, r) >= caught]
        lines.append(f"- The autoencoder of use case 2 (trained to reconstruct okay and defect patches) flags "
                     f"{100 * tpr('ae', USE_CASE_2, 'high'):.0f} % of the high-contrast defects, at least "
                     f"{100 * caught:.0f} % of **{len(found)} of {n}** synthetic types, and "
                     f"{100 * tpr('ae', USE_CASE_2, 'raster'):.0f} % of the raster (the paper: it still flags the "
                     "raster).")
    for kind, confs in result["tables"].items():
        for conf in [c for c in table_columns(kind) if c in confs]:
            readings = {"as read literally": SYNTHETIC_ROWS} | {
                SENSITIVITY_WORDS[reading]: rows for reading, rows in SENSITIVITY_ROWS_BY_READING.items()
                if set(rows) <= set(confs[conf])}
            if len(readings) > 1:
                means = [f"{100 * np.mean([tpr(kind, conf, r) for r in rows]):.0f} % {words}"
                         for words, rows in readings.items()]
                counts = [str(sum(tpr(kind, conf, r) >= caught for r in rows)) for rows in readings.values()]
                lines.append(f"- Sensitivity check, {'the' if conf == BASELINE else kind.upper()} "
                             f"{COLUMN_LABELS[conf]}: its mean TPR over the {n} synthetic types is "
                             + ", ".join(means[:-1]) + f" and {means[-1]}; it flags at least {100 * caught:.0f} % of "
                             + ", ".join(counts[:-1]) + f" and {counts[-1]} of them.")
    lines += mixed_recipe_lines(result)
    if "D" in result["tables"].get("cnn", {}):
        missed = [r for r in SYNTHETIC_ROWS if tpr("cnn", "D", r) < 0.5]
        lines.append(f"- The CNN trained on D alone flags fewer than half of **{len(missed)} of {n}** synthetic types.")
    for kind, confs in result["operating_points"].items():
        worst = max(op["fpr_calibrated_on_test"] for ops in confs.values() for op in ops)
        lines.append(f"- {kind.upper()}: the thresholds calibrated on validation okay patches flag at most "
                     f"{100 * worst:.2f} % of the test okay patches (target {100 * result['fpr']:g} %).")
    return lines or ["This run holds no configuration to summarise."]


#: Share of a test set a detector must flag to "catch" it, and below which it "misses" it
#: (issue 23's statement of the paper's findings, at 0.1 % FPR).
CATCH, MISS = 0.95, 0.5

#: Why we believe a finding does not hold in our runs, when it does not (chapter 7).
NOT_HOLDING_REASON = {
    "none_below_sni": "perturbation training adds little while the autoencoder removes little of any smooth shape "
                      "(chapter 4 measures how much of a σ = 9 px bump it removes)",
    "ae_catches_synthetic": "our autoencoders reproduce smooth, σ = 9 px shapes instead of removing them (chapter 4 "
                            "measures how much of such a bump they remove) while smoothing away okay structure of "
                            "16-32 px (the section on what they smooth away, below), so the indications' residual "
                            "stays near the okay patches'",
    "cnn_misses_unseen": "the comparison needs synthetic types the autoencoder catches; where it catches none, the "
                         "classifier's misses cannot be set against it",
    "cnn_sni_catches_them": "there are no such types to check (see the finding above)",
}


def rate_schedule(hyperparameters):
    """How a run's learning rate moved, in words: a cosine decay, halving on flat epochs, or constant.

    Examples
    --------
    >>> from weldlab.results import rate_schedule
    >>> rate_schedule({"schedule": "cosine"}), rate_schedule({"lr_patience": 2}), rate_schedule({"lr_patience": 0})
    ('cosine rate', 'rate halved after 2 flat epochs', 'constant rate')
    """
    if hyperparameters.get("schedule") == "cosine":
        return "cosine rate"
    if hyperparameters.get("lr_patience"):
        return f"rate halved after {hyperparameters['lr_patience']} flat epochs"
    return "constant rate"


def recipe(record):
    """A model's training recipe in a few words (its seed left out), to compare two columns.

    Examples
    --------
    >>> from weldlab.results import recipe
    >>> recipe({"hyperparameters": {"epochs": 45, "steps_per_epoch": 50, "batch_size": 16,
    ...                             "schedule": "cosine", "okay_weight": 10.0, "dropout_epochs": 0}})
    '45 x 50 x 16, cosine rate, okay x10, no dropout'
    >>> recipe({"hyperparameters": {"epochs": 100, "steps_per_epoch": 30, "batch_size": 32, "lr_patience": 0}})
    '100 x 30 x 32, constant rate'
    >>> recipe({"model": "cnn", "training_parameters": {"cnn_epochs": 30, "cnn_steps_per_epoch": 30,
    ...                                                  "cnn_batch_size": 32}})
    '30 x 30 x 32 (an older record)'
    """
    h = record.get("hyperparameters")
    if h is None:  # records written before the hyperparameters were
        kind = "ae" if record.get("model") in ("ae", "autoencoder") else "cnn"
        tp = record.get("training_parameters") or {}
        return f"{tp.get(kind + '_epochs')} x {tp.get(kind + '_steps_per_epoch')} x {tp.get(kind + '_batch_size')} " \
               "(an older record)"
    words = [f"{h.get('epochs')} x {h.get('steps_per_epoch')} x {h.get('batch_size')}", rate_schedule(h)]
    if h.get("okay_weight", 1) != 1:
        words.append(f"okay x{h['okay_weight']:g}")
    if "dropout_epochs" in h:
        words.append(f"dropout for {h['dropout_epochs']} epochs" if h["dropout_epochs"] else "no dropout")
    return ", ".join(words)


#: Mark of a table column whose seeds were trained with different recipes (short, so that
#: the table keeps to the page's width; :func:`mixed_recipe_lines` explains it).
MIXED_MARK = "†"


def mixed_recipes(result):
    """The columns of a table run whose seeds were trained with different recipes.

    A column's mean and spread then mix models of different training; the chapter says so
    beside the table.

    Parameters
    ----------
    result : dict
        A table run (:func:`load_tables`); its ``models`` hold each seed's training record.

    Returns
    -------
    dict
        ``(kind, configuration) -> {recipe: [seeds]}`` (:func:`recipe`), for the columns
        with more than one recipe only.

    Examples
    --------
    >>> from weldlab.results import mixed_recipes
    >>> def rec(seed, epochs):
    ...     return {"seed": seed, "hyperparameters": {"epochs": epochs, "steps_per_epoch": 30,
    ...                                               "batch_size": 32, "lr_patience": 0}}
    >>> mixed_recipes({"models": {"cnn": {"D": [rec(0, 100), rec(1, 100)], "D+sni": [rec(0, 100), rec(1, 30)]}}})
    {('cnn', 'D+sni'): {'100 x 30 x 32, constant rate': [0], '30 x 30 x 32, constant rate': [1]}}
    """
    out = {}
    for kind, confs in result.get("models", {}).items():
        for conf, records in confs.items():
            by_recipe = {}
            for r in records:
                by_recipe.setdefault(recipe(r), []).append(r.get("seed"))
            if len(by_recipe) > 1:
                out[(kind, conf)] = by_recipe
    return out


def paper_findings(result, catch=CATCH, miss=MISS):
    """The paper's four findings, each tested on a table run (or on the paper's own tables).

    1. ``none_below_sni``: the autoencoder trained with SNI flags at least as much as the
       one trained without perturbations on every test set, and more on most;
    2. ``ae_catches_synthetic``: the autoencoders trained with D and with SNI each flag at
       least ``catch`` of every synthetic type;
    3. ``cnn_misses_unseen``: the CNN trained on D alone flags fewer than ``miss`` of at
       least three synthetic types that the SNI autoencoder catches;
    4. ``cnn_sni_catches_them``: the CNN trained on D+SNI flags at least ``miss`` of each
       of those types.

    Parameters
    ----------
    result : dict
        A table run (:func:`load_tables`), or ``{"tables": ...}`` in the same form (for
        the paper's own numbers: :func:`paper_as_run`).

    Returns
    -------
    list of dict
        One per finding: ``key``, ``claim`` (the finding in words), ``holds`` (True, False,
        or None where the run lacks a configuration it needs, or holds the AE None and SNI
        columns trained with different recipes: :func:`recipe`), ``evidence`` (the numbers it
        rests on, or what is missing) and ``reason`` (why we believe it fails; "" otherwise).

    Examples
    --------
    >>> from weldlab.results import paper_as_run, paper_findings
    >>> [f["holds"] for f in paper_findings(paper_as_run())]
    [True, True, True, True]
    """
    tables = result["tables"]

    def tpr(kind, conf, row):
        return tables[kind][conf][row]["tpr_at_test_fpr"]["mean"]

    def has(kind, *confs):
        return all(c in tables.get(kind, {}) for c in confs)

    def pct(values):
        return ", ".join(f"{ROW_LABELS.get(r, r)} {100 * v:.0f} %" for r, v in values.items())

    def missing(*cols):
        return "the run holds no " + " or ".join(
            f"{k.upper()} {COLUMN_LABELS[c]}" for k, c in cols if c not in tables.get(k, {}))

    def recipes(kind, conf):
        return sorted({recipe(r) for r in result.get("models", {}).get(kind, {}).get(conf, [])})

    out = []
    claim = "The AE trained with SNI flags at least as much as the AE trained without perturbations on every test set."
    if has("ae", "none", "sni") and recipes("ae", "none") != recipes("ae", "sni"):
        out.append({"key": "none_below_sni", "claim": claim, "holds": None,
                    "evidence": "the run's AE None and AE SNI were trained with different recipes ("
                    + "; ".join(f"{COLUMN_LABELS[c]}: {' / '.join(recipes('ae', c))}" for c in ("none", "sni"))
                    + "), so their columns do not compare like with like"})
    elif has("ae", "none", "sni"):
        short = {r: tpr("ae", "sni", r) - tpr("ae", "none", r) for r in TABLE_ROWS}
        below = {r: d for r, d in short.items() if d < 0}
        higher = sum(d > 0 for d in short.values())
        out.append({"key": "none_below_sni", "claim": claim, "holds": not below and higher > len(short) / 2,
                    "evidence": ("below on " + pct({r: -d for r, d in below.items()}) + " (points)") if below else
                    f"higher on {higher} of {len(short)} test sets, lower on none"})
    else:
        out.append({"key": "none_below_sni", "claim": claim, "holds": None,
                    "evidence": missing(("ae", "none"), ("ae", "sni"))})
    claim = f"The AEs trained with D and with SNI each flag at least {100 * catch:.0f} % of every synthetic type."
    cols = [c for c in ("D", "sni") if has("ae", c)]
    if cols:
        short = {c: {r: tpr("ae", c, r) for r in SYNTHETIC_ROWS if tpr("ae", c, r) < catch} for c in cols}
        evidence = "; ".join(f"{COLUMN_LABELS[c]}: " + (f"below on {pct(s)}" if s else "every type caught")
                             for c, s in short.items())
        complete = len(cols) == 2
        holds = False if any(short.values()) else (True if complete else None)
        if not complete:
            evidence += "; " + missing(("ae", "D"), ("ae", "sni"))
        out.append({"key": "ae_catches_synthetic", "claim": claim, "holds": holds, "evidence": evidence})
    else:
        out.append({"key": "ae_catches_synthetic", "claim": claim, "holds": None,
                    "evidence": missing(("ae", "D"), ("ae", "sni"))})
    claim = (f"The CNN trained on D alone flags fewer than {100 * miss:.0f} % of at least three synthetic types that "
             "the SNI AE catches.")
    unseen = []
    if has("ae", "sni") and has("cnn", "D"):
        caught = [r for r in SYNTHETIC_ROWS if tpr("ae", "sni", r) >= catch]
        unseen = [r for r in caught if tpr("cnn", "D", r) < miss]
        out.append({"key": "cnn_misses_unseen", "claim": claim, "holds": len(unseen) >= 3,
                    "evidence": f"the SNI AE catches {len(caught)} of {len(SYNTHETIC_ROWS)} types"
                    + (f"; the CNN misses {len(unseen)} of them" + (f" ({pct({r: tpr('cnn', 'D', r) for r in unseen})})"
                                                                   if unseen else "") if caught else "")})
    else:
        out.append({"key": "cnn_misses_unseen", "claim": claim, "holds": None,
                    "evidence": missing(("ae", "sni"), ("cnn", "D"))})
    claim = f"The CNN trained on D+SNI flags at least {100 * miss:.0f} % of each of those types."
    if not has("cnn", "D+sni") or out[-1]["holds"] is None:
        out.append({"key": "cnn_sni_catches_them", "claim": claim, "holds": None,
                    "evidence": missing(("cnn", "D+sni"), ("cnn", "D"), ("ae", "sni"))})
    elif not unseen:
        out.append({"key": "cnn_sni_catches_them", "claim": claim, "holds": None,
                    "evidence": "no such type in this run", "reason": NOT_HOLDING_REASON["cnn_sni_catches_them"]})
    else:
        values = {r: tpr("cnn", "D+sni", r) for r in unseen}
        out.append({"key": "cnn_sni_catches_them", "claim": claim, "holds": min(values.values()) >= miss,
                    "evidence": pct(values)})
    for f in out:
        f.setdefault("reason", NOT_HOLDING_REASON[f["key"]] if f["holds"] is False else "")
    after_rows = SENSITIVITY_ROWS_BY_READING["after"]
    if out[1]["holds"] is False and has("ae", "sni") and all(r in tables["ae"]["sni"] for r in after_rows):
        after = sum(tpr("ae", "sni", r) >= catch for r in after_rows)
        values = [tables["ae"]["sni"][r]["tpr_at_test_fpr"].get("values", []) for r in after_rows]
        best = max((sum(v[k] >= catch for v in values) for k in range(min(map(len, values)))), default=after)
        out[1]["reason"] += (f"; with the amplitude read as the peak after the smoothing (the sensitivity rows) the SNI "
                             f"AE catches {after} of {len(after_rows)} types"
                             + (f" on average over its seeds, its best seed {best}" if best != after else ""))
    return out


def paper_as_run():
    """The paper's Tables 2 and 3 in the form of a table run (for :func:`paper_findings`)."""
    def column(values):
        return {r: {"tpr_at_test_fpr": {"mean": v / 100}} for r, v in values.items()}

    return {"tables": {"ae": {c: column(v) for c, v in PAPER_TABLE3.items()},
                       "cnn": {c: column(v) for c, v in PAPER_TABLE2.items()}}}


def findings_table(ours, paper=None, run=None):
    """Markdown: each of the paper's findings, whether it holds in a run, and on what numbers.

    Parameters
    ----------
    ours : list of dict
        :func:`paper_findings` of a run.
    paper : list of dict, optional
        :func:`paper_findings` of :func:`paper_as_run`, shown beside.
    run : (path, dict), optional
        The run ``ours`` comes from, named above the table (:func:`run_label`).
    """
    def verdict(f):
        return {True: "holds", False: "does not hold", None: "not measured"}[f["holds"]]

    rows = []
    for k, f in enumerate(ours):
        why = f" Why, we believe: {f['reason']}." if f["reason"] else ""
        row = [f"{k + 1}. {f['claim']}", f"**{verdict(f)}**: {f['evidence']}.{why}"]
        if paper is not None:
            row.append(verdict(paper[k]))
        rows.append(row)
    head = ["finding (paper)", "in this run"] + (["in the paper's tables"] if paper is not None else [])
    table = markdown_table(head, rows, align="l" * len(head))
    return table if run is None else f"Run {run_label(*run)}:\n\n{table}"
