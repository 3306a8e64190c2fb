"""The autoencoder's convergence harness: one recipe, a fixed budget, the okay-residual table.

Trains one autoencoder variant for a fixed number of training pairs from the preset's
datasets and seed (``weldlab.training.train_autoencoder``, so every run is checkpointed,
resumable and recorded like any other), then measures on the validation okay patches of the
training radiographs, beside the classical blur baseline (Gaussian sigma 4 px):

* the median, 99th percentile and 99.9th percentile of the patch maxima of ``|<r>|`` and
  ``sigma(r)``; the residual RMS in flat areas and at the strongest edges; the mean
  residual in each decile of the local intensity (``weldlab.evaluate.okay_residual_statistics``);
* the five synthetic indication types pasted into validation okay patches (not the test
  sets: decisions are taken on validation data only): AUROC against the okay patches and
  the fraction flagged at thresholds calibrated at 0.1 % FPR on them;
* the share of the okay patches' structure kept at each range of spatial period
  (``weldlab.evaluate.scale_transfer``);
* throughput (training pairs per second, validation and checkpoints included) and wall time.

The record goes to ``book/results/convergence/<name>.json``; ``--table`` prints every
recorded run on ``--data`` as one Markdown table. ``--judge-seed S`` evaluates on datasets built with
another dataset seed (patches the run never saw), with the test sets too (``--test``).

    python scripts/ae_experiment.py base --pairs 9600
    python scripts/ae_experiment.py pm --pairs 9600 --scaling patch_mean
    python scripts/ae_experiment.py crop96 --pairs 54400 --crop 96 --batch-size 32 --steps-per-epoch 50
    python scripts/ae_experiment.py --table
    python scripts/ae_experiment.py sim_shipped --data synthetic --model weldlab/pretrained/synthetic/ae/sni/seed0
"""

import argparse
import json
import math
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from weldlab import perturbations as pert  # noqa: E402
from weldlab.config import make_config, parse_override  # noqa: E402
from weldlab.convergence import RECORDS, convergence_table, read_records  # noqa: E402
from weldlab.datasets import build_or_load, decode, encode  # noqa: E402
from weldlab.evaluate import (background_residuals, complete_removal_residuals, evaluate_autoencoder,  # noqa: E402
                              evaluate_baseline, okay_residual_statistics, okay_strata, perturbation_removal,
                              reconstruction_residuals, residual_maxima, scale_transfer)
from weldlab.residuals import patch_maxima  # noqa: E402
from weldlab.metrics import auroc  # noqa: E402
from weldlab.patches import crop  # noqa: E402
from weldlab.provenance import provenance, write_json  # noqa: E402
from weldlab.thresholds import ResidualThresholds  # noqa: E402
from weldlab.trained import TrainedModel  # noqa: E402
from weldlab.training import train_autoencoder, validation_pairs  # noqa: E402

#: Seed stream of the validation indications (apart from every stream the datasets use).
INDICATION_SEED = 424_242


def validation_indications(val_okay, n, seed=INDICATION_SEED, reading="before", sigma=pert.INDICATION_PSF_SIGMA):
    """The five synthetic indication types pasted into validation okay patches.

    Parameters
    ----------
    val_okay : ndarray, shape (m, 192, 192), float32
    n : int
    seed : int
    reading : {"before", "after"}
        The amplitude's reading (``weldlab.perturbations.AMPLITUDE_READINGS``).
    sigma : float
        The indications' PSF (px; the paper's 9).

    Returns
    -------
    dict of str -> (ndarray, ndarray)
        Per type: the patches, shape (n, 192, 192), float32, quantised as the datasets
        store patches (16 bits); and the okay patch each went into, shape (n,), int.
    """
    out = {}
    for j, kind in enumerate(pert.TEST_INDICATIONS):
        base = np.random.default_rng([seed, j]).integers(0, len(val_okay), n)
        out[kind] = decode(encode(pert.paste_indications(val_okay, kind, base, seed + j, reading, sigma)[0])), base
    return out


def sni_validation_pairs(datasets, steps=8, batch_size=16):
    """Okay validation patches and the same with SNI, as the seed-0 runs validate, shape (n, 192, 192) each."""
    pairs = validation_pairs(datasets, [datasets.perturbation_set("sni")], batch_size, 0, steps)
    batches = [pairs[i][0] for i in range(steps)]
    return tuple(np.concatenate([b[k][..., 0] for b in batches]) for k in ("x_ok", "x_per"))


def okay_residuals(model, val_okay):
    """Residuals of the validation okay patches (None: the blur's), shape (n, 156, 156)."""
    if model is None:
        return background_residuals(val_okay)
    return np.concatenate([reconstruction_residuals(model, val_okay[i : i + 256]) for i in range(0, len(val_okay), 256)])


