"""Benchmarks side by side, in one run (``make bench``): a table, and JSON with the machine.

1. 9x9 kernel statistics: box filters (weldlab.residuals) vs a direct computation over
   every window (NumPy's sliding_window_view, mean and std per window);
2. a 4992 x 1290 radiograph: the fully convolutional scan vs a patch-by-patch sliding
   window at a 156 px stride (Mpx/s, ratio);
3. the arithmetic limit: FLOPs per patch and per pixel of both models (counted from the
   layer shapes), and the GFLOP/s achieved by batched inference, as a fraction of an
   estimated peak of this CPU (cores x clock x FLOPs per cycle from its SIMD flags);
4. with ``--training``, scripts/bench_training.py (input pipeline vs training step), in
   float32 and, where a GPU is visible, also in mixed precision;
5. with ``--book-run``, the quick book on simulated data, built from nothing (its datasets
   and models too) in a temporary folder, and its wall time per chapter (or, with ``--book LOG``, the times in a saved log).

The GPU targets (scan >= 500 Mpx/s and AE training >= 20,000 patches/s on an H100) are
reported as not measured when no GPU is visible to the Keras backend.

    python scripts/bench.py [--training] [--book-run | --book LOG] [--out artifacts/bench/bench.json]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from weldlab.models import build_autoencoder, build_cnn  # noqa: E402
from weldlab.provenance import machine_description, write_json  # noqa: E402
from weldlab.residuals import kernel_statistics  # noqa: E402
from weldlab.tiling import fully_convolutional, scan_maps  # noqa: E402
from weldlab.simulate import simulate_radiograph  # noqa: E402


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def direct_kernel_statistics(r, k=9):
    w = np.lib.stride_tricks.sliding_window_view(r, (k, k), axis=(-2, -1))
    return w.mean(axis=(-2, -1)), w.std(axis=(-2, -1))


def model_flops(model):
    """Multiply-adds x 2 of every Conv2D / Conv2DTranspose / Dense layer, for one input."""
    total = 0
    layers = []
    for layer in model.layers:
        layers += layer.layers if hasattr(layer, "layers") else [layer]
    for layer in layers:
        name = type(layer).__name__
        if name in ("Conv2D", "Conv2DTranspose"):
            kh, kw, cin, cout = layer.kernel.shape
            if name == "Conv2DTranspose":
                kh, kw, cout, cin = layer.kernel.shape
                h, w = layer.input.shape[1:3]  # every input pixel scatters a kh x kw x cout block
            else:
                h, w = layer.output.shape[1:3]
            total += 2 * kh * kw * cin * cout * h * w
        elif name == "Dense":
            cin, cout = layer.kernel.shape
            total += 2 * cin * cout
    return total


def cpu_peak_gflops():
    """cores x max clock x float32 FLOPs per cycle (2 FMA units of 8 or 16 lanes), an estimate."""
    flags, mhz = "", 0.0
    try:
        text = open("/proc/cpuinfo").read()
        flags = re.search(r"^flags\s*:(.*)$", text, re.M).group(1)
        mhz = max(float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", text, re.M))
    except (OSError, AttributeError, ValueError):
        pass
    per_cycle = 64 if " avx512f" in flags else 32 if " fma" in flags else 8
    cores = len(os.sched_getaffinity(0))
    return cores * mhz / 1000 * per_cycle, f"{cores} cores x {mhz:.0f} MHz x {per_cycle} FLOP/cycle"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--training", action="store_true", help="also run scripts/bench_training.py")
    ap.add_argument("--book", metavar="LOG", help="a `weldlab book` log to take per-chapter times from")
    ap.add_argument("--book-run", action="store_true", help="build the quick book (simulated data) and time its chapters")
    ap.add_argument("--out", default="artifacts/bench/bench.json")
    args = ap.parse_args()
    machine = machine_description()
    gpu = bool(machine["accelerators"])
    rows, out = [], {"machine": machine, "backend": keras.backend.backend()}

    # 1. kernel statistics
    r = np.random.default_rng(0).normal(0, 0.01, (32, 156, 156))
    t_box = best_of(lambda: kernel_statistics(r))
    t_direct = best_of(lambda: direct_kernel_statistics(r), 1)
    m1, s1 = kernel_statistics(r)
    m2, s2 = direct_kernel_statistics(r)
    assert np.allclose(m1, m2) and np.allclose(s1, s2, atol=1e-9)
    out["kernel_statistics"] = {"patches": 32, "box_s": t_box, "direct_s": t_direct, "ratio": t_direct / t_box}
    rows.append(("9x9 kernel statistics, 32 residuals", f"box {1e3 * t_box:.1f} ms", f"direct {1e3 * t_direct:.0f} ms",
                 f"x{t_direct / t_box:.0f} (target >= 20)"))

    # 1b. input checks on patches: statistics, then ranges and typicality (6000-patch reference)
    from weldlab.screening import check_inputs, image_statistics, input_ranges, typicality_model

    grain = np.clip(0.5 + np.random.default_rng(3).normal(0, 0.005, (64, 192, 192)), 0, 1)
    t_stats = best_of(lambda: [image_statistics(p) for p in grain])
    stats = [image_statistics(p) for p in grain]
    ranges = input_ranges(None, "bench", statistics=stats)
    ranges["typicality"] = {**typicality_model(stats * 94, "bench"), "threshold": 10.0}  # 6016 reference rows
    t_check = best_of(lambda: check_inputs(stats, ranges))
    out["input_checks"] = {"patches": len(grain), "statistics_ms_per_patch": 1e3 * t_stats / len(grain),
                           "check_ms_per_patch": 1e3 * t_check / len(grain)}
    rows.append(("input checks, 64 patches", f"statistics {1e3 * t_stats / len(grain):.1f} ms/patch",
                 f"ranges + typicality {1e3 * t_check / len(grain):.2f} ms/patch", ""))

    # 2. whole-radiograph scan vs patch loop
    keras.utils.set_random_seed(0)
    ae = build_autoencoder(0)
    fc = fully_convolutional(ae)
    image = simulate_radiograph(np.random.default_rng(1), 1290, 4992).image
    th = {"t_mean": 0.01, "t_std": 0.01}
    scan_maps(fc, image[:400, :400], th)  # warm-up
    t_scan = best_of(lambda: scan_maps(fc, image, th), 2)
    tops = range(0, image.shape[0] - 192 + 1, 156)
    lefts = range(0, image.shape[1] - 192 + 1, 156)
    patches = np.stack([image[a : a + 192, b : b + 192] for a in tops for b in lefts])

    def loop():
        for p in patches:  # one call per patch, as a naive sliding window does
            kernel_statistics(ae(p[None, ..., None], training=False).numpy()[0, ..., 0] - p[18:174, 18:174])

    t_loop = best_of(loop, 1)
    mpx = image.size / 1e6
    out["scan"] = {"shape": list(image.shape), "scan_s": t_scan, "patch_loop_s": t_loop, "patches": len(patches),
                   "scan_mpx_per_s": mpx / t_scan, "ratio": t_loop / t_scan}
    rows.append((f"scan {image.shape[1]}x{image.shape[0]} px", f"fully conv. {t_scan:.2f} s ({mpx / t_scan:.2f} Mpx/s)",
                 f"patch loop {t_loop:.1f} s ({len(patches)} patches, stride 156)",
                 f"x{t_loop / t_scan:.1f} (target scan <= 3 s)"))

    # 3. FLOPs and achieved rate
    peak, peak_text = cpu_peak_gflops()
    out["flops"] = {"cpu_peak_gflops_estimate": peak, "peak_from": peak_text}
    x = np.random.default_rng(2).random((64, 192, 192, 1)).astype(np.float32)
    for name, model in (("AE", ae), ("CNN", build_cnn(0))):
        f = model_flops(model)
        model.predict(x[:8], verbose=0)
        t = best_of(lambda m=model: m.predict(x, batch_size=32, verbose=0), 2)
        gflops = f * len(x) / t / 1e9
        out["flops"][name] = {"flops_per_patch": f, "flops_per_pixel": f / 192 ** 2, "patches_per_s": len(x) / t,
                              "gflops": gflops, "fraction_of_peak": gflops / peak if peak else None}
        rows.append((f"{name} inference, batch 32", f"{f / 1e6:.0f} MFLOP/patch ({f / 192 ** 2:.0f} /px)",
                     f"{len(x) / t:.0f} patches/s = {gflops:.1f} GFLOP/s",
                     f"{100 * gflops / peak:.0f} % of ~{peak:.0f} GFLOP/s peak" if peak else "peak unknown"))

    # 4. training: pipeline vs step
    if args.training:
        out["training"] = {}
        for precision in ("float32", "mixed") if gpu else ("float32",):
            with tempfile.TemporaryDirectory() as tmp:
                res = os.path.join(tmp, "training.json")
                subprocess.run([sys.executable, "scripts/bench_training.py", "--precision", precision, "--out", res],
                               check=True)
                out["training"][precision] = json.load(open(res))["rows"]
            for r in out["training"][precision]:
                keeps = r["pipeline_patches_per_s"] >= r["step_patches_per_s"]
                rows.append((f"{r['model'].upper()} training {r['set']} ({precision})",
                             f"pipeline {r['pipeline_patches_per_s']:.0f}/s", f"step {r['step_patches_per_s']:.1f}/s",
                             "pipeline keeps up" if keeps else "PIPELINE BOUNDS TRAINING"))
                if "fit_pairs_per_s" in r:
                    rows.append((f"AE training {r['set']}: fit, steady ({precision})",
                                 f"{r['fit_pairs_per_s']:.2f} pairs/s = {r['fit_gflops']:.1f} GFLOP/s",
                                 f"{100 * r['fit_fraction_of_peak']:.0f} % of peak" if r["fit_fraction_of_peak"] else "",
                                 f"bare step {r['step_patches_per_s']:.2f} pairs/s"))

    # 5. book chapter times
    log_text = open(args.book).read() if args.book else None
    if args.book_run:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "weldlab"), "book", "--preset", "quick",
                                   "--build-dir", tmp, "-p", f"artifacts_root={tmp}/artifacts"], capture_output=True, text=True)
            log_text = proc.stdout + proc.stderr
            if proc.returncode != 0:
                raise SystemExit(f"book build failed:\n{log_text[-3000:]}")
            out["book_total_s"] = time.perf_counter() - t0
    if log_text is not None:
        times = re.findall(r"\[\d+/\d+\] (\S+) done in ([\d.]+) s", log_text)
        out["book_chapters_s"] = {k: float(v) for k, v in times}
        for k, v in times:
            rows.append((f"quick book: {k}", f"{float(v):.0f} s", "", ""))
        if "book_total_s" in out:
            rows.append(("quick book: all, with HTML", f"{out['book_total_s']:.0f} s", "", ""))

    # 6. GPU targets
    if not gpu:
        out["gpu"] = {"measured": False, "why": f"no GPU visible to the {keras.backend.backend()} backend"}
        rows.append(("GPU targets (H100: scan >= 500 Mpx/s, AE >= 20,000 patches/s)", "not measured",
                     out["gpu"]["why"], ""))
    else:
        out["gpu"] = {"measured": True, "devices": machine["accelerators"], "scan_mpx_per_s": out["scan"]["scan_mpx_per_s"]}

    width = [max(len(r[i]) for r in rows) for i in range(4)]
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, "
          f"accelerators: {machine['accelerators'] or 'none'}; Keras {machine['keras']} on "
          f"{machine['keras_backend']} {machine['backend_version']}")
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, width)))
    write_json(args.out, out)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
