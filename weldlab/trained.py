"""Trained models on disk: one folder per model, read and written only here.

A model folder holds the network (``autoencoder.keras`` or ``cnn.keras``), ``record.json``
(what it was trained on and how, and the thresholds calibrated for it) and
``history.json`` (losses per epoch); while training, also the checkpoint files that
:mod:`weldlab.fitting` saves and resumes from through :func:`save_checkpoint`,
:func:`load_checkpoint`, :func:`training_state` and :func:`best_network` (``state.json``,
``checkpoint.keras``, ``best.keras``).
:class:`TrainedModel` is that folder as an object. Where a folder lives is decided here
too: :func:`model_dir` (trained by a run, under ``artifacts/``) and :func:`pretrained_dir`
(shipped with the package, used where :func:`shipped_fits` the run). When to train, reuse
or refuse a model is decided in :mod:`weldlab.training` (``current_model``,
``chapter_models``).

A model is *current* for a run when it was trained from the run's datasets (the same
``dataset_key``) with the current architecture (:data:`weldlab.models.ARCHITECTURE_VERSION`);
anything else is stale, and is retrained or refused, never reused (:func:`stale_reason`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .models import ARCHITECTURE_VERSION, kind_of, load_model
from .provenance import atomic_file, write_json
from .sets import SHIPPED
from .thresholds import from_record

#: The kinds of trained model, and the network file of each.
MODEL_FILES = {"ae": "autoencoder.keras", "cnn": "cnn.keras"}
#: The finished model's record (training, provenance, thresholds) and loss history.
RECORD, HISTORY = "record.json", "history.json"
#: Written while training (:mod:`weldlab.fitting`): the training state, the last epoch's
#: model with its optimizer (to resume), and the best epoch's model.
STATE, CHECKPOINT, BEST = "state.json", "checkpoint.keras", "best.keras"
#: Models shipped with the package (see ``weldlab/pretrained/README.md``).
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
#: The data source of the models at the top of :data:`PRETRAINED_DIR`, which ``weldlab scan``
#: uses by default; models trained on another source (the simulated films) are shipped in a
#: folder named after it (``pretrained/synthetic/``).
PRETRAINED_DATA = "gdxray"


def check_kind(kind):
    """``kind`` if it is ``"ae"`` or ``"cnn"``, else a ValueError naming both."""
    if kind not in MODEL_FILES:
        raise ValueError(f"kind: expected 'ae' or 'cnn', got {kind!r}")
    return kind


def read_json(path, what):
    """A JSON file of a model folder, with one-line errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path.parent}: no {path.name} ({what})")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc


