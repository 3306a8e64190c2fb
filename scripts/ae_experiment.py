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
* throughput (training pairs per second, validation and checkpoints included) and wall time.

The record goes to ``book/results/convergence/<name>.json``; ``--table`` prints every
recorded run as one Markdown table. ``--judge-seed S`` evaluates on datasets built with
another dataset seed (patches the run never saw), with the test sets too (``--test``).

    python scripts/ae_experiment.py base --pairs 9600
    python scripts/ae_experiment.py pm --pairs 9600 --scaling patch_mean
    python scripts/ae_experiment.py --table
"""

import argparse
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
from weldlab.evaluate import (background_residuals, evaluate_autoencoder, evaluate_baseline,  # noqa: E402
                              okay_residual_statistics, okay_strata, reconstruction_residuals, residual_maxima)
from weldlab.residuals import patch_maxima  # noqa: E402
from weldlab.metrics import auroc  # noqa: E402
from weldlab.provenance import provenance, write_json  # noqa: E402
from weldlab.thresholds import ResidualThresholds  # noqa: E402
from weldlab.trained import TrainedModel  # noqa: E402
from weldlab.training import train_autoencoder  # noqa: E402

#: Seed stream of the validation indications (apart from every stream the datasets use).
INDICATION_SEED = 424_242


def validation_indications(val_okay, n, seed=INDICATION_SEED):
    """The five synthetic indication types pasted into validation okay patches.

    Parameters
    ----------
    val_okay : ndarray, shape (m, 192, 192), float32

    Returns
    -------
    dict of str -> ndarray, shape (n, 192, 192), float32
        Quantised as the datasets store patches (16 bits).
    """
    out = {}
    for j, kind in enumerate(pert.TEST_INDICATIONS):
        base = np.random.default_rng([seed, j]).integers(0, len(val_okay), n)
        out[kind] = decode(encode(pert.paste_indications(val_okay, kind, base, seed + j)[0]))
    return out


def okay_residuals(model, val_okay):
    """Residuals of the validation okay patches (None: the blur's), shape (n, 156, 156)."""
    if model is None:
        return background_residuals(val_okay)
    return np.concatenate([reconstruction_residuals(model, val_okay[i : i + 256]) for i in range(0, len(val_okay), 256)])


def detection(model, okay_maxima, indications, fpr):
    """AUROC and calibrated flag rate of each indication type (None: the blur)."""
    th = ResidualThresholds.calibrate(*okay_maxima, fpr)
    okay = th.score(*okay_maxima)
    out = {"thresholds": th.to_dict()}
    for kind, x in indications.items():
        s = th.score(*residual_maxima(model, x))
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
    ap.add_argument("--clean-fraction", type=float, default=0.0, help="okay-only warm-up, fraction of the budget")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps-per-epoch", type=int, default=25)
    ap.add_argument("--val-steps", type=int, default=8, help="validation batches per epoch (the same every epoch)")
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    ap.add_argument("--schedule", choices=("cosine", "plateau"), default="cosine")
    ap.add_argument("--dropout-epochs", type=int, default=0, help="epochs with the paper's dropout first")
    ap.add_argument("--indications", type=int, default=200, help="validation indications per type")
    ap.add_argument("--judge-seed", type=int, default=None, help="evaluate on datasets of this dataset seed")
    ap.add_argument("--test", action="store_true", help="also evaluate on the test sets (judging only)")
    ap.add_argument("--preset", default="standard")
    ap.add_argument("--data", default="gdxray")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args()
    if args.table:
        print(convergence_table(read_records(RECORDS)))
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
                           ("code_weight", h.get("code_weight", 1.0))):
            setattr(args, key, value)
    else:
        record = train_autoencoder(
            ds, args.set, seed=args.seed, out_dir=out, epochs=epochs, batch_size=args.batch_size,
            patience=epochs + 1, steps_per_epoch=steps, val_steps=args.val_steps, learning_rate=args.learning_rate,
            dropout_epochs=args.dropout_epochs, schedule=args.schedule, okay_weight=args.okay_weight,
            scaling=args.scaling, clean_epochs=clean, code_weight=args.code_weight, verbose=2)
    train_wall = time.perf_counter() - t0
    model = TrainedModel.load(out, "ae").model
    judge = ds
    if args.judge_seed is not None:
        judge = build_or_load(make_config(args.preset, data=args.data, progress=False, seed=args.judge_seed,
                                          **dict(parse_override(t) for t in args.param)))
    t1 = time.perf_counter()
    val = judge["val_okay"]
    marks = validation_indications(val, args.indications)
    quality, found = {}, {}
    strata = okay_strata(val)
    for who, net in (("autoencoder", model), ("blur", None)):
        r = okay_residuals(net, val)
        quality[who] = okay_residual_statistics(r, strata, cfg.fpr)
        found[who] = detection(net, patch_maxima(r), marks, cfg.fpr)
        if net is None:
            quality["noise_std"] = float(r.std(dtype=np.float64))
        del r
    result = {
        "name": args.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "variant": {k: getattr(args, k) for k in ("set", "seed", "pairs", "scaling", "okay_weight", "code_weight",
                                                  "clean_fraction",
                                                  "batch_size", "steps_per_epoch", "val_steps", "learning_rate", "schedule",
                                                  "dropout_epochs")}
                   | {"loss_units": "image" if args.scaling == "none" else "scaled"},
        "pairs_trained": record["epochs"] * steps * args.batch_size,
        "pairs_per_second": record["patches_per_second"],
        "train_seconds": round(record["wall_seconds"], 1),
        "wall_seconds_this_call": round(train_wall, 1),
        "history": TrainedModel.load(out, "ae").history,
        "judged_on": {"dataset_key": judge.manifest["dataset_key"], "dataset_seed": judge.manifest["params"]["seed"],
                      "val_okay": len(val), "indications_per_type": args.indications},
        "quality": quality,
        "indications": found,
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
    suffix = "" if args.judge_seed is None else f".judge{args.judge_seed}"
    path = RECORDS / f"{args.name}{suffix}.json"
    write_json(path, result)
    print(convergence_table([result]))
    print(f"recorded in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
