"""Training the autoencoder: seeded batches, early stopping, checkpoints that resume.

* :class:`PerturbedPairs` draws the training batches: every augmented okay patch once per
  epoch, each paired with a perturbation drawn anew every epoch (paper §3.3), and the
  crop targets. Batch ``i`` of epoch ``e`` depends only on ``(seed, e, i)``, so batches
  can be made in any order, by any number of workers.
* :func:`train_autoencoder` fits the five-term loss (:mod:`weldlab.losses`) with Adam,
  stops when the validation loss has not improved for ``patience`` epochs ("trained to
  convergence"), and keeps the best weights. After every epoch it writes a checkpoint
  (model with optimizer state + a JSON state file) atomically; called again with the same
  output folder, it resumes from the last completed epoch (weights and optimizer state
  restored; dropout's random stream restarts, so the continuation is reproducible but not
  bit-identical to an uninterrupted run).
* The final model is saved as ``autoencoder.keras`` beside ``record.json`` (preset, data,
  seed, perturbation set, epochs, wall time, patches/s, backend, weldlab version, commit).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import keras
import numpy as np

from . import losses as L
from .config import TRAINING_PARAMETERS
from .datasets import decode
from .models import AE_DROPOUT, ARCHITECTURE_VERSION, build_autoencoder, load_model
from .patches import augment
from .perturbations import apply_perturbation
from .provenance import atomic_file, provenance, write_json

#: Validation: at most this many samples per epoch (the same ones every epoch, made once and
#: kept in memory), so validation costs seconds, not minutes, at the larger presets.
MAX_VALIDATION_SAMPLES = 512

#: Perturbation sets of Table 3 (plus weldlab's D+SNI).
AE_PERTURBATIONS = ("none", "D", "sni", "D+sni")
#: The paper's use case 2: an AE trained to reconstruct okay *and* defect patches, without
#: perturbations, as a pre-filter that passes anything weld-like on to a classifier.
AE_USE_CASE_2 = "okay+defects"


class _EpochBatches(keras.utils.PyDataset):
    """A fixed number of batches per epoch, each a pure function of (seed, epoch, index).

    Subclasses implement ``batch(index, epoch)``; ``fixed=True`` uses epoch 0 always
    (validation sets that must not change between epochs).
    """

    def __init__(self, steps, seed, fixed, **kwargs):
        super().__init__(**kwargs)
        self.steps, self.seed, self.fixed, self.epoch = int(steps), int(seed), bool(fixed), 0
        self._memo = {}  # fixed sets: each batch is made once and reused every epoch

    def __len__(self):
        return self.steps

    def on_epoch_end(self):
        self.epoch += 1

    def _epoch(self, epoch):
        return 0 if self.fixed else (self.epoch if epoch is None else epoch)

    def __getitem__(self, index):
        if not self.fixed:
            return self.batch(index)
        if index not in self._memo:
            self._memo[index] = self.batch(index)
        return self._memo[index]


class PerturbedPairs(_EpochBatches):
    """Batches of (okay, perturbed) patches with their targets.

    Parameters
    ----------
    okay : ndarray, shape (n, 192, 192), uint16 or float32
        Okay patches (uint16 as stored in the datasets, decoded per batch).
    perturbations : list of indexable perturbation sets, or empty
        Each ``pset[indices] -> (delta, support)``; one set is chosen uniformly per
        sample, then one of its members. Empty: no perturbation ("None").
    batch_size : int
    seed : int
    augment_okay : bool
        Use the x6 augmentation (one epoch = 6 n samples); False for validation.
    steps : int, optional
        Batches per epoch (default: all samples once).
    fixed : bool
        Same pairing every epoch (validation).
    """

    def __init__(self, okay, perturbations, batch_size=16, seed=0, augment_okay=True, steps=None,
                 fixed=False, **kwargs):
        if len(okay) == 0:
            raise ValueError("okay: no okay patches to train on")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
        self.okay, self.perturbations = okay, list(perturbations)
        self.batch_size, self.augment_okay = int(batch_size), augment_okay
        self.samples = len(okay) * (6 if augment_okay else 1)
        super().__init__(steps or math.ceil(self.samples / self.batch_size), seed, fixed, **kwargs)

    def batch(self, index, epoch=None):
        """Batch ``index`` of ``epoch`` as NumPy arrays ``(inputs, targets)``."""
        epoch = self._epoch(epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(self.samples)
        start = (index * self.batch_size) % self.samples
        idx = np.take(order, np.arange(start, start + self.batch_size), mode="wrap")
        rng = np.random.default_rng([self.seed, epoch, index, 1])
        if self.augment_okay:
            x = augment(np.asarray(self.okay[idx // 6]), idx % 6)
        else:
            x = np.asarray(self.okay[idx])
        x = decode(x) if x.dtype == np.uint16 else x.astype(np.float32)
        inputs = {"x_ok": x[..., None]}
        if self.perturbations:
            which = rng.integers(0, len(self.perturbations), len(idx))
            delta = np.empty_like(x)
            support = np.empty(x.shape, bool)
            for s, pset in enumerate(self.perturbations):
                sel = np.flatnonzero(which == s)
                if sel.size:
                    d, w = pset[rng.integers(0, len(pset), sel.size)]
                    op = rng.integers(0, 6, sel.size)
                    delta[sel], support[sel] = augment(d, op), augment(w, op)
            inputs["x_per"] = apply_perturbation(x, delta, support)[..., None]
        return inputs, L.training_targets(inputs["x_ok"], perturbed=bool(self.perturbations))


class _Checkpoint(keras.callbacks.Callback):
    """After each epoch: track the best validation loss for early stopping (keeping the
    best weights), halve the learning rate on a plateau of ``lr_patience`` epochs, and save
    the model (with optimizer) and the training state atomically."""

    def __init__(self, folder, state, patience, log=print, lr_patience=None, min_lr=1e-5):
        super().__init__()
        self.folder, self.state, self.patience, self.log = Path(folder), state, int(patience), log
        self.lr_patience, self.min_lr = lr_patience, float(min_lr)

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        st = self.state
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        st["history"].append({"epoch": epoch + 1, **logs, "learning_rate": lr})
        val = logs.get("val_loss", logs.get("loss"))
        if val < st["best_val_loss"]:
            st["best_val_loss"], st["best_epoch"], st["wait"], st["lr_wait"] = val, epoch + 1, 0, 0
            _save_atomic(self.model, self.folder / "best.keras")
        else:
            st["wait"] += 1
            st["lr_wait"] = st.get("lr_wait", 0) + 1
            if self.lr_patience and st["lr_wait"] >= self.lr_patience and lr > self.min_lr:
                self.model.optimizer.learning_rate = max(lr / 2, self.min_lr)
                st["lr_wait"] = 0
                self.log(f"learning rate {lr:.2e} -> {max(lr / 2, self.min_lr):.2e}")
        st["epochs_done"] = epoch + 1
        st["seconds"] += time.perf_counter() - st.pop("_t0", time.perf_counter())
        _save_atomic(self.model, self.folder / "checkpoint.keras")
        write_json(self.folder / "state.json", st)
        st["_t0"] = time.perf_counter()
        if st["wait"] >= self.patience:
            self.log(f"early stop: no improvement of the validation loss for {self.patience} epochs")
            self.model.stop_training = True

    def on_train_begin(self, logs=None):
        self.state["_t0"] = time.perf_counter()


def _save_atomic(model, path):
    with atomic_file(path) as tmp:
        model.save(tmp)


def stale_reason(out, kind, origin=None):
    """Why the model folder ``out`` must not be reused or resumed, or None if it may.

    A folder is stale when it was trained with an older architecture of ``kind``
    (:data:`weldlab.models.ARCHITECTURE_VERSION`) or, when ``origin`` is given, from other
    datasets (its state's ``origin`` or its record's ``dataset_key`` differs).

    Returns
    -------
    str or None
        A short reason, e.g. ``"architecture v1"`` or ``"datasets 1a2b... (now 3c4d...)"``.
    """
    out = Path(out)
    state_file = out / "state.json"
    if not state_file.is_file():
        return None
    try:
        state = json.loads(state_file.read_text())
        version = state.get("architecture", 1)
    except (json.JSONDecodeError, AttributeError):
        return None  # reported by _fit_resumable
    if version != ARCHITECTURE_VERSION[kind]:
        return f"architecture v{version}"
    stored = [state.get("origin")]
    if (out / "record.json").is_file():
        try:
            stored.append(json.loads((out / "record.json").read_text()).get("dataset_key"))
        except (json.JSONDecodeError, AttributeError):
            pass
    for key in stored:
        if origin is not None and key is not None and key != origin:
            return f"datasets {key} (now {origin})"
    return None


def _supersede_if_stale(out, kind, log, origin=None):
    """Move a stale model folder (see :func:`stale_reason`) aside; nothing is deleted.

    Returns the new name of the moved folder, or None when ``out`` is current or empty.
    """
    reason = stale_reason(out, kind, origin)
    if reason is None:
        return None
    tag = reason.split(" (")[0].replace("architecture ", "architecture-").replace("datasets ", "datasets-")
    moved = out.with_name(f"{out.name}.{tag}")
    k = 1
    while moved.exists():
        moved, k = out.with_name(f"{out.name}.{tag}-{k}"), k + 1
    out.rename(moved)
    out.mkdir()
    log(f"{out}: trained with {reason}, not what is asked now; moved to {moved.name}, training afresh")
    return moved


class _KeepFreedMemory(keras.callbacks.Callback):
    """Keep freed memory in the process instead of returning it to the kernel (glibc only).

    TensorFlow's generator dataset (which ``fit`` wraps around a ``PyDataset``) sets
    glibc's ``M_TRIM_THRESHOLD`` to 128 KB once ``fit`` has started, which also freezes the
    mmap threshold there, so every large tensor of every training step was mapped,
    page-faulted in and unmapped again. Measured on the 2-core CPU (AE, SNI, batch 16):
    147,000 page faults per second, and kernel time 1.6 s per step; with the thresholds
    raised, 0.15 s. The mmap threshold cannot be raised past 32 MiB (glibc's maximum; a
    larger value is silently refused), so mmapping is switched off instead (``M_MMAP_MAX``
    0): with only the trim threshold raised, a step of 4 pairs still took 40,000-80,000
    faults, with both ~50. The call costs nothing, so it is made at every batch rather
    than at a guessed moment after TensorFlow's. Elsewhere (not glibc, or another
    backend) it does nothing.

    With these settings alone the count still varied from run to run: in fresh processes
    a step of 4 pairs took 55, 58, 239, 8,233 and 69,389 faults (five runs; 15,111 in a CI
    run). TensorFlow's op threads get their own glibc arenas (by default up to 8 per
    core), which these settings do not govern as they do the main arena, and which
    threads run which ops varies. :meth:`one_arena` (called when this module is imported,
    before a training run's model starts TensorFlow's threads) makes every thread share
    the main arena: 13-21 faults a step in 14 fresh runs out of 14, 0.61-1.00 s a step
    (with the settings alone 0.64-1.14 s). A model built and run before
    ``weldlab.training`` is imported keeps its threads' arenas; training then still
    works, with the varying fault counts.
    """

    _MALLOPT = None

    @classmethod
    def _mallopt(cls):
        if cls._MALLOPT is None:
            import ctypes
            import ctypes.util

            cls._MALLOPT = False
            name = ctypes.util.find_library("c")
            try:
                libc = ctypes.CDLL(name) if name else None
                cls._MALLOPT = getattr(libc, "mallopt", False) if libc is not None else False
                if cls._MALLOPT is not False and keras.backend.backend() != "tensorflow":
                    cls._MALLOPT = False
            except OSError:
                cls._MALLOPT = False
        return cls._MALLOPT

    @classmethod
    def one_arena(cls):
        """Make every thread allocate from glibc's main arena (``M_ARENA_MAX`` 1)."""
        mallopt = cls._mallopt()
        if mallopt:
            mallopt(-8, 1)  # M_ARENA_MAX

    def _apply(self, *args, **kwargs):
        mallopt = self._mallopt()
        if mallopt:
            mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: 1 GiB
            mallopt(-4, 0)  # M_MMAP_MAX: no allocation is mmapped; all stay on the heap

    on_train_batch_begin = on_test_batch_begin = on_predict_batch_begin = _apply


