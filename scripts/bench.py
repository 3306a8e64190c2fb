"""Benchmarks side by side, in one run (``make bench``): a table, and JSON with the machine.

1. 9x9 kernel statistics: box filters (weldlab.residuals) vs a direct computation over
   every window (NumPy's sliding_window_view, mean and std per window);
2. a 4992 x 1290 radiograph: the fully convolutional scan vs a patch-by-patch sliding
   window at a 156 px stride (Mpx/s, ratio);
3. the arithmetic limit: FLOPs per patch and per pixel of both models (counted from the
   layer shapes), and the GFLOP/s achieved by batched inference, as a fraction of an
   estimated peak of this CPU (cores x clock x FLOPs per cycle from its SIMD flags);
4. with ``--training``, scripts/bench_training.py (pipeline vs step);
5. with ``--book LOG``, the per-chapter wall times parsed from a ``weldlab book`` log.

    python scripts/bench.py [--training] [--book LOG] [--out artifacts/bench/bench.json]
"""

import argparse
import os
import re
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from weldlab.models import build_autoencoder, build_cnn  # noqa: E402
from weldlab.provenance import provenance, write_json  # noqa: E402
from weldlab.residuals import kernel_statistics  # noqa: E402
from weldlab.scan import fully_convolutional, scan_maps  # noqa: E402
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
    ap.add_argument("--out", default="artifacts/bench/bench.json")
    args = ap.parse_args()
    rows, out = [], {"machine": provenance(), "backend": keras.backend.backend()}

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
        t = best_of(lambda: model.predict(x, batch_size=32, verbose=0), 2)
        gflops = f * len(x) / t / 1e9
        out["flops"][name] = {"flops_per_patch": f, "flops_per_pixel": f / 192 ** 2, "patches_per_s": len(x) / t,
                              "gflops": gflops, "fraction_of_peak": gflops / peak if peak else None}
        rows.append((f"{name} inference, batch 32", f"{f / 1e6:.0f} MFLOP/patch ({f / 192 ** 2:.0f} /px)",
                     f"{len(x) / t:.0f} patches/s = {gflops:.1f} GFLOP/s",
                     f"{100 * gflops / peak:.0f} % of ~{peak:.0f} GFLOP/s peak" if peak else "peak unknown"))

    # 4. training: pipeline vs step
    if args.training:
        subprocess.run([sys.executable, "scripts/bench_training.py"], check=True)

    # 5. book chapter times
    if args.book:
        times = re.findall(r"\[\d+/\d+\] (\S+) done in ([\d.]+) s", open(args.book).read())
        out["book_chapters_s"] = {k: float(v) for k, v in times}
        for k, v in times:
            rows.append((f"book chapter {k}", f"{float(v):.0f} s", "", ""))

    width = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, width)))
    write_json(args.out, out)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
