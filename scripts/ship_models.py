"""Copy trained models into the package (``weldlab/pretrained``) with calibrated thresholds.

Usage (after ``weldlab train ae --set sni`` and ``weldlab train cnn --set D+sni`` at the same
preset and data source)::

    python scripts/ship_models.py --preset standard --data gdxray [--sets cnn:D ...] [-p NAME=VALUE ...]

For every seed of the preset it copies the autoencoder trained with SNI and the CNN trained
on D+SNI (or the models ``--sets`` names: the paper's other table columns), calibrates their
thresholds at 0.1 % patch-level FPR on the validation okay patches of the training radiographs
(the AE's two residual thresholds under the OR rule; the CNN's probability threshold), and
writes each model's ``record.json`` with the thresholds and a sentence saying how it was
trained. After shipping an autoencoder it records again how much okay structure every shipped
AE keeps by spatial period (:func:`weldlab.convergence.record_scale_transfer`, chapter 7).
``weldlab scan`` and the later chapters load the SNI autoencoders and D+SNI CNNs;
``weldlab tables`` uses every shipped model made from its datasets.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from weldlab.config import make_config, parse_override  # noqa: E402
from weldlab.convergence import record_scale_transfer  # noqa: E402
from weldlab.datasets import build_or_load, load_radiographs  # noqa: E402
from weldlab.evaluate import cnn_scores  # noqa: E402
from weldlab.models import build_cnn, fixed_size  # noqa: E402
from weldlab.detector import CALIBRATION_KEYS, calibrate_detector, patch_films  # noqa: E402
from weldlab.results import rate_schedule  # noqa: E402
from weldlab.thresholds import ProbabilityThreshold  # noqa: E402
from weldlab.sets import SHIPPED  # noqa: E402
from weldlab.trained import TrainedModel, model_dir, shipped_for, shipped_root  # noqa: E402
from weldlab.training import hyperparameters  # noqa: E402


README = """# Shipped models

Made by `scripts/ship_models.py` from models trained with `weldlab train` at the `{preset}`
preset on {source}, e.g.

```bash
weldlab train ae --set sni --preset {preset} --data {data} ...
weldlab train cnn --set D+sni --preset {preset} --data {data} ...
```