_KeepFreedMemory.one_arena()


def _set_dropout(model, rate):
    """Set the rate of every Dropout layer of ``model`` (sub-models included)."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = float(rate)


def _fit_resumable(build, train, val, out, epochs, patience, seed, verbose, stop_after, log, kind,
                   dropout_epochs=None, lr_patience=None, origin=None):
    """Fit with per-epoch checkpoints, early stopping and resume; return the state dict.

    ``build()`` makes a fresh compiled model (called only when there is no checkpoint).
    A folder trained with an older architecture of ``kind`` is moved aside first.

    ``dropout_epochs``: train the first so many epochs with the model's dropout, then
    switch every Dropout layer off (rate 0) for the rest (None: dropout throughout). The
    early-stopping count and the best validation loss start afresh at the switch.
    ``lr_patience``: halve the learning rate after so many epochs without a better
    validation loss (None: constant). ``origin``: what the model is trained on (a
    description such as the dataset key); a checkpoint made from something else is
    moved aside, not resumed.
    """
    _supersede_if_stale(out, kind, log, origin)
    state_file, ckpt = out / "state.json", out / "checkpoint.keras"
    if state_file.is_file() and ckpt.is_file():
        try:
            state = json.loads(state_file.read_text())
            state["epochs_done"], state["wait"]  # noqa: B018 (the keys resuming needs)
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{state_file}: corrupt training state ({type(exc).__name__}: {exc}); "
                             f"delete {out} to train this model from the start") from exc
        if state["wait"] >= patience or state["epochs_done"] >= epochs:
            log(f"{out.name}: already trained ({state['epochs_done']} epochs)")
            return state
        try:
            model = load_model(ckpt)
        except ValueError as exc:
            raise ValueError(f"{exc}; delete {out} to train this model from the start") from exc
        # Weights and optimizer state are restored; dropout's random stream restarts from
        # (seed, epoch), so a resumed run is reproducible but not bit-identical to an
        # uninterrupted one.
        keras.utils.set_random_seed(seed * 100_003 + state["epochs_done"])
        log(f"resuming {out.name} after epoch {state['epochs_done']}")
    else:
        keras.utils.set_random_seed(seed)
        model = build()
        state = {"epochs_done": 0, "best_val_loss": float("inf"), "best_epoch": 0, "wait": 0,
                 "history": [], "seconds": 0.0, "architecture": ARCHITECTURE_VERSION[kind],
                 "origin": origin}
    done = state["epochs_done"]
    phases = [(done, epochs, None)]
    if dropout_epochs is not None:
        switch = min(int(dropout_epochs), epochs)
        phases = [(done, switch, "dropout"), (max(done, switch), epochs, "no dropout")]
        phases = [p for p in phases if p[0] < p[1]]
    for start, end, phase in phases:
        if phase == "no dropout":
            _set_dropout(model, 0.0)
            if start == switch and state.get("dropout_off_after") is None:
                state.update(best_val_loss=float("inf"), wait=0, dropout_off_after=switch)
                log(f"{out.name}: dropout off from epoch {switch + 1}")
            model.compile(optimizer=model.optimizer, loss=model.loss, metrics=_metrics_of(model))
        train.epoch = start
        callbacks = [_KeepFreedMemory(), _Checkpoint(out, state, patience, log, lr_patience)]
        if stop_after is not None:
            callbacks.append(_StopAfter(done + int(stop_after)))
        model.fit(train, validation_data=val, epochs=end, initial_epoch=start, callbacks=callbacks,
                  verbose=verbose)
        state.pop("_t0", None)
        if model.stop_training or state["wait"] >= patience:
            break
    if stop_after is not None and state["epochs_done"] < epochs and state["wait"] < patience:
        raise KeyboardInterrupt(f"stopped after epoch {state['epochs_done']} (stop_after)")
    return state


def _metrics_of(model):
    """The compiled metrics' names to compile a model again (``accuracy`` or none)."""
    config = getattr(model, "_compile_config", None)
    metrics = (config.config.get("metrics") if config is not None else None) or []
    return list(metrics) if isinstance(metrics, (list, tuple)) else metrics