@dataclass
class TrainedModel:
    """A trained model's folder: the network, its record and its training history.

    Parameters
    ----------
    folder : path
    kind : {"ae", "cnn"}
    record : dict
        ``record.json``: ``model`` (the kind), ``training_set``, ``seed``, ``dataset_key``,
        ``architecture``, ``hyperparameters``, provenance; calibrated thresholds where
        present (:func:`weldlab.thresholds.from_record`).
    history : list of dict
        One entry per epoch (losses, learning rate).

    Examples
    --------
    >>> from weldlab.trained import TrainedModel, pretrained_dir
    >>> shipped = TrainedModel.load(pretrained_dir("ae", 0))
    >>> shipped.kind, shipped.record["training_set"], shipped.model.count_params()
    ('ae', 'sni', 41186)
    >>> round(shipped.thresholds().t_mean, 4) > 0
    True
    """

    folder: Path
    kind: str
    record: dict
    history: list = field(default_factory=list)
    _model: object = field(default=None, repr=False)

    def __post_init__(self):
        self.folder = Path(self.folder)  # any path-like: a str works as well

    @classmethod
    def load(cls, folder, kind=None):
        """Read a model folder (the network itself is loaded on first use of :attr:`model`).

        Parameters
        ----------
        folder : path
        kind : {"ae", "cnn"}, optional
            Expected kind; default: the record's.

        Raises
        ------
        FileNotFoundError
            If the folder has no record or no network file.
        ValueError
            If the record is not valid JSON or is of another kind.
        """
        folder = Path(folder)
        record = read_json(folder / RECORD, "the model's training record")
        found = kind_of(record)
        if found is None or (kind is not None and found != check_kind(kind)):
            raise ValueError(f"{folder / RECORD}: expected the record of a weldlab "
                             f"{kind or 'ae or cnn'} model, got model {record.get('model')!r}")
        if not (folder / MODEL_FILES[found]).is_file():
            raise FileNotFoundError(f"{folder}: no {MODEL_FILES[found]} beside {RECORD}")
        history_file = folder / HISTORY
        history = read_json(history_file, "training history") if history_file.is_file() else []
        return cls(folder, found, record, history)

    @property
    def model(self):
        """The Keras network (loaded in safe mode on first access)."""
        if self._model is None:
            self._model = load_model(self.folder / MODEL_FILES[self.kind])
        return self._model

    def thresholds(self, rule="paper"):
        """The thresholds calibrated for this model (:func:`weldlab.thresholds.from_record`)."""
        return from_record(self.record, rule, where=str(self.folder / RECORD))

    def stale_reason(self, dataset_key=None):
        """Why this model must not be used for datasets ``dataset_key`` (None: it may)."""
        return stale_reason(self.folder, self.kind, dataset_key)

    def is_current(self, dataset_key=None):
        """Whether the model was trained from ``dataset_key`` with the current architecture."""
        return self.stale_reason(dataset_key) is None

    def save(self, model=None):
        """Write the record, the history and (if given) the network, each atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if model is not None:
            save_network(model, self.folder / MODEL_FILES[self.kind])
            self._model = model
        write_json(self.folder / HISTORY, self.history)
        write_json(self.folder / RECORD, self.record)


def is_trained(folder, kind):
    """Whether ``folder`` holds a finished model of ``kind`` (its network and record)."""
    folder = Path(folder)
    return (folder / RECORD).is_file() and (folder / MODEL_FILES[check_kind(kind)]).is_file()


def save_network(model, path):
    """Save a Keras model to ``path`` atomically (a killed save leaves the old file)."""
    with atomic_file(path) as tmp:
        model.save(tmp)


def save_checkpoint(folder, model, state, best=False):
    """Save one epoch's checkpoint, each file atomically.

    The model with its optimizer (:data:`CHECKPOINT`), the training state (:data:`STATE`)
    and, if this epoch is the best so far, the model as the best one (:data:`BEST`).
    """
    folder = Path(folder)
    if best:
        save_network(model, folder / BEST)
    save_network(model, folder / CHECKPOINT)
    write_json(folder / STATE, state)


def load_checkpoint(folder):
    """The last epoch's model (with optimizer) of an interrupted training run.

    Raises
    ------
    ValueError
        Naming the file, when it cannot be loaded, and how to start again.
    """
    path = Path(folder) / CHECKPOINT
    try:
        return load_model(path)
    except ValueError as exc:
        raise ValueError(f"{exc}; delete {path.parent} to train this model from the start") from exc


def best_network(folder):
    """The best epoch's model of a training run (by validation loss)."""
    return load_model(Path(folder) / BEST)


def training_state(folder):
    """The checkpoint state (:data:`STATE`) of a model folder, or None if there is none.

    Raises
    ------
    ValueError
        If the file is there but not a training state.
    """
    path = Path(folder) / STATE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
        state["epochs_done"], state["wait"]  # noqa: B018 (the keys resuming needs)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: corrupt training state ({type(exc).__name__}: {exc}); "
                         f"delete {path.parent} to train this model from the start") from exc
    return state


def stale_reason(folder, kind, dataset_key=None):
    """Why the model folder must not be reused or resumed, or None if it may.

    A folder is stale when its model (or checkpoint) was trained with another architecture
    of ``kind`` or, when ``dataset_key`` is given, from other datasets. An empty folder,
    or one whose files cannot be read, is not stale (there is nothing to reuse; the
    trainer reports unreadable files itself).

    Returns
    -------
    str or None
        A short reason, e.g. ``"architecture v1 (now v2)"`` or ``"datasets 1a2b... (now 3c4d...)"``.
    """
    folder = Path(folder)
    entries = []
    for name in (RECORD, STATE):
        try:
            entry = read_json(folder / name, name) if (folder / name).is_file() else None
        except ValueError:
            entry = None
        if isinstance(entry, dict):
            entries.append((entry.get("architecture", 1), entry.get("dataset_key", entry.get("origin"))))
    for version, key in entries:
        if version != ARCHITECTURE_VERSION[check_kind(kind)]:
            return f"architecture v{version} (now v{ARCHITECTURE_VERSION[kind]})"
        if dataset_key is not None and key is not None and key != dataset_key:
            return f"datasets {key} (now {dataset_key})"
    return None


