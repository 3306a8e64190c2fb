"""Patch datasets: built once from radiographs, stored compactly, reused.

A dataset folder (``<artifacts>/datasets``) holds one ``.npy`` file per array and a
``manifest.json`` with the counts, seeds, parameters and data source. Intensities are
stored as ``uint16`` (``round(x * 65535)``, error below 1e-5, a sixth of an 8-bit gray
level), masks as ``bool``. The folder is written under a temporary name and renamed when
complete, so an interrupted build leaves nothing half-written; a folder whose manifest
matches the requested parameters is loaded instead of rebuilt.

Sets (see chapter 2):

``train_okay``, ``val_okay``
    okay patches of the training radiographs; ``val_okay`` calibrates thresholds.
``train_defect`` (+ ``_mask``)
    defect patches of the training radiographs, the source of the D perturbations
    (``train_D_delta``, ``train_D_support``).
``test_okay``, ``test_defect`` (+ ``_mask``, ``_cnr``, ``_contrast``, ``_class``)
    patches of the held-out radiographs; defects split into low / mid / high contrast.
``test_<type>`` (+ ``_mask``)
    test okay patches with one synthetic indication (five types).

``train_<kind>_delta`` (+ ``_support``) for ``kind`` in ``sni``, ``circular``, ``partial_circle``
    the generated SNI, SC and SPC training perturbations, made once with the datasets from
    their recorded seeds (:class:`weldlab.perturbations.GeneratedPerturbations`, several
    processes) and stored like D, so that training never generates a perturbation: on two
    cores, generating SNI on the fly (about 35 per second per core) took CPU time from the
    training step.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from . import perturbations as pert
from .config import Config
from .patches import CONTRAST_CLASSES, contrast_class, contrast_to_noise, crop, sample_patches
from .provenance import atomic_directory, check_replaceable, provenance, write_json
from .radiographs import load_gdxray
from .simulate import simulate_radiographs

FORMAT_VERSION = 3  # 3: the generated training perturbation sets are stored

#: Table 1 of Lindgren & Zach (2022): unique (and augmented) patch counts of the paper.
PAPER_TABLE1 = {
    "train_okay": 27454, "train_okay_augmented": 164724,
    "train_defect": 11705, "train_defect_augmented": 70230,
    "sni": 112000, "circular": 5000, "partial_circle": 5000,
    "test_okay": 3480, "test_defect_high": 3396, "test_defect_mid": 2898, "test_defect_low": 1830,
    "test_hollow": 200, "test_dogbone": 200, "test_elongated": 200, "test_partial_circle": 200,
    "test_raster": 200,
}
#: The rows of Table 1 that weldlab's datasets reproduce: dataset key -> the table's label.
TABLE1_ROWS = {
    "train_okay": "Train weld okay",
    "train_defect": "Train defects",
    "sni": "Train SNI",
    "circular": "Train synthetic circular (SC)",
    "partial_circle": "Train synthetic partial circle (SPC)",
    "test_okay": "Test weld okay",
    "test_defect_high": "Test defect, high contrast",
    "test_defect_mid": "Test defect, mid contrast",
    "test_defect_low": "Test defect, low contrast",
    "test_hollow": "Test synthetic (each of five types)",
}


def table1(counts):
    """Markdown: the datasets' sizes beside the paper's Table 1 (unique and augmented).

    Parameters
    ----------
    counts : dict
        :attr:`PatchDatasets.counts` (key -> number of patches).

    Returns
    -------
    str
        One row per :data:`TABLE1_ROWS`, and a last one for weldlab's own validation okay
        patches (the paper has none).

    Examples
    --------
    >>> from weldlab.datasets import PAPER_TABLE1, table1
    >>> print(table1(PAPER_TABLE1 | {"val_okay": 2000}).splitlines()[2])
    | Train weld okay | 27,454 | 164,724 | 27,454 | 164,724 |
    """
    from .figures import markdown_table

    def count(table, key):
        return f"{table[key]:,}" if key in table else ""

    rows = [[label, count(counts, key), count(counts, f"{key}_augmented"), count(PAPER_TABLE1, key),
             count(PAPER_TABLE1, f"{key}_augmented")] for key, label in TABLE1_ROWS.items()]
    rows.append(["Validation weld okay (weldlab's own, for thresholds)", count(counts, "val_okay"), "", "", ""])
    return markdown_table(["dataset", "ours (unique)", "ours (augmented)", "paper (unique)", "paper (augmented)"],
                          rows)


_SCALE = 65535.0

# Independent random streams, one per purpose: default_rng([seed, STREAM, ...]).
STREAM_SIM_TRAIN, STREAM_SIM_TEST, STREAM_SAMPLE, STREAM_SPLIT = 1, 2, 3, 4
STREAM_SYNTH_TEST, STREAM_SNI, STREAM_SC, STREAM_SPC = 5, 6, 7, 8
#: Films that no dataset holds (:func:`new_films`).
STREAM_SIM_NEW = 9


def encode(x):
    """Floats in [0, 1] -> uint16."""
    return np.round(np.clip(x, 0.0, 1.0) * _SCALE).astype(np.uint16)


def decode(x):
    """uint16 -> float32 in [0, 1]."""
    return (np.asarray(x, np.float32) / np.float32(_SCALE)).astype(np.float32)


class _Decoded:
    """Lazy float32 view of a uint16 patch array: slices are decoded on access."""

    def __init__(self, raw):
        self.raw = raw

    def __len__(self):
        return len(self.raw)

    @property
    def shape(self):
        return self.raw.shape

    def __getitem__(self, index):
        return decode(self.raw[index])

    def __array__(self, dtype=None, copy=None):
        out = decode(self.raw)
        return out if dtype is None else out.astype(dtype)


def _stream_seed(seed, stream):
    """A 32-bit seed for one named random stream of a master seed."""
    return int(np.random.SeedSequence([int(seed), stream]).generate_state(1)[0])


def load_radiographs(cfg: Config, drawn=None):
    """Training and test radiographs of a configuration.

    Parameters
    ----------
    cfg : Config
    drawn : dict, optional
        On simulated data, if given: filled with ``"train"`` and ``"test"``, one dict per
        film of what the simulator drew for it (:func:`weldlab.simulate.simulate_radiograph`'s
        ``drawn``), in the films' order.

    Returns
    -------
    train, test : list of Radiograph
    """
    if cfg.data == "synthetic":
        kw = _simulator_settings(cfg)
        params = {"train": [], "test": []}
        train = simulate_radiographs(cfg.sim_train_radiographs, _stream_seed(cfg.seed, STREAM_SIM_TRAIN),
                                     drawn=params["train"], **kw)
        test = simulate_radiographs(cfg.sim_test_radiographs, _stream_seed(cfg.seed, STREAM_SIM_TEST),
                                    drawn=params["test"], **kw)
        if drawn is not None:
            drawn.update(params)
        test = [dataclasses.replace(r, name=r.name.replace("sim_", "simtest_")) for r in test]
        return train, test
    radiographs = load_gdxray(cfg.gdxray_root)
    names = {r.name for r in radiographs}
    unknown = set(cfg.gdxray_test) - names
    if unknown:
        raise ValueError(f"gdxray_test: {sorted(unknown)} are not among the GDXray radiographs {sorted(names)}")
    train = [r for r in radiographs if r.name not in cfg.gdxray_test]
    test = [r for r in radiographs if r.name in cfg.gdxray_test]
    if not train or not test:
        raise ValueError("gdxray_test: the split must leave at least one radiograph for training and one for testing")
    return train, test


def _simulator_settings(cfg):
    return dict(height=cfg.sim_height, width=cfg.sim_width, defects_per_kpx=cfg.sim_defects_per_kpx)


def new_films(cfg: Config, n, per_film, indices=None, drawn=None, layers=None):
    """Okay patches of simulated films that none of ``cfg``'s datasets holds.

    The films are drawn as ``cfg``'s training and test films are (same sizes and
    simulator), from a random stream of ``cfg.seed`` that no dataset uses: a sample of the
    film population with which to check how a calibration carries over to films it has
    not seen. Each film gives ``per_film`` okay patches, placed and rotated as the
    datasets place theirs (fewer when it has too little okay area).

    Parameters
    ----------
    cfg : Config
        A configuration on simulated data.
    n : int
        Size of the population the films are drawn from (film ``i`` does not depend on ``n``
        beyond ``i < n``).
    per_film : int
    indices : iterable of int, optional
        Only these films (as they are among the ``n``).
    drawn : list, optional
        If given, each film's drawn simulator parameters are appended to it
        (:func:`weldlab.simulate.simulate_radiograph`'s ``drawn``).
    layers : list, optional
        If given, each film's intermediate maps are appended to it (its ``noise_free``
        film, before grain, among them; :func:`weldlab.simulate.simulate_radiographs`).

    Returns
    -------
    films : list of Radiograph
        Named ``simnew_0001`` ... by their index among the ``n``.
    patches : list of dict
        Per film, :func:`weldlab.patches.sample_patches`' okay part: ``patches`` (k, 192,
        192) float32, ``centres`` (k, 2), ``theta`` (k,).
    """
    if cfg.data != "synthetic":
        raise ValueError(f"data: new films are simulated; expected 'synthetic', got {cfg.data!r}")
    indices = range(int(n)) if indices is None else list(indices)
    films = simulate_radiographs(n, _stream_seed(cfg.seed, STREAM_SIM_NEW), indices=indices, drawn=drawn,
                                 layers=layers, **_simulator_settings(cfg))
    films = [dataclasses.replace(f, name=f.name.replace("sim_", "simnew_")) for f in films]
    patches = [sample_patches(f.image, f.mask, int(per_film), 0, np.random.default_rng([cfg.seed, STREAM_SIM_NEW, i]))[0]
               for f, i in zip(films, indices)]
    return films, patches


def _sample_all(radiographs, n_okay, n_defect, seed, stream, progress, desc):
    """Sample patches from each radiograph and pool them (with their origins)."""
    from tqdm import tqdm

    # Ask each radiograph for 1.5x its share so that radiographs with few okay (or few
    # defect) areas are made up for by the others; the pool is trimmed afterwards.
    per_okay = int(np.ceil(1.5 * n_okay / len(radiographs)))
    per_defect = int(np.ceil(1.5 * n_defect / len(radiographs)))
    pools = {"okay": [], "defect": [], "mask": [], "labels": [], "origin_okay": [], "origin_defect": []}
    for i, r in enumerate(tqdm(radiographs, desc=desc, disable=not progress, unit="radiograph")):
        rng = np.random.default_rng([seed, stream, i])
        okay, defect = sample_patches(r.image, r.mask, per_okay, per_defect, rng, labels=r.labels)
        # Pooled as uint16 (the storage format) to halve the memory of large presets.
        pools["okay"].append(encode(okay["patches"]))
        pools["defect"].append(encode(defect["patches"]))
        pools["mask"].append(defect["masks"])
        if r.labels is not None:
            pools["labels"].append(defect["labels"])
        for kind, d in (("okay", okay), ("defect", defect)):
            pools[f"origin_{kind}"].append(
                np.column_stack([np.full(len(d["theta"]), i), d["centres"], d["theta"]])
            )
    out = {k: np.concatenate(v) for k, v in pools.items() if v}
    return out


def _dominant_label(labels):
    """Most frequent defect type code in the central region of each patch.

    Parameters
    ----------
    labels : ndarray, shape (n, 192, 192), int

    Returns
    -------
    ndarray, shape (n,), int8
    """
    lab = crop(labels).reshape(len(labels), -1).astype(np.int64)
    counts = np.stack([(lab == k).sum(1) for k in range(1, 9)], axis=1)
    return (counts.argmax(1) + 1).astype(np.int8)


def _generate_chunk(args):
    gen, lo, hi = args
    return gen[np.arange(lo, hi)]


#: Perturbations generated per task when a set is made in several processes.
GENERATION_CHUNK = 250


def generate_all(gen, workers=None, progress=False):
    """Every member of a generated perturbation set, made in parallel processes.

    Item ``i`` depends only on ``(gen.seed, i)``, so the result is identical for any
    number of workers.

    Parameters
    ----------
    gen : weldlab.perturbations.GeneratedPerturbations
    workers : int, optional
        Processes (default: the CPU count; 1 runs in this process).

    Returns
    -------
    delta : ndarray, shape (len(gen), 192, 192), float32
    support : ndarray, shape (len(gen), 192, 192), bool
    """
    import os
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    n = len(gen)
    chunks = [(gen, lo, min(lo + GENERATION_CHUNK, n)) for lo in range(0, n, GENERATION_CHUNK)]
    workers = min(workers or os.cpu_count() or 1, len(chunks))
    bar = tqdm(total=n, desc=f"{gen.kind} perturbations", unit="patch", disable=not progress)
    delta = np.empty((n, pert.PATCH, pert.PATCH), np.float32)
    support = np.empty(delta.shape, bool)

    def store(chunk, result):
        delta[chunk[1]:chunk[2]], support[chunk[1]:chunk[2]] = result
        bar.update(chunk[2] - chunk[1])

    if workers <= 1:
        for c in chunks:
            store(c, _generate_chunk(c))
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            for c, result in zip(chunks, pool.map(_generate_chunk, chunks)):
                store(c, result)
    bar.close()
    return delta, support


def is_dataset_folder(path):
    """True if ``path`` holds a weldlab dataset and nothing else.

    That is a ``manifest.json`` and only the ``.npy`` arrays it lists (or, if the manifest
    is unreadable, only ``train_*``, ``val_*`` and ``test_*`` arrays): a folder with any
    other file is not weldlab's to replace.
    """
    path = Path(path)
    names = {p.name for p in path.iterdir()}
    if "manifest.json" not in names:
        return False
    names.discard("manifest.json")
    try:
        return names <= {f"{name}.npy" for name in json.loads((path / "manifest.json").read_text())["arrays"]}
    except (OSError, ValueError, KeyError, TypeError):  # corrupt manifest: judge by the names
        return all(n.endswith(".npy") and n.startswith(("train_", "val_", "test_")) for n in names)


def build_datasets(cfg: Config, out_dir=None, overwrite=False):
    """Build all patch datasets of a configuration and write them atomically.

    Parameters
    ----------
    cfg : Config
    out_dir : str or Path, optional
        Destination (default ``cfg.artifacts / "datasets"``).
    overwrite : bool
        Replace ``out_dir`` even if it holds files that are not a weldlab dataset.

    Returns
    -------
    PatchDatasets

    Raises
    ------
    OutputExistsError
        If ``out_dir`` holds anything but a weldlab dataset and ``overwrite`` is False
        (checked before any work).
    """
    out_dir = Path(out_dir) if out_dir is not None else cfg.artifacts / "datasets"
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"--out {out_dir}: is a file; expected a folder for the datasets")
    check_replaceable(out_dir, is_dataset_folder, "--out", overwrite)
    t0 = time.perf_counter()
    drawn = {}
    train_r, test_r = load_radiographs(cfg, drawn=drawn)
    seed = cfg.seed
    train = _sample_all(train_r, cfg.n_train_okay + cfg.n_val_okay, cfg.n_train_defect, seed,
                        STREAM_SAMPLE, cfg.progress, "training radiographs")
    test = _sample_all(test_r, cfg.n_test_okay, cfg.n_test_defect, seed, STREAM_SAMPLE + 100,
                       cfg.progress, "test radiographs")
    split_rng = np.random.default_rng([seed, STREAM_SPLIT])

    arrays = {}
    # Okay patches of the training radiographs: shuffle, then validation | training.
    # (All pools hold uint16-encoded intensities from here on.)
    order = split_rng.permutation(len(train["okay"]))
    wanted = cfg.n_train_okay + cfg.n_val_okay
    # If the radiographs hold fewer okay patches than asked, both sets shrink in proportion.
    n_val = cfg.n_val_okay if len(order) >= wanted else round(len(order) * cfg.n_val_okay / max(wanted, 1))
    val_idx, tr_idx = order[:n_val], order[n_val : n_val + cfg.n_train_okay]
    arrays["val_okay"] = train["okay"][val_idx]
    arrays["val_okay_origin"] = train["origin_okay"][val_idx]
    arrays["train_okay"] = train["okay"][tr_idx]
    arrays["train_okay_origin"] = train["origin_okay"][tr_idx]
    # Pooled sets are trimmed to the requested size after a shuffle.
    for src, name, n in ((train, "train", cfg.n_train_defect), (test, "test", cfg.n_test_defect)):
        _defect_sets(src, split_rng.permutation(len(src["defect"]))[:n], name, arrays)
    idx = split_rng.permutation(len(test["okay"]))[: cfg.n_test_okay]
    arrays["test_okay"] = test["okay"][idx]
    arrays["test_okay_origin"] = test["origin_okay"][idx]

    # Test defect contrast classes from a measured contrast-to-noise ratio.
    cnr, contrast, _ = contrast_to_noise(_Decoded(arrays["test_defect"]), arrays["test_defect_mask"])
    arrays["test_defect_cnr"] = cnr.astype(np.float32)
    arrays["test_defect_contrast"] = contrast.astype(np.float32)
    arrays["test_defect_class"] = contrast_class(cnr, cfg.cnr_cutoffs)
    train_cnr = contrast_to_noise(_Decoded(arrays["train_defect"]), arrays["train_defect_mask"])[0]
    arrays["train_defect_cnr"] = train_cnr.astype(np.float32)

    # D perturbations from the training defects.
    delta, support = pert.real_defect_perturbations(_Decoded(arrays["train_defect"]), arrays["train_defect_mask"])
    arrays["train_D_delta"] = delta.astype(np.float16)
    arrays["train_D_support"] = support

    # Synthetic test sets: test okay patches + one indication each.
    n_ok = len(arrays["test_okay"])
    synthetic = {}
    if n_ok == 0:
        raise ValueError("the test radiographs yielded no okay patches; cannot build synthetic test sets")
    for j, kind in enumerate(pert.TEST_INDICATIONS):
        rng = np.random.default_rng([seed, STREAM_SYNTH_TEST, j])
        base = rng.integers(0, n_ok, cfg.n_synthetic_test)
        gen_seed = int(rng.integers(2**31))
        x, w = pert.paste_indications(_Decoded(arrays["test_okay"]), kind, base, gen_seed)
        arrays[f"test_{kind}"] = encode(x)
        arrays[f"test_{kind}_mask"] = w
        arrays[f"test_{kind}_base"] = base
        synthetic[kind] = {"count": int(cfg.n_synthetic_test), "seed": gen_seed}

    generated = _generate_sets(cfg, ("sni", "circular", "partial_circle"), arrays)
    classes = np.bincount(arrays["test_defect_class"], minlength=3)
    counts = {
        "train_okay": len(arrays["train_okay"]),
        "train_okay_augmented": 6 * len(arrays["train_okay"]),
        "val_okay": len(arrays["val_okay"]),
        "train_defect": len(arrays["train_defect"]),
        "train_defect_augmented": 6 * len(arrays["train_defect"]),
        "sni": cfg.n_sni,
        "circular": cfg.n_sc,
        "partial_circle": cfg.n_spc,
        "test_okay": len(arrays["test_okay"]),
        **{f"test_defect_{c}": int(classes[i]) for i, c in enumerate(CONTRAST_CLASSES)},
        **{f"test_{k}": int(cfg.n_synthetic_test) for k in pert.TEST_INDICATIONS},
    }
    requested = {
        "train_okay": cfg.n_train_okay, "val_okay": cfg.n_val_okay, "train_defect": cfg.n_train_defect,
        "test_okay": cfg.n_test_okay, "test_defect": cfg.n_test_defect,
    }
    manifest = {
        "format_version": FORMAT_VERSION,
        "dataset_key": cfg.dataset_key(),
        "params": cfg.dataset_params(),
        "preset": cfg.preset,
        "data": cfg.data,
        "train_radiographs": [r.name for r in train_r],
        "test_radiographs": [r.name for r in test_r],
        # on simulated data, what the simulator drew for each film (bead shape, grain, ...)
        "radiograph_params": drawn or None,
        "counts": counts,
        "requested": requested,
        "generated_sets": generated,
        "synthetic_test": synthetic,
        "indication_peaks": pert.indication_peak_amplitudes(),
        "contrast_classes": {"names": list(CONTRAST_CLASSES), "cnr_cutoffs": list(cfg.cnr_cutoffs)},
        "storage": {"intensity": "uint16, x * 65535", "masks": "bool",
                    "perturbation deltas (D, sni, circular, partial_circle)": "float16"},
        "build_seconds": None,
        "provenance": provenance(),
    }
    return _write_datasets(out_dir, arrays, manifest, t0)


def _generate_sets(cfg, kinds, arrays):
    """Make the generated training perturbation sets ``kinds`` into ``arrays``; their specs.

    Parameters
    ----------
    cfg : Config
        Sizes (``n_sni``, ``n_sc``, ``n_spc``), the master seed and ``natural_images``.
    kinds : sequence of {"sni", "circular", "partial_circle"}
    arrays : dict
        Receives ``train_<kind>_delta`` (float16) and ``train_<kind>_support``.

    Returns
    -------
    dict
        The manifest's ``generated_sets``: kind -> size and seed (and SNI's natural images).
    """
    specs = {
        "sni": {"size": cfg.n_sni, "seed": _stream_seed(cfg.seed, STREAM_SNI),
                "natural_images": cfg.natural_images},  # None: scikit-image's images
        "circular": {"size": cfg.n_sc, "seed": _stream_seed(cfg.seed, STREAM_SC)},
        "partial_circle": {"size": cfg.n_spc, "seed": _stream_seed(cfg.seed, STREAM_SPC)},
    }
    generated = {kind: specs[kind] for kind in kinds}
    for kind, spec in generated.items():
        sources = pert.natural_images(cfg.natural_images) if kind == "sni" and cfg.natural_images else None
        gen = pert.GeneratedPerturbations(kind, spec["size"], spec["seed"], sources)
        d, w = generate_all(gen, progress=cfg.progress)
        arrays[f"train_{kind}_delta"], arrays[f"train_{kind}_support"] = d.astype(np.float16), w
    return generated


def _write_datasets(out_dir, arrays, manifest, t0):
    """Write the arrays and their manifest as one dataset folder, atomically."""
    with atomic_directory(out_dir) as tmp:
        for name, arr in arrays.items():
            np.save(tmp / f"{name}.npy", arr)
        manifest["build_seconds"] = round(time.perf_counter() - t0, 2)
        manifest["arrays"] = {
            name: {"shape": list(np.load(tmp / f"{name}.npy", mmap_mode="r").shape),
                   "dtype": str(np.load(tmp / f"{name}.npy", mmap_mode="r").dtype)}
            for name in arrays
        }
        write_json(tmp / "manifest.json", manifest)
    return PatchDatasets(out_dir)


def _defect_sets(pool, idx, name, arrays):
    """The defect patches ``pool[idx]`` as ``<name>_defect`` (+ mask, origin, type) arrays."""
    arrays[f"{name}_defect"] = pool["defect"][idx]
    arrays[f"{name}_defect_mask"] = pool["mask"][idx]
    arrays[f"{name}_defect_origin"] = pool["origin_defect"][idx]
    if "labels" in pool:
        arrays[f"{name}_defect_type"] = _dominant_label(pool["labels"][idx])


def build_family_datasets(train_films, calibration_films, cfg: Config, dataset_key, out_dir, describe=None):
    """The patch sets of a user's film family (:mod:`weldlab.fit`), written atomically.

    Training okay patches (and, where the films' defects are known pixel by pixel,
    defect patches and their D perturbations) come from ``train_films``. The validation
    okay patches, on which the thresholds are calibrated, come from every film in
    proportion to the number of films: patches of the training films that training never
    sees, and patches of ``calibration_films``, which the model never sees at all. Taken
    from two held-out films alone, they missed the family's spread (see
    :data:`weldlab.fit.CALIBRATION_SHARE`). The generated SNI set is made as for the
    book's datasets. There are no test sets.

    Parameters
    ----------
    train_films, calibration_films : list of Radiograph
    cfg : Config
        ``n_train_okay``, ``n_val_okay``, ``n_train_defect`` (0: no D set), ``n_sni``,
        ``seed``, ``progress``.
    dataset_key : str
        The key of the films, their annotations, the split and ``cfg``'s dataset
        parameters (the caller's; stored in the manifest, checked by the trainer).
    out_dir : path
    describe : dict, optional
        More entries for the manifest (where the films came from).

    Returns
    -------
    PatchDatasets
        ``origin`` film indices count the training films first, then the calibration
        films (so the two never share an index).

    Raises
    ------
    ValueError
        Naming the films, when they hold too few okay patches to train or to calibrate.
    """
    from .geometry import PATCH
    from .screening import NEIGHBOURS

    t0 = time.perf_counter()
    n_films = len(train_films) + len(calibration_films)
    n_val_held_out = round(cfg.n_val_okay * len(calibration_films) / n_films)
    n_val_train = cfg.n_val_okay - n_val_held_out
    train = _sample_all(train_films, cfg.n_train_okay + n_val_train, cfg.n_train_defect, cfg.seed, STREAM_SAMPLE,
                        cfg.progress, "training films")
    val = _sample_all(calibration_films, n_val_held_out, 0, cfg.seed, STREAM_SAMPLE + 200, cfg.progress,
                      "calibration films")
    for pool, films, what, least in ((train, train_films, "training", NEIGHBOURS + 1),
                                     (val, calibration_films, "calibration", 1)):
        if len(pool["okay"]) < least:
            per = np.bincount(pool["origin_okay"][:, 0].astype(int), minlength=len(films))
            raise ValueError(f"films: the {what} films hold {len(pool['okay'])} okay {PATCH} px patches "
                             f"({', '.join(f'{r.name}: {n}' for r, n in zip(films, per))}); expected at least "
                             f"{least}: films with more area free of defects (and of the margin around them)")
    val["origin_okay"][:, 0] += len(train_films)
    rng = np.random.default_rng([cfg.seed, STREAM_SPLIT])
    arrays = {}
    order = rng.permutation(len(train["okay"]))  # the training films' patches: validation | training
    if len(order) < cfg.n_train_okay + n_val_train:  # fewer found than asked: both shrink
        n_val_train = round(len(order) * n_val_train / (cfg.n_train_okay + n_val_train))
    held = rng.permutation(len(val["okay"]))[:n_val_held_out]
    arrays["train_okay"] = train["okay"][order[n_val_train:][: cfg.n_train_okay]]
    arrays["train_okay_origin"] = train["origin_okay"][order[n_val_train:][: cfg.n_train_okay]]
    arrays["val_okay"] = np.concatenate([train["okay"][order[:n_val_train]], val["okay"][held]])
    arrays["val_okay_origin"] = np.concatenate([train["origin_okay"][order[:n_val_train]], val["origin_okay"][held]])
    sets_made = ["sni"]
    if len(train["defect"]):
        _defect_sets(train, rng.permutation(len(train["defect"]))[: cfg.n_train_defect], "train", arrays)
        delta, support = pert.real_defect_perturbations(_Decoded(arrays["train_defect"]),
                                                        arrays["train_defect_mask"])
        arrays["train_D_delta"], arrays["train_D_support"] = delta.astype(np.float16), support
        sets_made.insert(0, "D")
    generated = _generate_sets(cfg, ("sni",), arrays)
    counts = {"train_okay": len(arrays["train_okay"]), "train_okay_augmented": 6 * len(arrays["train_okay"]),
              "val_okay": len(arrays["val_okay"]), "train_defect": len(arrays.get("train_defect", ())),
              "sni": cfg.n_sni}
    manifest = {
        "format_version": FORMAT_VERSION, "dataset_key": dataset_key, "params": cfg.dataset_params(),
        "preset": cfg.preset, "data": "films",
        "train_radiographs": [r.name for r in train_films],
        "calibration_radiographs": [r.name for r in calibration_films],
        "test_radiographs": [], "counts": counts, "perturbation_sets": sets_made,
        "requested": {"train_okay": cfg.n_train_okay, "val_okay": cfg.n_val_okay,
                      "train_defect": cfg.n_train_defect},
        "generated_sets": generated, **(describe or {}),
        "storage": {"intensity": "uint16, x * 65535", "masks": "bool", "perturbation deltas (D, sni)": "float16"},
        "build_seconds": None, "provenance": provenance(),
    }
    return _write_datasets(out_dir, arrays, manifest, t0)


def build_or_load(cfg: Config, out_dir=None, rebuild=False, overwrite=False):
    """Load the datasets of ``cfg`` if already built with the same parameters, else build.

    Parameters
    ----------
    cfg : Config
    out_dir : str or Path, optional
    rebuild : bool
        Build even if a matching folder exists.
    overwrite : bool
        Allow replacing a folder that holds files other than a weldlab dataset.

    Returns
    -------
    PatchDatasets
    """
    out_dir = Path(out_dir) if out_dir is not None else cfg.artifacts / "datasets"
    manifest = out_dir / "manifest.json"
    if not rebuild and manifest.is_file():
        try:
            ds = PatchDatasets(out_dir)
        except (ValueError, OSError):
            ds = None  # unreadable: rebuild below
        if ds is not None and ds.manifest.get("dataset_key") == cfg.dataset_key():
            return ds
    return build_datasets(cfg, out_dir, overwrite)


#: The other readings of a synthetic indication's amplitude measured beside the literal one
#: (:meth:`PatchDatasets.test_sets` with ``sensitivity``; :data:`weldlab.perturbations.AMPLITUDE_READINGS`).
SENSITIVITY_READINGS = ("after", "negated")


def sensitivity_name(kind, reading="after"):
    """Name of a synthetic test set under another amplitude reading (:meth:`PatchDatasets.sensitivity_sets`).

    Examples
    --------
    >>> from weldlab.datasets import sensitivity_name
    >>> sensitivity_name("hollow")
    'hollow_after'
    """
    return f"{kind}_{reading}"


class PatchDatasets:
    """Read access to a built dataset folder.

    Parameters
    ----------
    path : str or Path
        Folder with ``manifest.json``.

    Notes
    -----
    ``ds["train_okay"]`` gives float32 intensities in [0, 1]; masks and other arrays come
    back as stored. Arrays are memory-mapped and decoded on access.
    """

    def __init__(self, path):
        self.path = Path(path)
        self._sensitivity = {}
        mf = self.path / "manifest.json"
        if not mf.is_file():
            raise FileNotFoundError(f"{self.path}: no manifest.json; not a weldlab dataset folder")
        try:
            self.manifest = json.loads(mf.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{mf}: corrupt manifest ({exc})") from exc
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{mf}: dataset format {self.manifest.get('format_version')!r}, expected {FORMAT_VERSION}")

    def __contains__(self, name):
        return (self.path / f"{name}.npy").is_file()

    def names(self):
        """Names of the stored arrays."""
        return sorted(p.stem for p in self.path.glob("*.npy"))

    def raw(self, name):
        """The stored array, memory-mapped, without decoding."""
        f = self.path / f"{name}.npy"
        if not f.is_file():
            raise KeyError(f"{name!r}: no such array in {self.path}; have {self.names()}")
        return np.load(f, mmap_mode="r")

    def __getitem__(self, name):
        arr = self.raw(name)
        return decode(arr) if arr.dtype == np.uint16 else np.asarray(arr)

    @property
    def counts(self):
        """Patches per array, as recorded in the manifest."""
        return self.manifest["counts"]

    def test_sets(self, sensitivity=False):
        """The test patches by name: ``okay``, ``high``, ``mid``, ``low`` and the five types.

        Parameters
        ----------
        sensitivity : bool
            Also the five types under each of the other readings of their amplitude,
            :data:`SENSITIVITY_READINGS` (:meth:`sensitivity_sets`, named by
            :func:`sensitivity_name`).

        Returns
        -------
        dict of str -> ndarray, shape (n, 192, 192), float32
        """
        out = {"okay": self["test_okay"]}
        defects, cls = self["test_defect"], self["test_defect_class"]
        for i, c in reversed(list(enumerate(CONTRAST_CLASSES))):
            out[c] = defects[cls == i]
        for kind in pert.TEST_INDICATIONS:
            out[kind] = self[f"test_{kind}"]
        if sensitivity:
            for reading in SENSITIVITY_READINGS:
                out.update(self.sensitivity_sets(reading))
        return out

    def sensitivity_sets(self, reading="after"):
        """The synthetic test sets again, under another reading of the amplitude.

        The paper does not say whether an indication's amplitude is its peak before or
        after the σ = 9 px smoothing; the stored sets follow the literal text ("before"),
        added to the intensities with the sign the paper gives. These sets paste the same
        indications (same shapes, rotations and places, from the recorded seeds) into the
        same test okay patches, with the amplitude read another way ("after" the
        smoothing, or "negated": the literal amplitude subtracted), and are
        stored-precision like the others, so the readings differ in amplitude only.

        Parameters
        ----------
        reading : {"after", "negated", "before"}
            :data:`weldlab.perturbations.AMPLITUDE_READINGS`.

        Returns
        -------
        dict of str -> ndarray, shape (n, 192, 192), float32
            :func:`sensitivity_name` of each synthetic type -> patches.
        """
        if reading in self._sensitivity:  # made once per dataset: every model of a table run is scored on them
            return self._sensitivity[reading]
        okay = _Decoded(self.raw("test_okay"))
        out = {}
        for kind in pert.TEST_INDICATIONS:
            seed = self.manifest["synthetic_test"][kind]["seed"]
            x, _ = pert.paste_indications(okay, kind, np.asarray(self.raw(f"test_{kind}_base")), seed, reading)
            out[sensitivity_name(kind, reading)] = decode(encode(x))
        self._sensitivity[reading] = out
        return out

    def perturbation_set(self, kind, sources=None):
        """A training perturbation set.

        ``"D"``, ``"sni"``, ``"circular"`` (SC) or ``"partial_circle"`` (SPC).

        Parameters
        ----------
        kind : str
        sources : list of ndarray, optional
            Other natural images: an SNI set generated on the fly from them, with the
            recorded seed. Default: the stored set, made with the datasets.

        Returns
        -------
        object
            Indexable: ``delta, support = pset[indices]``, arrays (k, 192, 192).
        """
        gen = self.manifest["generated_sets"]
        if kind != "D" and kind not in gen:
            raise ValueError(f"kind: expected 'D' or one of {sorted(gen)}, got {kind!r}")
        if kind == "D" or sources is None:
            return StoredPerturbations(self.raw(f"train_{kind}_delta"), self.raw(f"train_{kind}_support"))
        return pert.GeneratedPerturbations(kind, gen[kind]["size"], gen[kind]["seed"], sources)


class StoredPerturbations:
    """Perturbations held in arrays (the D set).

    Parameters
    ----------
    delta : ndarray, shape (n, 192, 192)
    support : ndarray, shape (n, 192, 192), bool
    """

    def __init__(self, delta, support):
        self.delta, self.support = delta, support

    def __len__(self):
        return len(self.delta)

    def __getitem__(self, index):
        index = np.atleast_1d(index)
        return np.asarray(self.delta[index], np.float32), np.asarray(self.support[index])
