"""Input pipeline vs training step, side by side (issue: "an input pipeline that keeps up").

For each perturbation / training set, measures on this machine:

* pipeline: patches per second that :class:`weldlab.batches.PerturbedPairs` (AE) or
  :class:`weldlab.batches.LabelledBatches` (CNN) produces, single-threaded;
* step: patches per second of ``train_on_batch`` on ready-made batches (after warm-up);
* fit (AE): pairs per second of the real training path, ``fit`` on the batch generator with
  two worker threads, in steady state (after tracing), with weldlab's
  ``KeepFreedMemory`` callback, and the achieved GFLOP/s (3 x the forward FLOPs per patch,
  two patches per pair) as a fraction of the CPU's estimated peak (scripts/bench.py). (A
  run without the callback must be a fresh process: TensorFlow changes glibc's settings
  once per process, so measuring both in one process compares nothing;
  tests/test_training.py measures the page faults instead.)

Prints a table and writes it as JSON (with the machine, backend and versions) to
``--out`` (default ``artifacts/bench/training_<backend>.json``).

    python scripts/bench_training.py [--preset quick] [--batches 6] [--batch-size 16]
                                     [--precision float32|mixed]

``--precision mixed`` sets Keras' ``mixed_float16`` policy (float16 compute, float32
weights): worth measuring on a GPU with tensor cores, slower on a CPU.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from weldlab.batches import LabelledBatches, PerturbedPairs  # noqa: E402
from weldlab.config import make_config  # noqa: E402
from weldlab.datasets import build_or_load  # noqa: E402
from weldlab.fitting import KeepFreedMemory  # noqa: E402
from weldlab.models import build_autoencoder, build_cnn, build_training_model, compile_training_model  # noqa: E402
from weldlab.provenance import machine_description, write_json  # noqa: E402
from weldlab.sets import AE_SETS, CNN_SETS, parse  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import cpu_peak_gflops, model_flops  # noqa: E402


def rate(fn, n):
    t = time.perf_counter()
    for i in range(n):
        fn(i)
    return time.perf_counter() - t


def fit_rate(model, data, callbacks, warm=3):
    """Steady pairs/s of ``model.fit(data)`` (the first ``warm`` steps excluded)."""
    marks = []

    class Mark(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            marks.append(time.perf_counter())

    model.fit(data, epochs=1, verbose=0, callbacks=[*callbacks, Mark()])
    return (len(marks) - warm) * data.batch_size / (marks[-1] - marks[warm - 1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--precision", choices=("float32", "mixed"), default="float32")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.precision == "mixed":
        keras.config.set_dtype_policy("mixed_float16")
    cfg = make_config(args.preset, progress=False)
    ds = build_or_load(cfg)
    bs, n = args.batch_size, args.batches
    rows = []
    ae = build_autoencoder(seed=0)
    for name in AE_SETS:
        psets = [ds.perturbation_set(k) for k in parse("ae", name).sources]
        data = PerturbedPairs(ds.raw("train_okay"), psets, bs, seed=0)
        pipe = n * bs / rate(data.batch, n)
        model = compile_training_model(build_training_model(ae, bool(psets)))
        batches = [data.batch(i) for i in range(n + 2)]
        model.train_on_batch(*batches[0])
        model.train_on_batch(*batches[1])
        step = n * bs / rate(lambda i, m=model, b=batches: m.train_on_batch(*b[i + 2]), n)
        row = {"model": "ae", "set": name, "pipeline_patches_per_s": pipe, "step_patches_per_s": step}
        if name in ("sni", "none"):
            fresh = PerturbedPairs(ds.raw("train_okay"), psets, bs, seed=1, steps=n + 3, workers=2)
            row["fit_pairs_per_s"] = fit_rate(model, fresh, [KeepFreedMemory()])
            flops = model_flops(ae) * 3 * (2 if psets else 1)  # forward + backward (~2x), per pair
            peak, _ = cpu_peak_gflops()
            row["fit_gflops"] = row["fit_pairs_per_s"] * flops / 1e9
            row["fit_fraction_of_peak"] = row["fit_gflops"] / peak if peak else None
        rows.append(row)
    cnn = build_cnn(seed=0)
    cnn.compile(optimizer="adam", loss="binary_crossentropy")
    for name in CNN_SETS:
        sources = {k: (None if k == "D" else ds.perturbation_set(k)) for k in parse("cnn", name).sources}
        data = LabelledBatches(ds.raw("train_okay"), ds.raw("train_defect"), sources, bs, seed=0)
        pipe = n * bs / rate(data.batch, n)
        batches = [data.batch(i) for i in range(n + 2)]
        cnn.train_on_batch(*batches[0])
        cnn.train_on_batch(*batches[1])
        step = n * bs / rate(lambda i, b=batches: cnn.train_on_batch(*b[i + 2]), n)
        rows.append({"model": "cnn", "set": name, "pipeline_patches_per_s": pipe, "step_patches_per_s": step})
    print(f"{'model':<5} {'set':<28} {'pipeline/s':>11} {'step/s':>9}  keeps up")
    for r in rows:
        ok = "yes" if r["pipeline_patches_per_s"] >= r["step_patches_per_s"] else "NO"
        print(f"{r['model']:<5} {r['set']:<28} {r['pipeline_patches_per_s']:>11.1f} {r['step_patches_per_s']:>9.1f}  {ok}")
        if "fit_pairs_per_s" in r:
            print(f"      fit: {r['fit_pairs_per_s']:.2f} pairs/s = {r['fit_gflops']:.1f} GFLOP/s"
                  + (f" ({100 * r['fit_fraction_of_peak']:.0f} % of peak)" if r["fit_fraction_of_peak"] else ""))
    out = args.out or f"artifacts/bench/training_{keras.backend.backend()}_{args.precision}.json"
    write_json(out, {"rows": rows, "batch_size": bs, "batches": n, "preset": args.preset,
                     "precision": args.precision, "machine": machine_description()})
    print("written", out)


if __name__ == "__main__":
    main()
