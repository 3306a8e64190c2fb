"""Record how every shipped CNN flags the synthetic test indications with their sign flipped.

The paper gives the test indications a positive amplitude (hollow, dogbone, elongated, raster
0.2, partial circle 0.1) and its SC training set a negative one (-0.1); weldlab adds them to
the okay patches' intensities as written (method.md), so the test indications are brighter
than their surroundings and SC, like most real defects, darker. This script measures each
shipped CNN on the same test sets with every indication subtracted instead of added
(``okay - delta``, the same shapes and places), at the paper's operating point (0.1 % FPR on
the test okay patches, :func:`weldlab.metrics.tpr_at_fpr`), and writes both readings to
``training/measurements/sign_sensitivity_<data>_<preset>.json``::

    python scripts/sign_sensitivity.py --preset standard --data gdxray
"""

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from weldlab import metrics  # noqa: E402
from weldlab.config import make_config  # noqa: E402
from weldlab.datasets import build_or_load  # noqa: E402
from weldlab.evaluate import cnn_scores  # noqa: E402
from weldlab.perturbations import TEST_INDICATIONS  # noqa: E402
from weldlab.provenance import provenance, write_json  # noqa: E402
from weldlab.trained import TrainedModel, shipped_configurations, shipped_for  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "training" / "measurements"


def flipped(patches, okay):
    """The same indications subtracted instead of added: ``okay - (patches - okay)``, in [0, 1]."""
    return np.clip(2.0 * okay - patches, 0.0, 1.0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="standard")
    ap.add_argument("--data", default="gdxray", choices=("gdxray", "synthetic"))
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    cfg = make_config(args.preset, data=args.data)
    ds = build_or_load(cfg)
    key = ds.manifest["dataset_key"]
    okay = np.asarray(ds["test_okay"], np.float32)
    sets = {}
    for kind in TEST_INDICATIONS:
        tested = np.asarray(ds[f"test_{kind}"], np.float32)
        sets[kind] = {"as tested (brighter)": tested,
                      "sign flipped (darker)": flipped(tested, okay[np.asarray(ds.raw(f"test_{kind}_base"))])}
    models = []
    for training_set, seed in shipped_configurations("cnn", cfg.data, key):
        model = TrainedModel.load(shipped_for("cnn", training_set, seed, cfg.data, key), "cnn").model
        on_okay = cnn_scores(model, okay)
        tpr = {kind: {reading: metrics.tpr_at_fpr(on_okay, cnn_scores(model, x), cfg.fpr)["tpr"]
                      for reading, x in readings.items()} for kind, readings in sets.items()}
        models.append({"training_set": training_set, "seed": seed, "tpr_at_test_fpr": tpr})
        print(f"CNN {training_set} seed {seed}: "
              + ", ".join(f"{k} {100 * v['as tested (brighter)']:.0f} / {100 * v['sign flipped (darker)']:.0f} %"
                          for k, v in tpr.items()), flush=True)
    record = {"preset": cfg.preset, "data": cfg.data, "dataset_key": key, "fpr": cfg.fpr,
              "n_test_okay": len(okay), "n_per_type": {k: len(v["as tested (brighter)"]) for k, v in sets.items()},
              "models": models, "seconds": round(time.perf_counter() - t0, 1), **provenance()}
    path = args.out / f"sign_sensitivity_{cfg.data}_{cfg.preset}.json"
    write_json(path, record)
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
