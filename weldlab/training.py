"""Training the two networks: the trainers, and the run's hyperparameters in one place.

* :func:`train_autoencoder` fits the five-term loss (:mod:`weldlab.losses`, wired by
  :func:`weldlab.models.build_training_model`) with Adam on :class:`weldlab.batches.PerturbedPairs`;
  :func:`train_cnn` fits the supervised CNN with binary cross-entropy on
  :class:`weldlab.batches.LabelledBatches`. Both stop when the validation loss has not
  improved for ``patience`` epochs ("trained to convergence"), keep the best weights, and
  checkpoint and resume through :func:`weldlab.fitting.fit_resumable`.
* :func:`hyperparameters` turns a :class:`~weldlab.config.Config` into the trainers'
  keyword arguments; :func:`train_models` trains a configuration's seeds with them. The
  record (``record.json``, written through :class:`weldlab.trained.TrainedModel`) stores
  the hyperparameters the trainer actually used, so it cannot disagree with its run.
* :func:`current_model` (the run's own model: reused if current for the datasets, else
  trained, or refused with ``train=False``) and :func:`chapter_models` (the shipped model
  where it fits the run, else the run's own) decide when a model is trained.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np

from . import sets
from .batches import LabelledBatches, PerturbedPairs, split_defect_patches
from .config import LR_SCHEDULES, SCALINGS
from .datasets import decode
from .fitting import fit_resumable, set_dropout
from .geometry import check_crop
from .models import (AE_DROPOUT, IntensityScaling, build_autoencoder, build_cnn, build_training_model,
                     compile_training_model, decoder_of, encoder_of, fixed_size, inference_autoencoder, scaling_of)
from .provenance import provenance
from .thresholds import DEFAULT_FPR
from .trained import (TrainedModel, best_network, check_kind, is_trained, model_dir, shipped_fits, shipped_for,
                      stale_reason)

#: Validation: at most this many samples per epoch (the same ones every epoch, made once and
#: kept in memory), so validation costs seconds, not minutes, at the larger presets.
MAX_VALIDATION_SAMPLES = 512
#: The intensity map of ``scaling="affine"`` is fitted to the first so many training okay patches.
SCALING_SAMPLE = 512



#: Part of the convergence criterion of an autoencoder (see :func:`convergence`): the
#: residual's RMS on validation okay patches at most this many times their film noise.
CONVERGED_RMS_OVER_NOISE = 2.0


def convergence(autoencoder, val_okay, plateau, fpr=DEFAULT_FPR):
    """The convergence entry of an autoencoder's training record.

    An autoencoder is called converged when (1) its validation loss reached a plateau
    (early stopping fired, or a cosine schedule ran to its end), (2) its residual's RMS on
    the validation okay patches is at most :data:`CONVERGED_RMS_OVER_NOISE` times the film
    noise of those patches, and (3)
    the ``1 - fpr`` quantile of its per-patch maximum ``|<r>|`` (where t_mean will be
    calibrated) is below the classical blur baseline's: otherwise a blur detects more.

    Parameters
    ----------
    autoencoder : keras.Model
    val_okay : ndarray, shape (n, 192, 192)
    plateau : bool
        Whether training stopped on a validation plateau.

    Returns
    -------
    dict
        :func:`weldlab.evaluate.reconstruction_quality` plus ``plateau``, ``converged``
        and ``criterion`` (the rule in words).
    """
    from .evaluate import reconstruction_quality

    q = reconstruction_quality(autoencoder, val_okay, fpr)
    ok = (bool(plateau) and q["rms_over_noise"] <= CONVERGED_RMS_OVER_NOISE
          and q["window_mean_quantile"] < q["baseline_window_mean_quantile"])
    return {**q, "plateau": bool(plateau), "converged": ok,
            "criterion": (f"validation plateau, residual RMS <= {CONVERGED_RMS_OVER_NOISE:g} x film noise, and "
                          f"the {100 * (1 - fpr):g} % quantile of the patch maximum |<r>| below the blur baseline's")}


def _record(kind, training_set, seed, state, steps, datasets, hyper):
    samples = state["epochs_done"] * steps * hyper["batch_size"]
    return {
        "model": kind,
        "training_set": training_set,
        "seed": seed,
        "epochs": state["epochs_done"],
        "best_epoch": state["best_epoch"],
        "best_val_loss": state["best_val_loss"],
        "batch_size": hyper["batch_size"],
        "steps_per_epoch": steps,
        "wall_seconds": round(state["seconds"], 2),
        "patches_per_second": round(samples / state["seconds"], 2) if state["seconds"] else None,
        "backend": keras.backend.backend(),
        "architecture": state.get("architecture", 1),
        "dropout_off_after_epoch": state.get("dropout_off_after"),
        "final_learning_rate": (state["history"][-1].get("learning_rate") if state["history"] else None),
        "dataset_key": datasets.manifest["dataset_key"],
        "data": datasets.manifest["data"],
        "preset": datasets.manifest.get("preset"),
        "hyperparameters": hyper,
        **provenance(),
    }


def validation_pairs(datasets, perturbation_sets, batch_size, seed, steps):
    """The autoencoder's validation batches, the same pairing every epoch.

    Validation okay patches, each with a fixed perturbation from the seed stream
    ``seed + 10_000``.

    Returns
    -------
    weldlab.batches.PerturbedPairs
    """
    return PerturbedPairs(datasets.raw("val_okay"), perturbation_sets, batch_size, seed + 10_000,
                          augment_okay=False, steps=steps, fixed=True)


def train_autoencoder(datasets, perturbation="sni", *, seed=0, out_dir, epochs=50, batch_size=16,
                      patience=5, steps_per_epoch=None, val_steps=None, learning_rate=1e-3,
                      dropout_epochs=None, lr_patience=None, schedule="plateau", okay_weight=1.0,
                      scaling="none", clean_epochs=0, code_weight=1.0, crop=None, start_from=None, fpr=DEFAULT_FPR,
                      verbose=1, stop_after=None, log=print):
    """Train one autoencoder on a perturbation set, resuming if interrupted.

    Parameters
    ----------
    datasets : weldlab.datasets.PatchDatasets
    perturbation : {"none", "D", "sni", "D+sni", "okay+defects"}
        ``"okay+defects"`` is the paper's use case 2: okay and defect training patches are
        both reconstructed, with no perturbation.
    seed : int
        Seeds the weights (``keras.utils.set_random_seed``), dropout and the batches.
    out_dir : path
        Folder of this model's checkpoint, history, model and record.
    epochs : int
        Upper bound; training stops earlier on a validation plateau.
    batch_size : int
    patience : int
        Epochs without validation improvement before stopping.
    steps_per_epoch, val_steps : int, optional
        Batches per epoch (default: every augmented okay patch once) and per validation
        (default: the validation okay patches, at most ``MAX_VALIDATION_SAMPLES`` pairs).
    stop_after : int, optional
        Stop (as if interrupted) after this many epochs in this call; for tests.
    dropout_epochs : int, optional
        Train the first so many epochs with the paper's dropout (0.12), then with dropout
        off until the validation plateau (None: dropout throughout, as the paper). Our
        choice for the shipped models: with dropout active in training only, the
        inference-mode reconstruction is biased (measured: +0.1 on average, validation
        MSE 0.014 against 0.0015 with dropout active), because dropout changes the
        statistics the ReLU layers after it see; the last phase removes that shift.
    lr_patience : int, optional
        Halve the learning rate after so many epochs without a better validation loss
        (with ``schedule="plateau"`` only).
    schedule : {"plateau", "cosine"}
        ``"plateau"``: ``learning_rate``, halved on plateaus (``lr_patience``);
        ``"cosine"``: decayed from ``learning_rate`` to 1 % of it along a cosine over all
        ``epochs`` (the budget is then ``epochs x steps_per_epoch`` batches; ``patience``
        and ``lr_patience`` are not used, and recorded as ``epochs + 1`` and None: training
        runs to the end of the schedule).
    okay_weight : float
        Weight of the okay terms against the perturbed ones
        (:func:`weldlab.models.compile_training_model`).
    scaling : {"none", "affine", "patch_mean"}
        The parameter-free intensity map around the network
        (:class:`weldlab.models.IntensityScaling`), fitted to the training okay patches;
        the residual terms of the loss are then measured in its units
        (:func:`weldlab.models.compile_training_model`'s ``residual_unit``).
    clean_epochs : int
        Okay-only warm-up: the first so many epochs pair every okay patch with itself.
    code_weight : float
        Weight of the code's L1 term ``L_reg`` (1: the paper's;
        :func:`weldlab.models.compile_training_model`).
    crop : int, optional
        Train on random ``crop`` x ``crop`` windows of the training pairs
        (:func:`weldlab.batches.crop_windows`; a side ``192 - 4k`` of at least 64 px) instead
        of whole patches. The network is fully convolutional, so the same 41,186 weights
        serve both; a 96 px crop costs about a quarter of a patch, so an epoch of crops
        takes a fraction of the time. Validation, the convergence entry and the saved model
        are on whole patches (:func:`weldlab.models.fixed_size`). None: whole patches.
    start_from : path, optional
        A trained autoencoder's folder whose weights the new model starts from (a warm
        start: a second phase with another recipe, or a user's own films); None: random
        initial weights. Its scaling must be the one ``scaling`` fits (both "none", or
        the same map). Recorded as ``start_from`` with the source's own record.
    fpr : float
        The false positive rate of the convergence entry's window statistic (the run's
        ``cfg.fpr``; not a training hyperparameter).

    Returns
    -------
    dict
        The record written to ``record.json``; ``hyperparameters`` holds the arguments
        above (from ``epochs`` to ``code_weight``) as this call used them.
    """
    tset = sets.parse("ae", perturbation, "perturbation")
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"schedule: expected one of {LR_SCHEDULES}, got {schedule!r}")
    if scaling not in SCALINGS:
        raise ValueError(f"scaling: expected one of {SCALINGS}, got {scaling!r}")
    if schedule == "cosine":  # the schedule is the budget: stopping on a plateau would leave the rate high
        lr_patience, patience = None, epochs + 1
    crop = check_crop(crop)
    hyper = _hyperparameters_used(locals())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    psets = [datasets.perturbation_set(n) for n in tset.sources]
    inputs = datasets.raw("train_okay")
    if tset.reconstructs_defects:  # use case 2: defect patches are inputs to reconstruct, like okay ones
        inputs = np.concatenate([np.asarray(inputs), np.asarray(datasets.raw("train_defect"))])
    # Two worker threads make the next batches while the model trains on the current one.
    train = PerturbedPairs(inputs, psets, batch_size, seed, steps=steps_per_epoch, clean_epochs=clean_epochs,
                           crop=crop, workers=2)
    n_val = len(datasets.raw("val_okay"))
    val_steps = val_steps or max(1, math.ceil(min(n_val, MAX_VALIDATION_SAMPLES) / batch_size))
    val = validation_pairs(datasets, psets, batch_size, seed, val_steps)

    intensity = None
    if scaling != "none":  # fitted to a fixed sample, not to every training patch decoded
        sample = decode(datasets.raw("train_okay")[:SCALING_SAMPLE])
        intensity = IntensityScaling.from_patches(sample, patch_mean=scaling == "patch_mean")
    rate = learning_rate
    if schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=epochs * len(train), alpha=0.01)

    source = None if start_from is None else _warm_start_source(start_from, intensity)

    def build():
        ae = build_autoencoder(seed, intensity, any_size=crop is not None)
        if source is not None:
            for part in (encoder_of, decoder_of):
                part(ae).set_weights(part(source.model).get_weights())
        unit = 1.0 if intensity is None else intensity.scale  # residuals in the network's units
        return compile_training_model(build_training_model(ae, tset.perturbed), rate, okay_weight, unit, code_weight)

    state = fit_resumable(build, train, val, out, epochs, patience, seed, verbose, stop_after, log, "ae",
                          dropout_epochs=dropout_epochs, lr_patience=lr_patience,
                          origin=datasets.manifest["dataset_key"])
    autoencoder = inference_autoencoder(best_network(out))
    if crop is not None:  # trained at any size: the same weights in a model of the patch's size
        autoencoder = fixed_size(autoencoder, seed)
    set_dropout(autoencoder, AE_DROPOUT)  # the paper's layer settings (inference ignores them)
    record = _record("ae", perturbation, seed, state, len(train), datasets, hyper)
    record["training_patches"] = len(inputs)
    record["scaling"] = None if intensity is None else intensity.to_dict()
    if source is not None:
        record["start_from"] = {"folder": str(start_from), "training_set": source.record.get("training_set"),
                                "seed": source.record.get("seed"), "dataset_key": source.record.get("dataset_key"),
                                "hyperparameters": source.record.get("hyperparameters"),
                                "start_from": source.record.get("start_from")}
    # A cosine schedule ends at 1 % of its rate: run to its end, it counts as the plateau.
    plateau = state["wait"] >= patience or (schedule == "cosine" and state["epochs_done"] >= epochs)
    record["convergence"] = convergence(autoencoder, datasets["val_okay"], plateau=plateau, fpr=fpr)
    TrainedModel(out, "ae", record, state["history"]).save(autoencoder)
    return record


def _warm_start_source(folder, intensity):
    """The trained autoencoder a warm start copies, checked against the new model's scaling."""
    source = TrainedModel.load(folder, "ae")
    theirs = scaling_of(source.model)
    same = (theirs is None and intensity is None) or (
        theirs is not None and intensity is not None and theirs.patch_mean == intensity.patch_mean
        and np.allclose([theirs.offset, theirs.scale], [intensity.offset, intensity.scale], rtol=1e-6))
    if not same:
        raise ValueError(f"start_from: {folder} was trained with scaling {theirs}, this run uses {intensity}; "
                         "a warm start needs the same intensity map")
    return source


