"""The ``weldlab`` command line.

Subcommands
-----------
``weldlab book``      execute every chapter with papermill and render the HTML book
``weldlab datasets``  build (or reuse) the patch datasets of a preset and print Table 1
``weldlab train``     train the autoencoder or the CNN for one training set and the seeds
``weldlab tables``    train and evaluate every configuration of Tables 2 and 3 (three seeds)
``weldlab scan``      scan whole radiographs with the OOD detector: overlay PNG + JSON verdict
``weldlab fit``       fit a detector to your own films of accepted welds (``scan --model`` uses it)
``weldlab simulate``  write simulated radiographs and their masks as PNG files
``weldlab calibrate`` compare simulator and GDXray statistics (chapter 1's table)

Every subcommand takes ``--preset``, ``--data``, ``--gdxray-root`` and any number of
``-p NAME=VALUE`` parameter overrides, as the chapters do.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .config import DATA_SOURCES, PRESETS, make_config, parse_override


def _common(p):
    p.add_argument("--preset", choices=PRESETS, default="quick", help="parameter preset (default: quick)")
    p.add_argument("--data", choices=DATA_SOURCES, default=None,
                   help="radiographs: the embedded simulator (default) or GDXray")
    p.add_argument("--gdxray-root", default=None, metavar="DIR",
                   help="GDXray folder holding Welding/W0001 and W0002 (else $WELDLAB_GDXRAY or ../shared/data/gdxray)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="override one parameter (repeatable), e.g. -p seed=3")


def _overrides(args):
    return dict(parse_override(t) for t in args.param)


def _config(args):
    o = _overrides(args)
    if args.data:
        o["data"] = args.data
    if args.gdxray_root:
        o["gdxray_root"] = str(Path(args.gdxray_root).resolve())
    return make_config(args.preset, **o)


def cmd_book(args):
    """`weldlab book`: execute the chapters and build the HTML book."""
    from .book import run_book

    run_book(args.preset, args.data, args.gdxray_root, _overrides(args), html=not args.no_html,
             only=args.only, build_dir=args.build_dir, overwrite=args.overwrite, offline_js=not args.online_js,
             cell_timeout=args.cell_timeout)
    return 0


def cmd_datasets(args):
    """`weldlab datasets`: build (or reuse) the patch datasets of a preset."""
    from .datasets import build_or_load

    cfg = _config(args)
    ds = build_or_load(cfg, out_dir=args.out, rebuild=args.rebuild, overwrite=args.overwrite)
    print(f"datasets in {ds.path} (built in {ds.manifest['build_seconds']} s)")
    width = max(map(len, ds.counts))
    for k, v in ds.counts.items():
        print(f"  {k:<{width}}  {v:>8}")
    return 0


def cmd_simulate(args):
    """`weldlab simulate`: write simulated radiographs and their defect masks."""
    import imageio.v3 as iio
    import numpy as np

    from .provenance import atomic_file, check_replaceable
    from .simulate import simulate_radiographs

    cfg = _config(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out}: is a file; expected a folder for the images")
    rs = simulate_radiographs(args.n, cfg.seed, cfg.sim_height, cfg.sim_width, cfg.sim_defects_per_kpx)
    targets = [(out / f"{r.name}.png", out / f"{r.name}_mask.png") for r in rs]
    for path in (p for pair in targets for p in pair):  # all checked before anything is written
        check_replaceable(path, lambda _: False, "--out file", args.overwrite)
    out.mkdir(parents=True, exist_ok=True)
    for r, (image_file, mask_file) in zip(rs, targets):
        with atomic_file(image_file) as tmp:
            iio.imwrite(tmp, np.round(r.image * 255).astype(np.uint8))
        with atomic_file(mask_file) as tmp:
            iio.imwrite(tmp, (r.mask * 255).astype(np.uint8))
        print(image_file)
    return 0


def cmd_calibrate(args):
    """`weldlab calibrate`: print the film statistics of GDXray and simulated radiographs."""
    from .calibration import radiograph_stats
    from .radiographs import load_gdxray
    from .simulate import simulate_radiographs

    cfg = _config(args)
    rows = {}
    for r in load_gdxray(cfg.gdxray_root):
        rows[r.name] = radiograph_stats(r.image, r.mask)
    for r in simulate_radiographs(args.n, cfg.seed, cfg.sim_height, cfg.sim_width, cfg.sim_defects_per_kpx):
        rows[r.name] = radiograph_stats(r.image, r.mask)
    print(json.dumps(rows, indent=1))
    return 0


def cmd_train(args):
    """`weldlab train`: train (or resume, or reuse) one configuration's models."""
    from .datasets import build_or_load
    from .sets import parse
    from .training import train_models

    cfg = _config(args)
    parse(args.model, args.set, "--set")
    ds = build_or_load(cfg)
    for rec in train_models(cfg, ds, args.model, args.set, seeds=args.seeds, verbose=2 if args.quiet else 1):
        print(f"{args.model} {args.set} seed {rec['seed']}: {rec['epochs']} epochs (best {rec['best_epoch']}), "
              f"{rec['wall_seconds']} s, {rec['patches_per_second']} patches/s, backend {rec['backend']}")
    return 0


