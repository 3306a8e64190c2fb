"""Fitting with per-epoch checkpoints, early stopping and resume.

:func:`fit_resumable` fits a compiled model on batches from :mod:`weldlab.batches` and,
after every epoch, writes a checkpoint (the model with its optimizer state, and a JSON
state with the history) atomically; called again with the same folder, it resumes after
the last completed epoch (weights and optimizer state restored; dropout's random stream
restarts from ``(seed, epoch)``, so the continuation is reproducible but not
bit-identical to an uninterrupted run). A folder whose checkpoint was made from other
datasets or with another architecture is moved aside, never resumed
(:func:`weldlab.trained.stale_reason`).
"""

from __future__ import annotations

import time
from pathlib import Path

import keras

from .models import ARCHITECTURE_VERSION
from .trained import CHECKPOINT, load_checkpoint, save_checkpoint, stale_reason, training_state


class _Checkpoint(keras.callbacks.Callback):
    """Per-epoch bookkeeping: early stopping, learning-rate halving, checkpoints.

    After each epoch: track the best validation loss for early stopping (keeping the best
    weights), halve the learning rate on a plateau of ``lr_patience`` epochs, and save the
    model (with optimizer) and the training state atomically.
    """

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
        best = val < st["best_val_loss"]
        if best:
            st["best_val_loss"], st["best_epoch"], st["wait"], st["lr_wait"] = val, epoch + 1, 0, 0
        else:
            st["wait"] += 1
            st["lr_wait"] = st.get("lr_wait", 0) + 1
            if self.lr_patience and st["lr_wait"] >= self.lr_patience and lr > self.min_lr:
                self.model.optimizer.learning_rate = max(lr / 2, self.min_lr)
                st["lr_wait"] = 0
                self.log(f"learning rate {lr:.2e} -> {max(lr / 2, self.min_lr):.2e}")
        st["epochs_done"] = epoch + 1
        st["seconds"] += time.perf_counter() - st.pop("_t0", time.perf_counter())
        save_checkpoint(self.folder, self.model, st, best=best)
        st["_t0"] = time.perf_counter()
        if st["wait"] >= self.patience:
            self.log(f"early stop: no improvement of the validation loss for {self.patience} epochs")
            self.model.stop_training = True

    def on_train_begin(self, logs=None):
        self.state["_t0"] = time.perf_counter()


def supersede_if_stale(out, kind, log, origin=None):
    """Move a stale model folder (see :func:`weldlab.trained.stale_reason`) aside; nothing is deleted.

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


class KeepFreedMemory(keras.callbacks.Callback):
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
    before a training run's model starts TensorFlow's threads;
    :mod:`weldlab.training` imports this module) makes every thread share
    the main arena: 13-21 faults a step in 14 fresh runs out of 14, 0.61-1.00 s a step
    (with the settings alone 0.64-1.14 s). A model built and run before
    ``weldlab.fitting`` is imported keeps its threads' arenas; training then still
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


KeepFreedMemory.one_arena()


def set_dropout(model, rate):
    """Set the rate of every Dropout layer of ``model`` (sub-models included)."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = float(rate)


def fit_resumable(build, train, val, out, epochs, patience, seed, verbose, stop_after, log, kind,
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
    supersede_if_stale(out, kind, log, origin)
    state = training_state(out) if (out / CHECKPOINT).is_file() else None
    if state is not None:
        if state["wait"] >= patience or state["epochs_done"] >= epochs:
            log(f"{out.name}: already trained ({state['epochs_done']} epochs)")
            return state
        model = load_checkpoint(out)
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
            set_dropout(model, 0.0)
            if start == switch and state.get("dropout_off_after") is None:
                state.update(best_val_loss=float("inf"), wait=0, dropout_off_after=switch)
                log(f"{out.name}: dropout off from epoch {switch + 1}")
            _compile_again(model)
        callbacks = [EpochOfBatches(train), KeepFreedMemory(), _Checkpoint(out, state, patience, log, lr_patience)]
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


def _compile_again(model):
    """Compile a model again as it was compiled, so that its next ``fit`` traces a fresh step.

    Used after :func:`set_dropout`; the optimizer (and its state), losses, loss weights and
    metrics stay.

    The loss weights must come along: compiled without them, Keras sums the autoencoder's
    five terms with weight 1 each, and ``okay_weight``, ``code_weight`` and the residual
    unit of :func:`weldlab.models.compile_training_model` silently stop applying.
    """
    config = getattr(model, "_compile_config", None)
    options = config.config if config is not None else {}
    metrics = options.get("metrics") or []
    model.compile(optimizer=model.optimizer, loss=model.loss, loss_weights=options.get("loss_weights"),
                  metrics=list(metrics) if isinstance(metrics, (list, tuple)) else metrics)


class EpochOfBatches(keras.callbacks.Callback):
    """Tells an epoch-dependent batch source which epoch is being trained.

    Keras calls this before it starts fetching the epoch's batches, with the epoch
    number ``fit`` counts from ``initial_epoch`` (so a resumed run continues where it
    stopped).
    """

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        """Set the batch source's epoch before the epoch's batches are fetched."""
        self.batches.epoch = int(epoch)


class _StopAfter(keras.callbacks.Callback):
    def __init__(self, last_epoch):
        super().__init__()
        self.last_epoch = last_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 >= self.last_epoch:
            self.model.stop_training = True