#: Part of the convergence criterion of an autoencoder (see :func:`convergence`): the
#: residual's RMS on validation okay patches at most this many times their film noise.
CONVERGED_RMS_OVER_NOISE = 2.0


def convergence(autoencoder, val_okay, plateau, fpr=0.001):
    """The convergence entry of an autoencoder's training record.

    An autoencoder is called converged when (1) its validation loss reached a plateau
    (early stopping fired), (2) its residual's RMS on the validation okay patches is at
    most :data:`CONVERGED_RMS_OVER_NOISE` times the film noise of those patches, and (3)
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


def _record(kind, training_set, seed, state, train, batch_size, datasets, cfg):
    samples = state["epochs_done"] * len(train) * batch_size
    return {
        "model": kind,
        "training_set": training_set,
        "seed": seed,
        "epochs": state["epochs_done"],
        "best_epoch": state["best_epoch"],
        "best_val_loss": state["best_val_loss"],
        "batch_size": batch_size,
        "steps_per_epoch": len(train),
        "wall_seconds": round(state["seconds"], 2),
        "patches_per_second": round(samples / state["seconds"], 2) if state["seconds"] else None,
        "backend": keras.backend.backend(),
        "architecture": state.get("architecture", 1),
        "dropout_off_after_epoch": state.get("dropout_off_after"),
        "final_learning_rate": (state["history"][-1].get("learning_rate") if state["history"] else None),
        "dataset_key": datasets.manifest["dataset_key"],
        "data": datasets.manifest["data"],
        "preset": cfg.preset if cfg is not None else datasets.manifest.get("preset"),
        "training_parameters": ({k: getattr(cfg, k) for k in TRAINING_PARAMETERS if k != "chapter_seeds"}
                                if cfg is not None else None),
        **provenance(),
    }


def train_autoencoder(datasets, perturbation="sni", seed=0, out_dir=None, epochs=50, batch_size=16,
                      patience=5, steps_per_epoch=None, val_steps=None, learning_rate=1e-3,
                      verbose=1, cfg=None, stop_after=None, log=print, dropout_epochs=None,
                      lr_patience=None):
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
    cfg : weldlab.config.Config, optional
        Recorded in the JSON record.
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
        Halve the learning rate after so many epochs without a better validation loss.

    Returns
    -------
    dict
        The record written to ``record.json``.
    """
    if perturbation not in (*AE_PERTURBATIONS, AE_USE_CASE_2):
        raise ValueError(f"perturbation: expected one of {(*AE_PERTURBATIONS, AE_USE_CASE_2)}, got {perturbation!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = [] if perturbation in ("none", AE_USE_CASE_2) else perturbation.split("+")
    psets = [datasets.perturbation_set(n) for n in names]
    inputs = datasets.raw("train_okay")
    if perturbation == AE_USE_CASE_2:  # defect patches are inputs to reconstruct, like okay ones
        inputs = np.concatenate([np.asarray(inputs), np.asarray(datasets.raw("train_defect"))])
    # Two worker threads make the next batches while the model trains on the current one.
    train = PerturbedPairs(inputs, psets, batch_size, seed, steps=steps_per_epoch, workers=2)
    n_val = len(datasets.raw("val_okay"))
    val_steps = val_steps or max(1, math.ceil(min(n_val, MAX_VALIDATION_SAMPLES) / batch_size))
    val = PerturbedPairs(datasets.raw("val_okay"), psets, batch_size, seed + 10_000, augment_okay=False,
                         steps=val_steps, fixed=True)

    def build():
        return L.compile_training_model(L.build_training_model(build_autoencoder(seed), bool(psets)),
                                        learning_rate)

    state = _fit_resumable(build, train, val, out, epochs, patience, seed, verbose, stop_after, log, "ae",
                           dropout_epochs=dropout_epochs, lr_patience=lr_patience,
                           origin=datasets.manifest["dataset_key"])
    autoencoder = _extract_autoencoder(load_model(out / "best.keras"))
    _set_dropout(autoencoder, AE_DROPOUT)  # the paper's layer settings (inference ignores them)
    _save_atomic(autoencoder, out / "autoencoder.keras")
    record = _record("autoencoder", perturbation, seed, state, train, batch_size, datasets, cfg)
    record["perturbation"] = perturbation
    record["convergence"] = convergence(autoencoder, datasets["val_okay"], plateau=state["wait"] >= patience)
    write_json(out / "history.json", state["history"])
    write_json(out / "record.json", record)
    return record


#: Training sets of Table 2: okay = 0, everything else = 1.
CNN_TRAINING_SETS = ("D", "D+circular", "D+circular+partial_circle", "D+sni")


class LabelledBatches(_EpochBatches):
    """Class-balanced batches for the supervised CNN.

    Half of every batch is okay patches (label 0, x6 augmented); the other half is label
    1, split evenly between the sources of the training set: real training defect
    patches for D (augmented); for SC, SPC and SNI a generated perturbation pasted into a
    random okay patch (Eq. 2), anew every epoch.

    Parameters
    ----------
    okay : ndarray, shape (n, 192, 192), uint16
    defects : ndarray, shape (m, 192, 192), uint16, or None
        Real defect patches for the ``"D"`` source.
    sources : dict of str -> perturbation set or None
        ``{"D": None, "sni": pset, ...}``; None draws real defect patches from
        ``defects``, a perturbation set pastes its members into okay patches.
    batch_size : int
        Even.
    seed : int
    steps : int, optional
        Batches per epoch (default: every augmented okay patch once, as half batches).
    fixed : bool
        Same batches every epoch (validation).
    """

    def __init__(self, okay, defects, sources, batch_size=32, seed=0, steps=None, fixed=False, **kwargs):
        if int(batch_size) < 2 or int(batch_size) % 2:
            raise ValueError(f"batch_size: expected an even integer >= 2, got {batch_size!r}")
        if any(v is None for v in sources.values()) and (defects is None or len(defects) == 0):
            raise ValueError("defects: a real-defect source (None) needs defect patches")
        self.okay, self.defects, self.sources = okay, defects, dict(sources)
        self.batch_size = int(batch_size)
        super().__init__(steps or math.ceil(6 * len(okay) / (self.batch_size // 2)), seed, fixed, **kwargs)

    def batch(self, index, epoch=None):
        """Batch ``index`` as ``(x, y)``: x (batch, 192, 192, 1) float32, y (batch, 1)."""
        epoch = self._epoch(epoch)
        rng = np.random.default_rng([self.seed, epoch, index, 2])
        half = self.batch_size // 2
        i = rng.integers(0, 6 * len(self.okay), half)
        x_ok = decode(augment(np.asarray(self.okay[i // 6]), i % 6))
        names = list(self.sources)
        which = rng.integers(0, len(names), half)
        pos = np.empty_like(x_ok)
        for s, name in enumerate(names):
            sel = np.flatnonzero(which == s)
            if not sel.size:
                continue
            if self.sources[name] is None:
                j = rng.integers(0, 6 * len(self.defects), sel.size)
                pos[sel] = decode(augment(np.asarray(self.defects[j // 6]), j % 6))
            else:
                base = rng.integers(0, 6 * len(self.okay), sel.size)
                x = decode(augment(np.asarray(self.okay[base // 6]), base % 6))
                d, w = self.sources[name][rng.integers(0, len(self.sources[name]), sel.size)]
                op = rng.integers(0, 6, sel.size)
                pos[sel] = apply_perturbation(x, augment(d, op), augment(w, op))
        x = np.concatenate([x_ok, pos])[..., None]
        y = np.concatenate([np.zeros(half), np.ones(half)]).astype(np.float32)[:, None]
        return x, y


#: Fraction of the real training-defect patches held out to validate the CNN.
CNN_VALIDATION_DEFECTS = 0.1


def split_defect_patches(defects, fraction=CNN_VALIDATION_DEFECTS):
    """Split the real training-defect patches into CNN training and validation parts.

    The split is a fixed random permutation (seed 0), the same for every model seed, so
    the three seeds of a configuration are validated on the same patches. A CNN trained
    on real defect patches must be validated on real defect patches: validating it on
    defects pasted into okay patches (what the autoencoder is validated on) measures a
    different task: in a trial on GDXray its validation accuracy stayed at or below 0.5
    while the training accuracy rose to 0.6.

    Parameters
    ----------
    defects : ndarray, shape (m, 192, 192), uint16
    fraction : float
        In (0, 1).

    Returns
    -------
    train, val : ndarray, shapes (m - k, 192, 192) and (k, 192, 192)
        ``k = max(1, round(fraction * m))``; rows in their original order.
    """
    m = len(defects)
    if m < 2:
        raise ValueError(f"defects: need at least 2 real defect patches to hold some out, got {m}")
    if not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"fraction: expected a number in (0, 1), got {fraction!r}")
    k = min(m - 1, max(1, round(float(fraction) * m)))
    held = np.zeros(m, bool)
    held[np.random.default_rng(0).permutation(m)[:k]] = True
    return np.asarray(defects[np.flatnonzero(~held)]), np.asarray(defects[np.flatnonzero(held)])


def train_cnn(datasets, training_set="D+sni", seed=0, out_dir=None, epochs=50, batch_size=32,
              patience=5, steps_per_epoch=None, val_steps=None, learning_rate=1e-3,
              verbose=1, cfg=None, stop_after=None, log=print, lr_patience=None):
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
    from .models import build_cnn

    if training_set not in CNN_TRAINING_SETS:
        raise ValueError(f"training_set: expected one of {CNN_TRAINING_SETS}, got {training_set!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = training_set.split("+")
    sources = {n: (None if n == "D" else datasets.perturbation_set(n)) for n in names}
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

    state = _fit_resumable(build, train, val, out, epochs, patience, seed, verbose, stop_after, log, "cnn",
                           lr_patience=lr_patience, origin=datasets.manifest["dataset_key"])
    _save_atomic(load_model(out / "best.keras"), out / "cnn.keras")
    record = _record("cnn", training_set, seed, state, train, batch_size, datasets, cfg)
    write_json(out / "history.json", state["history"])
    write_json(out / "record.json", record)
    return record


def _extract_autoencoder(training_model):
    """The inference autoencoder inside a training model (shared encoder/decoder)."""
    enc, dec = training_model.get_layer("encoder"), training_model.get_layer("decoder")
    x = keras.Input(enc.input.shape[1:], name="image")
    return keras.Model(x, dec(enc(x)), name="autoencoder")


class _StopAfter(keras.callbacks.Callback):
    def __init__(self, last_epoch):
        super().__init__()
        self.last_epoch = last_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 >= self.last_epoch:
            self.model.stop_training = True


def model_dir(cfg, kind, training_set, seed):
    """Folder of one trained model: ``<artifacts>/models/<kind>/<set>/seed<k>``."""
    return cfg.artifacts / "models" / kind / training_set / f"seed{seed}"


def train_models(cfg, datasets, kind, training_set, seeds=None, verbose=1, log=print):
    """Train (or resume, or reuse) the models of one configuration, one per seed.

    Parameters
    ----------
    cfg : weldlab.config.Config
        Supplies epochs, batch sizes, steps per epoch, patience and learning rate.
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
    if kind not in ("ae", "cnn"):
        raise ValueError(f"kind: expected 'ae' or 'cnn', got {kind!r}")
    records = []
    for seed in cfg.seeds if seeds is None else seeds:
        out = model_dir(cfg, kind, training_set, seed)
        if kind == "ae":
            rec = train_autoencoder(datasets, training_set, seed, out, cfg.ae_epochs, cfg.ae_batch_size,
                                    cfg.patience, cfg.ae_steps_per_epoch or None, None, cfg.learning_rate,
                                    verbose, cfg, log=log, dropout_epochs=cfg.ae_dropout_epochs,
                                    lr_patience=cfg.lr_patience or None)
        else:
            rec = train_cnn(datasets, training_set, seed, out, cfg.cnn_epochs, cfg.cnn_batch_size,
                            cfg.patience, cfg.cnn_steps_per_epoch or None, None, cfg.learning_rate,
                            verbose, cfg, log=log, lr_patience=cfg.lr_patience or None)
        records.append(rec)
    return records


def chapter_model_dir(cfg, kind, training_set, seed):
    """Folder of the model a chapter uses: the shipped one where it fits, else ``model_dir``.

    The shipped models (``weldlab/pretrained``) fit when the preset is not ``quick``, the
    configuration is the one shipped (AE with SNI, CNN on D+SNI) and they were trained on
    the same data source as ``cfg.data``.

    Returns
    -------
    pathlib.Path
        Holds the model, ``record.json`` and ``history.json`` (once trained).
    """
    from .models import PRETRAINED, pretrained_dir

    if cfg.preset != "quick" and PRETRAINED.get(kind, (None,))[0] == training_set:
        try:
            folder = pretrained_dir(kind, seed)
            if json.loads((folder / "record.json").read_text()).get("data") == cfg.data:
                return folder
        except FileNotFoundError:
            pass
    return model_dir(cfg, kind, training_set, seed)


def chapter_models(cfg, datasets, kind, training_set, seeds=None, log=print):
    """The models a chapter uses: shipped ones where they fit, else trained (or reused).

    See :func:`chapter_model_dir` for when the shipped models are used; otherwise the
    models are trained with :func:`train_models` (or reused from ``artifacts/`` if already
    trained).

    Returns
    -------
    list of (keras.Model, dict)
        Model and record per seed (default: the first ``cfg.chapter_seeds`` seeds).
    """
    seeds = list(cfg.seeds[: cfg.chapter_seeds] if seeds is None else seeds)
    name = "autoencoder.keras" if kind == "ae" else "cnn.keras"
    out = []
    for seed in seeds:
        folder = chapter_model_dir(cfg, kind, training_set, seed)
        if folder == model_dir(cfg, kind, training_set, seed):
            train_models(cfg, datasets, kind, training_set, seeds=[seed], verbose=0, log=log)
        out.append((load_model(folder / name), json.loads((folder / "record.json").read_text())))
    return out