def detection(okay_maxima, maxima_of, indications, fpr):
    """AUROC and calibrated flag rate of each indication type.

    ``maxima_of(x, base)`` gives the window maxima of the patches ``x`` pasted into the okay
    patches ``base``; the thresholds are calibrated on ``okay_maxima``.
    """
    th = ResidualThresholds.calibrate(*okay_maxima, fpr)
    okay = th.score(*okay_maxima)
    out = {"thresholds": th.to_dict()}
    for kind, (x, base) in indications.items():
        s = th.score(*maxima_of(x, base))
        out[kind] = {"auroc": auroc(okay, s), "flagged": float(np.mean(s > th.cut))}
    return out


def test_sets(model, datasets, fpr):
    """Rates on the test sets (judging only): ``tpr_calibrated`` and AUROC per set."""
    result = evaluate_baseline(datasets, fpr) if model is None else evaluate_autoencoder(model, datasets, fpr)
    return {"fpr_calibrated_on_test": result["fpr_calibrated_on_test"],
            **{k: {m: v[m] for m in ("tpr_calibrated", "tpr_at_test_fpr", "auroc")} for k, v in result["sets"].items()}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name", nargs="?", help="the run's name (its record and model folder)")
    ap.add_argument("--table", action="store_true", help="print every recorded run as a Markdown table")
    ap.add_argument("--model", default=None, metavar="FOLDER",
                    help="evaluate this trained AE folder (e.g. weldlab/pretrained/ae/sni/seed0) instead of training")
    ap.add_argument("--pairs", type=int, default=9600, help="training pairs (budget)")
    ap.add_argument("--set", default="sni", help="perturbation set (none, D, sni, D+sni)")
    ap.add_argument("--seed", type=int, default=0, help="model seed")
    ap.add_argument("--scaling", choices=("none", "affine", "patch_mean"), default="none")
    ap.add_argument("--okay-weight", type=float, default=1.0)
    ap.add_argument("--code-weight", type=float, default=1.0, help="weight of the code's L1 term (1: the paper's)")
    ap.add_argument("--start-from", default=None, metavar="FOLDER",
                    help="a trained AE folder whose weights this run starts from (a second phase)")
    ap.add_argument("--clean-fraction", type=float, default=0.0, help="okay-only warm-up, fraction of the budget")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--crop", type=int, default=None, metavar="SIDE",
                    help="train on random crops of this side (192 - 4k px, e.g. 96; default: whole patches)")
    ap.add_argument("--steps-per-epoch", type=int, default=25)
    ap.add_argument("--val-steps", type=int, default=8, help="validation batches per epoch (the same every epoch)")
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    ap.add_argument("--schedule", choices=("cosine", "plateau"), default="cosine")
    ap.add_argument("--dropout-epochs", type=int, default=0, help="epochs with the paper's dropout first")
    ap.add_argument("--indications", type=int, default=200, help="validation indications per type")
    ap.add_argument("--reading", choices=pert.AMPLITUDE_READINGS, default="before",
                    help="the indications' amplitude: the peak before (the tables') or after the smoothing")
    ap.add_argument("--indication-sigma", type=float, default=pert.INDICATION_PSF_SIGMA,
                    help="the indications' PSF in px (the paper's 9; another: a sensitivity check)")
    ap.add_argument("--judge-seed", type=int, default=None, help="evaluate on datasets of this dataset seed")
    ap.add_argument("--test", action="store_true", help="also evaluate on the test sets (judging only)")
    ap.add_argument("--preset", default="standard")
    ap.add_argument("--data", default="gdxray")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args()
    if args.table:
        print(convergence_table(read_records(make_config(args.preset).results_root, data=args.data)))
        return 0
    if not args.name:
        ap.error("a run name is needed (or --table)")
    cfg = make_config(args.preset, data=args.data, progress=False, **dict(parse_override(t) for t in args.param))
    ds = build_or_load(cfg)
    steps = args.steps_per_epoch
    epochs = max(1, math.ceil(args.pairs / (steps * args.batch_size)))
    clean = round(args.clean_fraction * epochs)
    out = Path(args.model) if args.model else cfg.artifacts / "experiments" / args.name
    t0 = time.perf_counter()
    if args.model:  # a model trained elsewhere: its own record says how
        record = TrainedModel.load(out, "ae").record
        tp = record.get("training_parameters", {})  # records of the first shipped models
        h = record.get("hyperparameters") or {"learning_rate": tp.get("learning_rate"),
                                               "dropout_epochs": tp.get("ae_dropout_epochs")}
        steps, epochs = record["steps_per_epoch"], record["epochs"]
        for key, value in (("set", record["training_set"]), ("seed", record["seed"]), ("batch_size", record["batch_size"]),
                           ("steps_per_epoch", steps), ("val_steps", h.get("val_steps")),
                           ("pairs", epochs * steps * record["batch_size"]), ("learning_rate", h["learning_rate"]),
                           ("schedule", h.get("schedule", "plateau")), ("dropout_epochs", h.get("dropout_epochs")),
                           ("okay_weight", h.get("okay_weight", 1.0)), ("scaling", h.get("scaling", "none")),
                           ("clean_fraction", h.get("clean_epochs", 0) / epochs),
                           ("code_weight", h.get("code_weight", 1.0)), ("crop", h.get("crop")),
                           ("start_from", (record.get("start_from") or {}).get("folder"))):
            setattr(args, key, value)
    else:
        record = train_autoencoder(
            ds, args.set, seed=args.seed, out_dir=out, epochs=epochs, batch_size=args.batch_size,
            patience=epochs + 1, steps_per_epoch=steps, val_steps=args.val_steps, learning_rate=args.learning_rate,
            dropout_epochs=args.dropout_epochs, schedule=args.schedule, okay_weight=args.okay_weight,
            scaling=args.scaling, clean_epochs=clean, code_weight=args.code_weight, crop=args.crop,
            start_from=args.start_from, verbose=2)
    train_wall = time.perf_counter() - t0
    model = TrainedModel.load(out, "ae").model
    judge = ds
    if args.judge_seed is not None:
        # beside the run's own datasets, not in their place (the folder holds one dataset seed)
        judge_cfg = make_config(args.preset, data=args.data, progress=False, seed=args.judge_seed,
                                **dict(parse_override(t) for t in args.param))
        judge = build_or_load(judge_cfg, out_dir=judge_cfg.artifacts / f"datasets.seed{args.judge_seed}")
    t1 = time.perf_counter()
    val = judge["val_okay"]
    marks = validation_indications(val, args.indications, reading=args.reading, sigma=args.indication_sigma)
    quality, found = {}, {}
    strata = okay_strata(val)
    for who, net in (("autoencoder", model), ("blur", None)):
        r = okay_residuals(net, val)
        quality[who] = okay_residual_statistics(r, strata, cfg.fpr)
        quality[who]["scale_transfer"] = scale_transfer(val, crop(val) - r)
        found[who] = detection(patch_maxima(r), lambda x, base, net=net: residual_maxima(net, x), marks, cfg.fpr)
        if net is None:
            quality["noise_std"] = float(r.std(dtype=np.float64))
            # the ceiling: the blur's okay residuals with each indication left whole in them
            found["complete_removal"] = detection(
                patch_maxima(r), lambda x, base, r=r: patch_maxima(complete_removal_residuals(r[base], x - val[base])),
                marks, cfg.fpr)
        del r
    removal = perturbation_removal(model, *sni_validation_pairs(judge))
    result = {
        "name": args.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "variant": {k: getattr(args, k) for k in ("set", "seed", "pairs", "scaling", "okay_weight", "code_weight",
                                                  "clean_fraction", "start_from", "crop",
                                                  "batch_size", "steps_per_epoch", "val_steps", "learning_rate", "schedule",
                                                  "dropout_epochs")}
                   | {"loss_units": "image" if args.scaling == "none" else "scaled"},
        "pairs_trained": record["epochs"] * steps * args.batch_size,
        "pairs_per_second": record["patches_per_second"],
        "train_seconds": round(record["wall_seconds"], 1),
        "wall_seconds_this_call": round(train_wall, 1),
        "history": TrainedModel.load(out, "ae").history,
        "judged_on": {"dataset_key": judge.manifest["dataset_key"], "dataset_seed": judge.manifest["params"]["seed"],
                      "val_okay": len(val), "indications_per_type": args.indications,
                      "amplitude_reading": args.reading, "indication_sigma": args.indication_sigma},
        "quality": quality,
        "indications": found,
        "sni_removal": removal,
        "record": {k: record.get(k) for k in ("dataset_key", "data", "preset", "hyperparameters",
                                             "training_parameters", "scaling", "backend")},
        "model_folder": str(args.model) if args.model else None,
        "fpr": cfg.fpr,
        # whether the training (in this call) used TensorFlow's oneDNN kernels; unknown for --model
        "training_onednn": None if args.model else os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "1",
        **provenance(),
    }
    if args.test:
        result["test"] = {"autoencoder": test_sets(model, judge, cfg.fpr), "blur": test_sets(None, judge, cfg.fpr)}
    result["evaluation_seconds"] = round(time.perf_counter() - t1, 1)
    suffix = ("" if args.judge_seed is None else f".judge{args.judge_seed}") + (
        "" if args.reading == "before" else f".{args.reading}") + (
        "" if args.indication_sigma == pert.INDICATION_PSF_SIGMA else f".sigma{args.indication_sigma:g}")
    path = Path(cfg.results_root) / RECORDS / f"{args.name}{suffix}.json"
    if args.model and path.is_file():  # judged again: what only the training call knew stays
        before = json.loads(path.read_text())
        for key in ("training_onednn", "wall_seconds_this_call", "created"):
            result[key] = before.get(key, result[key])
        result["judged_again"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_json(path, result)
    print(convergence_table([result]))
    print(f"recorded in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