def model_dir(cfg, kind, training_set, seed):
    """Folder of one model trained by a run: ``<artifacts>/models/<kind>/<set>/seed<k>``."""
    return cfg.artifacts / "models" / check_kind(kind) / training_set / f"seed{seed}"


def shipped_root(data=PRETRAINED_DATA):
    """The folder of the models shipped for a data source (:data:`PRETRAINED_DATA`: the top)."""
    return PRETRAINED_DIR if data == PRETRAINED_DATA else PRETRAINED_DIR / data


def pretrained_dir(kind, seed=0, data=PRETRAINED_DATA):
    """Folder of a shipped model: ``weldlab/pretrained/[<data>/]<kind>/<set>/seed<k>``.

    Parameters
    ----------
    kind : {"ae", "cnn"}
    seed : int
    data : {"gdxray", "synthetic"}
        The data source it was trained on (:func:`shipped_root`).

    Raises
    ------
    FileNotFoundError
        If no such model is shipped.
    """
    folder = shipped_root(data) / check_kind(kind) / SHIPPED[kind] / f"seed{int(seed)}"
    if not (folder / MODEL_FILES[kind]).is_file():
        raise FileNotFoundError(f"{folder}: no shipped {kind} model for seed {seed} trained on {data} data")
    return folder


def load_pretrained(kind, seed=0, data=PRETRAINED_DATA):
    """A shipped model (:class:`TrainedModel`): network, record with thresholds, history."""
    return TrainedModel.load(pretrained_dir(kind, seed, data), kind)


def shipped_for(kind, training_set, seed, data, dataset_key):
    """The folder of a shipped model trained on exactly these datasets, or None.

    Any shipped configuration counts (the campaign's models for the paper's tables as well
    as the ones the chapters load), if its record names ``dataset_key``: the datasets a
    preset builds from a data source, so a table run at that preset can use it.
    """
    folder = shipped_root(data) / check_kind(kind) / training_set / f"seed{int(seed)}"
    if not is_trained(folder, kind):
        return None
    record = read_json(folder / RECORD, "record")
    return folder if record.get("dataset_key") == dataset_key and record.get("data") == data else None


def shipped_configurations(kind, data, dataset_key):
    """``(training set, seed)`` of every model of ``kind`` shipped for exactly these datasets.

    Examples
    --------
    >>> from weldlab.trained import shipped_configurations
    >>> shipped_configurations("cnn", "gdxray", "ac9faca09d432205")[:4]
    [('D', 0), ('D', 1), ('D', 2), ('D+circular', 0)]
    >>> shipped_configurations("ae", "gdxray", "no such datasets")
    []
    """
    root = shipped_root(data) / check_kind(kind)
    found = [(folder.parent.name, int(folder.name[4:])) for folder in root.glob("*/seed*")]
    return sorted(c for c in found if shipped_for(kind, *c, data, dataset_key) is not None)


#: Presets whose chapters use the shipped models of a data source instead of training
#: their own: GDXray's quick chapters train small models (the training path in every
#: build); on simulated films every preset uses the shipped ones, so that ``make book``
#: shows models that work.
SHIPPED_PRESETS = {"gdxray": ("standard", "paper"), "synthetic": ("quick", "standard", "paper")}


def shipped_fits(cfg, kind, training_set, seed):
    """The shipped model's folder if it fits the run ``cfg``, else None.

    It fits when the configuration is the one shipped (AE with SNI, CNN on D+SNI), a model
    trained on ``cfg.data`` is shipped for that seed, and the preset is one of
    :data:`SHIPPED_PRESETS` for that source.
    """
    if cfg.preset not in SHIPPED_PRESETS.get(cfg.data, ()) or SHIPPED.get(kind) != training_set:
        return None
    try:
        folder = pretrained_dir(kind, seed, cfg.data)
    except FileNotFoundError:
        return None
    return folder if read_json(folder / RECORD, "record").get("data") == cfg.data else None
