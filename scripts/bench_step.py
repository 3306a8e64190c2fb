"""Speed levers of the autoencoder's training step, each measured alone in a fresh process.

One AE+SNI training step (``train_on_batch`` on ready-made batches of 16 pairs, the
five-term loss, Adam) is timed after two warm-up steps, under each setting:

* ``jit``: Keras' XLA compilation of the step (``compile(jit_compile=...)``) on or off;
* ``onednn``: TensorFlow's oneDNN kernels (``TF_ENABLE_ONEDNN_OPTS``) on or off;
* ``precision``: float32, or Keras' ``mixed_bfloat16`` policy (bfloat16 compute, float32
  weights), which only pays where the CPU computes bfloat16 natively (AVX512-BF16 or AMX:
  reported as ``cpu_bf16``);
* ``threads``: TensorFlow's intra-op threads (0: TensorFlow's default, the cores);
* ``backend``: the Keras backend (``KERAS_BACKEND``): TensorFlow, JAX (whose step Keras
  always compiles with XLA) or PyTorch (eager; ``pip install torch``, a CPU build); ``onednn``
  applies to TensorFlow only. A backend that is not installed gets a row with its error.

Each setting runs in its own process, because TensorFlow reads its environment and
thread settings once. Nothing else should run on the machine meanwhile (a second job
halves every figure). Writes the table as JSON (default ``book/results/step_speed.json``, or
``step_speed_bf16.json`` on a CPU with native bfloat16).

    python scripts/bench_step.py [--steps 8] [--batch-size 16] [--out FILE]
"""

import argparse
import json
import os
import subprocess
import sys
import time

SETTINGS = [
    {"backend": "tensorflow", "jit": "auto", "onednn": "1", "precision": "float32", "threads": 0},
    {"backend": "tensorflow", "jit": "off", "onednn": "1", "precision": "float32", "threads": 0},
    {"backend": "tensorflow", "jit": "on", "onednn": "1", "precision": "float32", "threads": 0},
    {"backend": "tensorflow", "jit": "off", "onednn": "0", "precision": "float32", "threads": 0},
    {"backend": "tensorflow", "jit": "auto", "onednn": "1", "precision": "bfloat16", "threads": 0},
    {"backend": "jax", "jit": "auto", "onednn": "1", "precision": "float32", "threads": 0},
    {"backend": "torch", "jit": "auto", "onednn": "1", "precision": "float32", "threads": 0},
]


def cpu_bf16():
    """Whether the CPU advertises native bfloat16 arithmetic (Linux /proc/cpuinfo)."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return None
    return any(f in flags for f in ("avx512_bf16", "amx_bf16"))


def one(setting, steps, batch_size):
    """Time the step under one setting (run in a fresh process); returns a dict."""
    import keras

    from weldlab.batches import PerturbedPairs
    from weldlab.config import make_config
    from weldlab.datasets import build_or_load
    from weldlab.models import build_autoencoder, build_training_model, compile_training_model

    if setting["threads"]:
        import tensorflow as tf  # the thread setting has no Keras equivalent; this script only

        tf.config.threading.set_intra_op_parallelism_threads(setting["threads"])
    if setting["precision"] == "bfloat16":
        keras.config.set_dtype_policy("mixed_bfloat16")
    ds = build_or_load(make_config("quick", progress=False))
    data = PerturbedPairs(ds.raw("train_okay"), [ds.perturbation_set("sni")], batch_size, seed=0)
    batches = [data.batch(i) for i in range(steps + 2)]
    jit = {"auto": "auto", "on": True, "off": False}[setting["jit"]]
    model = compile_training_model(build_training_model(build_autoencoder(0), True), jit_compile=jit)
    for b in batches[:2]:
        model.train_on_batch(*b)
    t = time.perf_counter()
    for b in batches[2:]:
        model.train_on_batch(*b)
    seconds = (time.perf_counter() - t) / steps
    return {**setting, "seconds_per_step": seconds, "pairs_per_second": batch_size / seconds,
            "jit_resolved": bool(model.jit_compile), "backend_resolved": keras.backend.backend()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", default=None,
                    help="default: book/results/step_speed_bf16.json on a CPU with native bfloat16, "
                         "else book/results/step_speed.json")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one(json.loads(args.one), args.steps, args.batch_size)))
        return 0
    from weldlab.provenance import machine_description, write_json

    rows = []
    for s in SETTINGS:
        env = {**os.environ, "KERAS_BACKEND": s["backend"], "TF_ENABLE_ONEDNN_OPTS": s["onednn"],
               "TF_CPP_MIN_LOG_LEVEL": "3"}
        out = subprocess.run([sys.executable, __file__, "--one", json.dumps(s), "--steps", str(args.steps),
                              "--batch-size", str(args.batch_size)], env=env, capture_output=True, text=True)
        line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
        row = json.loads(line[0][7:]) if line else {**s, "error": out.stderr.strip().splitlines()[-1:]}
        rows.append(row)
        print(row, flush=True)
    args.out = args.out or f"book/results/step_speed{'_bf16' if cpu_bf16() else ''}.json"
    write_json(args.out, {"rows": rows, "batch_size": args.batch_size, "steps": args.steps, "cpu_bf16": cpu_bf16(),
                          "machine": machine_description()})
    print("written", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