The chapters and `weldlab scan` load the autoencoder trained with SNI and the CNN trained on
D+SNI. Any other rows are models of the paper's other table columns: `weldlab tables --preset
{preset} --data {data}` uses every model shipped for its datasets instead of training it.

- **where**: {machine};
- **data**: the `{preset}` preset's datasets built from {source} (`{data}`; dataset key `{dataset_key}`);
- **schedule**: at most *epochs* epochs of *steps* batches of *batch* patches (pairs for the AE),
  early stopping after *patience* epochs without a better validation loss, Adam with learning
  rate {learning_rate}; {schedule_note};
- **thresholds**: calibrated at 0.1 % patch-level FPR on the {n_val} validation okay patches
  (the AE's two thresholds under the OR rule; the CNN's probability threshold). Each AE record
  also holds `two_sided_thresholds` (the same pair plus `t_quiet`, the too-quiet residual test,
  within the same budget and lowered by the film grain's margin, `quiet_margin`) and
  `input_ranges` (the input checks' ranges: `film` from the training films, their weld bead's
  contrast included, `patch` from the okay training patches
  with their `typicality` reference and threshold; `weldlab.screening`), written by
  `scripts/ship_models.py --recalibrate` without retraining.

{header}
{rows}

Each folder holds the model (`.keras`, loads with `safe_mode=True`), `record.json` (the full
training record with the thresholds) and `history.json` (losses per epoch).
"""


COLUMNS = ("model", "training set", "seed", "schedule (epochs x steps x batch, patience, rate)", "epochs run", "best epoch",
           "best val. loss", "minutes", "patches/s", "thresholds", "converged (AE: residual RMS / film noise)", "commit")
#: The README's table head: column names, then their alignment.
HEADER = "| " + " | ".join(COLUMNS) + " |\n| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |"


def _schedule(h):
    return (f"{h['epochs']} x {h['steps_per_epoch'] or 0} x {h['batch_size']}, patience {h['patience']}, "
            + rate_schedule(h))


def _schedule_of(kind, record):
    """The training schedule a record states (records before ``hyperparameters`` kept the
    run's Config entries as ``training_parameters``)."""
    if "hyperparameters" in record:
        return _schedule(record["hyperparameters"])
    tp = record.get("training_parameters") or {}
    return _schedule({"epochs": tp.get(kind + "_epochs"), "steps_per_epoch": tp.get(kind + "_steps_per_epoch"),
                      "batch_size": tp.get(kind + "_batch_size"), "patience": tp.get("patience"),
                      "lr_patience": tp.get("lr_patience"), "schedule": tp.get(kind + "_schedule")})


def _row(kind, training_set, seed, record):
    th = record.get("thresholds") or record["threshold"]
    return (f"| {kind} | {training_set} | {seed} | {_schedule_of(kind, record)} | {record['epochs']} | "
            f"{record['best_epoch']} | {record['best_val_loss']:.4g} | {record['wall_seconds'] / 60:.1f} | "
            f"{record['patches_per_second']} | "
            + (f"t_mean {th['t_mean']:.4f}, t_std {th['t_std']:.4f}" if kind == "ae" else f"p {th['probability']:.4f}")
            + f" | {_converged(kind, record)} | `{str(record.get('git_commit'))[:10]}` |")


def _converged(kind, record):
    if kind != "ae":
        return "–"
    conv = record.get("convergence")
    if conv is None:
        return "not measured (older record)"
    return f"{'yes' if conv['converged'] else 'no'} ({conv['rms_over_noise']:.2f})"


def _ae_calibration(model, ds, cfg):
    films = [r.image for r in load_radiographs(cfg)[0]]
    val_films, train_films = patch_films(ds)
    return calibrate_detector(model, ds["val_okay"], ds["train_okay"], films, fpr=cfg.fpr,
                              films_source=f"{cfg.data} training films", val_films=val_films, train_films=train_films)


def recalibrate(cfg, sets, seeds, keys=CALIBRATION_KEYS):
    """Recalibrate the shipped autoencoders' records in place (thresholds and input ranges).

    Every shipped AE of ``sets`` (``"ae:<set>"``; others are skipped) and ``seeds`` that
    was trained on ``cfg``'s datasets (:func:`weldlab.trained.shipped_for`); only the record
    entries named in ``keys`` (:data:`weldlab.detector.CALIBRATION_KEYS`) are replaced.
    """
    ds = build_or_load(cfg)
    folders = [shipped_for("ae", training_set, seed, cfg.data, ds.manifest["dataset_key"])
               for kind, _, training_set in (item.partition(":") for item in sets) if kind == "ae"
               for seed in seeds]
    for folder in [f for f in folders if f is not None]:
        shipped = TrainedModel.load(folder, "ae")
        calibration = _ae_calibration(shipped.model, ds, cfg)
        shipped.record.update({k: calibration[k] for k in keys})
        shipped.save()
        print(f"{shipped.folder}: thresholds {shipped.record['thresholds']}, "
              f"two-sided {shipped.record['two_sided_thresholds']}")


def _ship(cfg, ds, kind, training_set, seed, machine):
    """Copy one trained model into the package with its calibrated thresholds; its README row."""
    val = ds["val_okay"]
    trained = TrainedModel.load(model_dir(cfg, kind, training_set, seed), kind)
    if not trained.is_current(ds.manifest["dataset_key"]):
        raise SystemExit(f"{trained.folder}: trained with {trained.stale_reason(ds.manifest['dataset_key'])}; "
                         "retrain it before shipping")
    record = dict(trained.record)
    if kind == "ae":
        record.update(_ae_calibration(trained.model, ds, cfg))
    else:
        record["threshold"] = dict(ProbabilityThreshold.calibrate(cnn_scores(trained.model, val), cfg.fpr))
    record["source"] = (
        f"trained by `weldlab train {kind} --set {training_set} --preset {cfg.preset} --data {cfg.data}` "
        f"with hyperparameters {record.get('hyperparameters')} on {machine}; "
        f"thresholds calibrated at {100 * cfg.fpr:g} % FPR on the {len(val)} validation okay patches")
    # a fresh, uncompiled copy: weights (and an AE's intensity map) only, no optimizer state
    if kind == "ae":
        fresh = fixed_size(trained.model, seed)
    else:
        fresh = build_cnn(seed)
        fresh.set_weights(trained.model.get_weights())
    dest = TrainedModel(shipped_root(cfg.data) / kind / training_set / f"seed{seed}", kind, record, trained.history)
    dest.save(fresh)
    print(f"{dest.folder}: {record['epochs']} epochs, {record['wall_seconds']} s")


def shipped_models(data):
    """Every model shipped for ``data``: (kind, training set, seed, record), the chapters' own first."""
    root, found = shipped_root(data), []
    for kind in ("ae", "cnn"):
        for folder in sorted((root / kind).glob("*/seed*")):
            if (folder / "record.json").is_file():
                found.append((kind, folder.parent.name, int(folder.name[4:]), TrainedModel.load(folder, kind).record))
    return sorted(found, key=lambda m: (m[0], m[1] != SHIPPED[m[0]], m[1], m[2]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="standard")
    ap.add_argument("--data", default="gdxray")
    ap.add_argument("--machine", default="the 2-core CPU machine (no GPU)", help="where they were trained")
    ap.add_argument("--sets", nargs="+", default=[f"{k}:{s}" for k, s in SHIPPED.items()], metavar="KIND:SET",
                    help="which models to ship, e.g. cnn:D (default: the ones the chapters load, "
                         + " ".join(f"{k}:{s}" for k, s in SHIPPED.items()) + "); models shipped before are kept")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="ship only these seeds (default: the preset's)")
    ap.add_argument("--notes", metavar="FILE", help="markdown appended to the README (what the table cannot say)")
    ap.add_argument("-p", "--param", action="append", default=[])
    ap.add_argument("--recalibrate", action="store_true",
                    help="only recalibrate the shipped autoencoders' thresholds and input ranges in place "
                         "(those of --sets and --seeds that are shipped)")
    ap.add_argument("--keys", nargs="+", choices=CALIBRATION_KEYS, default=list(CALIBRATION_KEYS),
                    help="with --recalibrate: replace only these entries of each record")
    args = ap.parse_args()
    cfg = make_config(args.preset, data=args.data, **dict(parse_override(t) for t in args.param))
    if args.recalibrate:
        return recalibrate(cfg, args.sets, args.seeds if args.seeds is not None else cfg.seeds, args.keys)
    ds = build_or_load(cfg)
    for item in args.sets:
        kind, _, training_set = item.partition(":")
        for seed in (args.seeds if args.seeds is not None else cfg.seeds):
            _ship(cfg, ds, kind, training_set, seed, args.machine)
    if any(item.startswith("ae:") for item in args.sets):  # chapter 7's record must cover every shipped AE
        record, path = record_scale_transfer(cfg, ds)
        print(f"scale transfer of {len(record['models'])} shipped autoencoders recorded in {path}")
    shipped = shipped_models(cfg.data)  # the README lists every shipped model, these and earlier ones
    rows = [_row(kind, training_set, seed, record) for kind, training_set, seed, record in shipped]
    schedules = {(kind, _schedule_of(kind, record)) for kind, _, _, record in shipped}
    preset = make_config(args.preset)
    shorter = [f"the {k.upper()}'s {s} differs from the preset's {_schedule(hyperparameters(preset, k))}"
               for k, s in sorted(schedules) if s != _schedule(hyperparameters(preset, k))]
    (shipped_root(cfg.data) / "README.md").write_text(README.format(
        preset=cfg.preset, data=cfg.data, machine=args.machine, n_val=len(ds["val_okay"]),
        source="GDXray" if cfg.data == "gdxray" else "weldlab's simulated films",
        learning_rate=cfg.learning_rate,
        schedule_note="; ".join(shorter) or f"the `{cfg.preset}` preset's own schedule",
        dataset_key=ds.manifest["dataset_key"], header=HEADER, rows="\n".join(rows))
        + ("\n" + open(args.notes).read().strip() + "\n" if args.notes else ""))


if __name__ == "__main__":
    main()