def cmd_tables(args):
    """`weldlab tables`: measure Tables 2 and 3 and write them with their scores."""
    from .datasets import build_or_load
    from .results import check_tables_writable, measure_tables, table_markdown, write_tables

    cfg = _config(args)
    check_tables_writable(args.out, cfg.preset, cfg.data, args.overwrite)  # before hours of work, not after
    confs = None
    if args.sets:  # "ae:sni" restricts one kind; a plain "D+sni" applies to every kind that has it
        confs = {k: [] for k in args.models}
        for item in args.sets:
            kind, _, name = item.rpartition(":")
            if kind and kind not in confs:
                raise ValueError(f"--sets: {item!r} names the model {kind!r}, expected one of {args.models}")
            for k in ([kind] if kind else args.models):
                confs[k].append(name)
    ds = build_or_load(cfg)
    result, scores = measure_tables(cfg, ds, kinds=args.models, seeds=args.seeds,
                                    train=not args.no_train, confs=confs, available=args.available,
                                    reuse=not args.fresh)
    path = write_tables(result, scores, args.out, overwrite=args.overwrite)
    for kind in args.models:
        print(f"\n{'Table 3 (autoencoder)' if kind == 'ae' else 'Table 2 (CNN)'}: TPR (%) at {cfg.fpr:g} FPR")
        print(table_markdown(result, kind))
    if not result["test_fpr_resolvable"]:
        print(f"WARNING: {result['test_okay']} test okay patches cannot resolve an FPR of {cfg.fpr:g}; "
              "the TPRs are measured at an FPR of 0 on them.")
    print(f"\nwritten: {path}")
    return 0


def cmd_scan(args):
    """`weldlab scan`: scan radiographs, writing a verdict and an overlay per image."""
    from .detector import Detector
    from .scan import scan_files
    from .tiling import check_tile

    check_tile(args.tile)  # before the model loads
    detector = Detector.load(args.model, seed=args.seed, rule=args.rule)
    results = scan_files(args.images, detector, args.out, tile=args.tile, overwrite=args.overwrite)
    n_err = sum(r["verdict"] == "error" for r in results)
    n_rev = sum(r["verdict"] == "review" for r in results)
    n_dup = len(args.images) - len(results)
    print(f"{len(results)} images: {len(results) - n_rev - n_err} accept, {n_rev} review, {n_err} errors"
          f"{f' ({n_dup} given more than once, scanned once)' if n_dup else ''}; verdicts and overlays in {args.out}")
    return 1 if n_err else 0


def cmd_fit(args):
    """`weldlab fit`: fit a detector to a family of films and write its folder."""
    from .fit import fit_detector

    start = None if args.from_scratch else (args.start_from or "shipped")
    detector = fit_detector(args.films, args.out, masks=args.masks, boxes=args.boxes, preset=args.preset,
                            overrides=_overrides(args), seed=args.seed, start_from=start, work=args.work,
                            overwrite=args.overwrite, verbose=2 if args.quiet else 1)
    fit, record = detector.record["fit"], detector.record
    th = record["two_sided_thresholds"]
    print(f"detector written to {detector.folder} in {fit['seconds']:.0f} s: {record['training_set']} autoencoder, "
          f"{record['epochs']} epochs; two-sided thresholds t_mean {th['t_mean']:.4g}, t_std {th['t_std']:.4g}, "
          f"t_quiet {th['t_quiet']:.4g}")
    outside = fit["held_out_films_outside_ranges"]
    print(f"held-out films within the input ranges: {fit['held_out_films_in_range']} of "
          f"{len(fit['calibration_films'])}" + "".join(
              f"\n  {name}: {reason['text']}" for name, reasons in outside.items() for reason in reasons))
    if fit["unused_annotations"]:
        print(f"note: annotations that belong to no film given: {', '.join(fit['unused_annotations'][:5])}")
    print(f"scan with: weldlab scan --model {detector.folder} IMAGE...")
    return 0


