"""Record how much of okay patches' structure, by spatial period, every shipped autoencoder keeps.

For each autoencoder shipped for a preset's datasets (``weldlab/pretrained``), the
reconstructions of the first ``--n`` validation okay patches of the training radiographs
are compared with the patches in the Fourier domain (``weldlab.evaluate.scale_transfer``), beside the
classical blur baseline; the result goes to
``book/results/scale_transfer_<data>_<preset>.json``, which chapter 7 reads::

    python scripts/scale_transfer.py --preset standard --data gdxray
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from weldlab.config import RESULTS_ROOT, make_config  # noqa: E402
from weldlab.convergence import scale_transfer_path  # noqa: E402
from weldlab.datasets import build_or_load  # noqa: E402
from weldlab.evaluate import background_residuals, reconstruction_residuals, scale_transfer  # noqa: E402
from weldlab.patches import crop  # noqa: E402
from weldlab.provenance import provenance, write_json  # noqa: E402
from weldlab.trained import TrainedModel, shipped_configurations, shipped_for  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="standard")
    ap.add_argument("--data", default="gdxray", choices=("gdxray", "synthetic"))
    ap.add_argument("--n", type=int, default=500, help="validation okay patches (the first n)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    cfg = make_config(args.preset, data=args.data)
    ds = build_or_load(cfg)
    key = ds.manifest["dataset_key"]
    x = ds["val_okay"][: args.n]
    models = []
    for training_set, seed in shipped_configurations("ae", cfg.data, key):
        shipped = TrainedModel.load(shipped_for("ae", training_set, seed, cfg.data, key), "ae")
        transfer = scale_transfer(x, crop(x) - reconstruction_residuals(shipped.model, x))
        models.append({"training_set": training_set, "seed": seed, "transfer": transfer,
                       "rms_over_noise": shipped.record["convergence"]["rms_over_noise"]})
        print(training_set, seed, {k: round(v, 3) for k, v in transfer.items()}, flush=True)
    record = {"preset": cfg.preset, "data": cfg.data, "dataset_key": key, "n_val_okay": len(x),
              "blur": scale_transfer(x, crop(x) - background_residuals(x)), "models": models,
              "seconds": round(time.perf_counter() - t0, 1), **provenance()}
    path = scale_transfer_path(RESULTS_ROOT, cfg.data, cfg.preset)
    write_json(path, record)
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