def train_cnn(datasets, training_set="D+sni", *, seed=0, out_dir, epochs=50, batch_size=32,
              patience=5, steps_per_epoch=None, val_steps=None, learning_rate=1e-3,
              lr_patience=None, verbose=1, stop_after=None, log=print):
    """Train one supervised CNN (binary cross-entropy, Adam), resuming if interrupted.

    Parameters
    ----------
    datasets : weldlab.datasets.PatchDatasets
    training_set : {"D", "D+circular", "D+circular+partial_circle", "D+sni"}
        Positive sources (paper: D, D+SC, D+SC+SPC, D+SNI).
    Other parameters as :func:`train_autoencoder`. Validation: the validation okay
    patches and, as positives, the same sources as in training, with a fixed pairing:
    for D, the real defect patches held out by :func:`split_defect_patches` (the same
    kind of input the CNN is trained on); for SC, SPC and SNI, perturbations pasted into
    validation okay patches.

    Returns
    -------
    dict
        The record written to ``record.json``; the model is ``cnn.keras``.
    """
    hyper = _hyperparameters_used(locals())
    tset = sets.parse("cnn", training_set, "training_set")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sources = {n: (None if n == "D" else datasets.perturbation_set(n)) for n in tset.sources}
    train_defects, val_defects = split_defect_patches(datasets.raw("train_defect"))
    train = LabelledBatches(datasets.raw("train_okay"), train_defects, sources,
                            batch_size, seed, steps=steps_per_epoch, workers=2)
    n_val = min(len(datasets.raw("val_okay")), MAX_VALIDATION_SAMPLES // 2)
    val_steps = val_steps or max(1, n_val // (batch_size // 2))
    val = LabelledBatches(datasets.raw("val_okay"), val_defects, sources, batch_size, seed + 10_000,
                          steps=val_steps, fixed=True)

    def build():
        model = build_cnn(seed)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy",
                      metrics=["accuracy"])
        return model

    state = fit_resumable(build, train, val, out, epochs, patience, seed, verbose, stop_after, log, "cnn",
                          lr_patience=lr_patience, origin=datasets.manifest["dataset_key"])
    record = _record("cnn", training_set, seed, state, len(train), datasets, hyper)
    TrainedModel(out, "cnn", record, state["history"]).save(best_network(out))
    return record


#: The trainers' hyperparameters (keyword arguments), recorded as used.
HYPERPARAMETERS = {
    "ae": ("epochs", "batch_size", "patience", "steps_per_epoch", "val_steps", "learning_rate",
           "dropout_epochs", "lr_patience", "schedule", "okay_weight", "scaling", "clean_epochs",
           "code_weight", "crop"),
    "cnn": ("epochs", "batch_size", "patience", "steps_per_epoch", "val_steps", "learning_rate", "lr_patience"),
}


def _hyperparameters_used(arguments):
    names = HYPERPARAMETERS["ae"]  # the AE's are a superset of the CNN's
    return {k: arguments[k] for k in names if k in arguments}


def hyperparameters(cfg, kind):
    """The trainer's keyword arguments for a run: the one place a Config becomes them.

    Parameters
    ----------
    cfg : weldlab.config.Config
    kind : {"ae", "cnn"}

    Returns
    -------
    dict
        Keyword arguments of :func:`train_autoencoder` or :func:`train_cnn`
        (:data:`HYPERPARAMETERS`); a step count of 0 in the preset becomes None (every
        augmented okay patch once per epoch), an ``lr_patience`` of 0 None (constant).

    Examples
    --------
    >>> from weldlab.config import make_config
    >>> from weldlab.training import hyperparameters
    >>> hyperparameters(make_config("quick"), "cnn")["batch_size"]
    16
    """
    prefix = f"{check_kind(kind)}_"
    out = {"epochs": getattr(cfg, prefix + "epochs"), "batch_size": getattr(cfg, prefix + "batch_size"),
           "patience": cfg.patience, "steps_per_epoch": getattr(cfg, prefix + "steps_per_epoch") or None,
           "val_steps": None, "learning_rate": cfg.learning_rate, "lr_patience": cfg.lr_patience or None}
    if kind == "ae":
        out.update(dropout_epochs=cfg.ae_dropout_epochs, schedule=cfg.ae_schedule, okay_weight=cfg.ae_okay_weight,
                   scaling=cfg.ae_scaling, clean_epochs=cfg.ae_clean_epochs, code_weight=cfg.ae_code_weight,
                   crop=cfg.ae_crop or None)
    return out


def train_models(cfg, datasets, kind, training_set, seeds=None, verbose=1, log=print):
    """Train (or resume, or reuse) the models of one configuration, one per seed.

    A model already trained from ``datasets`` with the current architecture is reused; a
    stale one is moved aside and trained afresh (:mod:`weldlab.fitting`).

    Parameters
    ----------
    cfg : weldlab.config.Config
        Its :func:`hyperparameters` and artifact folder.
    datasets : weldlab.datasets.PatchDatasets
    kind : {"ae", "cnn"}
    training_set : str
        Perturbation set (AE) or training set (CNN).
    seeds : sequence of int, optional
        Default ``cfg.seeds``.

    Returns
    -------
    list of dict
        The records, one per seed.
    """
    trainer = {"ae": train_autoencoder, "cnn": train_cnn}[check_kind(kind)]
    hyper = hyperparameters(cfg, kind)
    if kind == "ae":
        hyper["fpr"] = cfg.fpr  # where the convergence entry's window statistic is read
    return [trainer(datasets, training_set, seed=seed, out_dir=model_dir(cfg, kind, training_set, seed),
                    verbose=verbose, log=log, **hyper)
            for seed in (cfg.seeds if seeds is None else seeds)]


def chapter_model(cfg, datasets, kind, training_set, seed, log=None):
    """The model a chapter uses: the shipped one where it fits, else the run's own.

    The run's own model (:func:`model_dir`) is trained, resumed or retrained as needed
    (:func:`train_models`), so it is always current for ``datasets``. Training messages go
    to ``log`` (default: none; a chapter reports the model it got from its record).

    Returns
    -------
    TrainedModel
    """
    folder = shipped_fits(cfg, kind, training_set, seed)
    if folder is None:
        train_models(cfg, datasets, kind, training_set, seeds=[seed], verbose=0, log=log or (lambda *a: None))
        folder = model_dir(cfg, kind, training_set, seed)
    return TrainedModel.load(folder, kind)


def chapter_models(cfg, datasets, kind, training_set, seeds=None, log=None):
    """:func:`chapter_model` for each seed (default: the first ``cfg.chapter_seeds``).

    Returns
    -------
    list of TrainedModel
    """
    seeds = list(cfg.seeds[: cfg.chapter_seeds] if seeds is None else seeds)
    return [chapter_model(cfg, datasets, kind, training_set, seed, log) for seed in seeds]


def current_model(cfg, datasets, kind, training_set, seed, train=True, log=print):
    """The run's own model for ``datasets``: reused if current, else shipped, trained or refused.

    Parameters
    ----------
    train : bool
        False: a missing or stale model is an error naming the folder and why
        (``--no-train``), instead of being trained.

    Returns
    -------
    TrainedModel
        The run's model if it is current; else the model shipped in the package for
        exactly these datasets, if there is one (:func:`weldlab.trained.shipped_for`);
        else a model trained now.
    """
    folder = model_dir(cfg, kind, training_set, seed)
    key = datasets.manifest["dataset_key"]
    missing = not is_trained(folder, kind)
    why = "no trained model" if missing else stale_reason(folder, kind, key)
    if why is not None:
        shipped = shipped_for(kind, training_set, seed, cfg.data, key)
        if shipped is not None:
            log(f"{kind} {training_set} seed {seed}: the shipped model ({shipped})")
            return TrainedModel.load(shipped, kind)
        if not train:
            raise FileNotFoundError(f"{folder}: {why if missing else 'trained with ' + why} "
                                    f"(run `weldlab train {kind} --set {training_set}`)")
        train_models(cfg, datasets, kind, training_set, seeds=[seed], verbose=0, log=log)
    return TrainedModel.load(folder, kind)