def build_parser():
    """The ``weldlab`` command line: one sub-command per stage."""
    parser = argparse.ArgumentParser(prog="weldlab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"weldlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("book", help="execute the chapters and render the HTML book")
    _common(p)
    p.add_argument("--no-html", action="store_true", help="execute the chapters only")
    p.add_argument("--only", nargs="+", metavar="NAME", help="execute only these chapters (no HTML)")
    p.add_argument("--build-dir", metavar="DIR", help="where <data>/<preset>/html goes (default: _build)")
    p.add_argument("--overwrite", action="store_true",
                   help="build into <build-dir>/<data>/<preset> even if it holds files weldlab did not write")
    p.add_argument("--online-js", action="store_true",
                   help="load the widgets' JavaScript from a CDN instead of bundling it (no npm needed; "
                        "chapter 8's controls then need the internet)")
    p.add_argument("--cell-timeout", type=float, metavar="SECONDS",
                   help="fail a chapter whose cell runs longer than this (default: no limit)")
    p.set_defaults(func=cmd_book)

    p = sub.add_parser("datasets", help="build or reuse the patch datasets")
    _common(p)
    p.add_argument("--out", default=None, help="dataset folder (default: artifacts/<data>/<preset>/datasets)")
    p.add_argument("--rebuild", action="store_true", help="rebuild even if a matching dataset exists")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out even if it holds files that are not a weldlab dataset")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("train", help="train the autoencoder or the CNN (resumes if interrupted)")
    _common(p)
    p.add_argument("model", choices=("ae", "cnn"), help="which network")
    p.add_argument("--set", required=True, help="AE: none, D, sni, D+sni, okay+defects (use case 2); "
                   "CNN: D, D+circular, D+circular+partial_circle, D+sni")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default: the preset's)")
    p.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("tables", help="Tables 2 and 3: train (or reuse) and evaluate every configuration")
    _common(p)
    p.add_argument("--models", nargs="+", choices=("ae", "cnn"), default=["ae", "cnn"], help="which tables")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default: the preset's three)")
    p.add_argument("--available", action="store_true",
                   help="measure each configuration on the seeds whose models exist (trains none)")
    p.add_argument("--no-train", action="store_true", help="fail instead of training a missing model")
    p.add_argument("--fresh", action="store_true",
                   help="evaluate every model again (default: reuse the stored evaluation of an unchanged model)")
    p.add_argument("--sets", nargs="+", default=None, metavar="SET",
                   help="only these configurations, e.g. ae:sni cnn:D+sni (default: every column of both tables)")
    p.add_argument("--out", default="book/results", help="folder for the JSON and .npz (default: book/results)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files of the same names in --out that are not weldlab table runs")
    p.set_defaults(func=cmd_tables)

    p = sub.add_parser("scan", help="scan whole radiographs: overlay PNG and JSON verdict per image")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="PNG or TIFF radiographs, 8- or 16-bit grayscale")
    p.add_argument("--model", default=None, metavar="DIR",
                   help="folder with autoencoder.keras and record.json holding thresholds "
                        "(default: the shipped autoencoder trained with SNI)")
    p.add_argument("--seed", type=int, default=0, help="which shipped model (default 0)")
    p.add_argument("--out", default="scan-results", help="output folder (default: scan-results)")
    p.add_argument("--tile", type=int, default=1024,
                   help="output tile side in px, 32 to 8192 (default 1024); memory grows with its square")
    p.add_argument("--rule", choices=("two-sided", "paper"), default="two-sided",
                   help="two-sided (default): too-quiet residuals and images unlike the training films go to "
                        "review too; paper: the paper's OR rule alone (too-large residuals)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace outputs of the same name even if weldlab did not write them for this image")
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("fit", help="fit a detector to your own films of accepted welds")
    p.add_argument("films", nargs="+", metavar="FILM",
                   help="PNG or TIFF films of one digitisation, all 8-bit or all 16-bit, at least 3")
    p.add_argument("--out", required=True, metavar="DIR", help="the detector folder to write")
    known = p.add_mutually_exclusive_group()
    known.add_argument("--masks", metavar="DIR", help="folder of defect masks named as the films (nonzero: defect)")
    known.add_argument("--boxes", metavar="FILE",
                       help="defect boxes in GDXray's ground_truth.txt format (film number, x1 x2 y1 y2)")
    p.add_argument("--preset", choices=PRESETS, default="quick",
                   help="how many patches and how long to train: quick (minutes, default) or standard (hours)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="override one parameter of the preset (repeatable), e.g. -p ae_epochs=20")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the patches and the training")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--start-from", metavar="DIR",
                       help="a trained autoencoder's folder to start from (default: the shipped one)")
    start.add_argument("--from-scratch", action="store_true", help="start from random weights")
    p.add_argument("--work", metavar="DIR", help="patch sets and checkpoints until done (default: OUT.work)")
    p.add_argument("--overwrite", action="store_true", help="replace --out even if weldlab did not write it")
    p.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("simulate", help="write simulated radiographs and masks as PNG")
    _common(p)
    p.add_argument("--n", type=int, default=4, help="number of radiographs")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace images of the same names in --out")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("calibrate", help="simulator vs GDXray statistics as JSON")
    _common(p)
    p.add_argument("--n", type=int, default=10, help="simulated radiographs to measure")
    p.set_defaults(func=cmd_calibrate)
    return parser


def main(argv=None):
    """Run a subcommand; user errors end in one line on stderr.

    Exit status: 0 success, 1 a chapter or the book build failed (or ``scan`` met
    unreadable images), 2 a user error (bad parameter, file or folder; the message names
    it), 130 interrupted (Ctrl-C; outputs are written atomically, so nothing is left
    half-written).
    """
    from .book import BookBuildError, ChapterError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ChapterError, BookBuildError) as exc:
        print(f"weldlab: error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, KeyError, OSError) as exc:  # OSError: not found, exists, permission, ...
        message = str(exc) if not isinstance(exc, OSError) or not exc.filename else (
            f"{exc.filename}: {exc.strerror or exc}")
        print(f"weldlab: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"weldlab {args.command}: interrupted; finished outputs are kept, unfinished ones were removed",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
