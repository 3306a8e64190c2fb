"""Presets and parameters shared by the CLI, the chapters and the tests.

A preset is a flat YAML file of parameters (``weldlab/presets/<name>.yaml``); papermill
takes the same file with ``-f``. :class:`Config` holds and validates them; its defaults
are the ``quick`` preset, so a chapter run without parameters is a quick run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from .geometry import check_crop
from .thresholds import DEFAULT_FPR

PRESETS = ("quick", "standard", "paper")
DATA_SOURCES = ("synthetic", "gdxray")
PRESET_DIR = Path(__file__).resolve().parent / "presets"
#: Parameters of training only: changing them never rebuilds the datasets.
TRAINING_PARAMETERS = ("seeds", "ae_epochs", "ae_batch_size", "ae_steps_per_epoch", "cnn_epochs",
                       "cnn_batch_size", "cnn_steps_per_epoch", "patience", "learning_rate",
                       "ae_dropout_epochs", "lr_patience", "chapter_seeds", "ae_schedule", "ae_okay_weight",
                       "ae_scaling", "ae_clean_epochs", "ae_code_weight", "ae_crop")
#: The autoencoder's learning-rate schedules (:func:`weldlab.training.train_autoencoder`).
LR_SCHEDULES = ("plateau", "cosine")
#: Intensity maps around the autoencoder (:class:`weldlab.models.IntensityScaling`).
SCALINGS = ("none", "affine", "patch_mean")
#: Parameters of evaluation only: changing them rebuilds nothing and retrains nothing.
EVALUATION_PARAMETERS = ("fpr",)
#: The recorded runs the book shows (table runs, convergence records, step speeds), committed
#: with the repository: its ``book/results``, relative to the repository root (where the CLI
#: and ``scripts/`` run; the book runner passes the absolute folder to the chapters).
RESULTS_ROOT = "book/results"
#: Parameters that are folders or display settings, not part of what a run computes.
PATH_PARAMETERS = ("artifacts_root", "results_root", "gdxray_root", "progress")


@dataclass(frozen=True)
class Config:
    """All parameters of a weldlab run.

    Attributes
    ----------
    preset : str
        ``quick``, ``standard`` or ``paper``.
    data : str
        ``synthetic`` (the embedded simulator) or ``gdxray``.
    gdxray_root : str or None
        GDXray folder; None means ``$WELDLAB_GDXRAY`` or ``../shared/data/gdxray``.
    artifacts_root : str
        Folder under which ``<data>/<preset>/`` holds datasets, models and results.
    results_root : str
        Folder of the recorded runs the book shows (:data:`RESULTS_ROOT`).
    seed : int
        Master seed of everything random in the datasets.
    sim_train_radiographs, sim_test_radiographs : int
        Simulated radiographs for training and for testing.
    sim_height, sim_width : int
        Their size in px.
    sim_defects_per_kpx : float
        Mean defects per 1000 px of weld length.
    gdxray_test : tuple of str
        GDXray radiographs held out for testing (the rest train).
    n_train_okay, n_val_okay, n_train_defect, n_test_okay, n_test_defect : int
        Unique patches wanted (fewer when the radiographs do not hold enough).
    n_sni, n_sc, n_spc : int
        Sizes of the generated SNI, circular and partial-circle training sets.
    n_synthetic_test : int
        Patches per synthetic test type.
    cnr_cutoffs : tuple of float
        Low/mid and mid/high contrast-to-noise cut-offs of the test defect classes.
    natural_images : str or None
        Folder of natural images for SNI; None uses scikit-image's.
    seeds : tuple of int
        Seeds of the independently trained models per configuration (paper: three).
    ae_epochs, cnn_epochs : int
        Upper bounds on epochs (training stops earlier on a validation plateau).
    ae_batch_size, cnn_batch_size : int
    ae_steps_per_epoch, cnn_steps_per_epoch : int
        Batches per epoch; 0 means every augmented okay patch once.
    patience : int
        Epochs without validation improvement before early stopping.
    learning_rate : float
        Adam's initial learning rate.
    ae_dropout_epochs : int
        Epochs the autoencoder trains with the paper's dropout before dropout is switched
        off for the rest of its training (see :func:`weldlab.training.train_autoencoder`).
    lr_patience : int
        Halve the learning rate after this many epochs without a better validation loss
        (0: constant).
    ae_schedule : {"plateau", "cosine"}
        The autoencoder's learning-rate schedule (:func:`weldlab.training.train_autoencoder`):
        halved on plateaus (``lr_patience``), or a cosine decay over ``ae_epochs``.
    ae_okay_weight : float
        Weight of the autoencoder's two okay loss terms against the perturbed ones.
    ae_scaling : {"none", "affine", "patch_mean"}
        The parameter-free intensity map around the autoencoder
        (:class:`weldlab.models.IntensityScaling`).
    ae_clean_epochs : int
        Okay-only warm-up epochs of the autoencoder (each okay patch paired with itself).
    ae_code_weight : float
        Weight of the autoencoder's code L1 term ``L_reg`` (1: the paper's 0.01).
    ae_crop : int
        Train the autoencoder on random crops of this side (``192 - 4k`` px, at least 64;
        :func:`weldlab.training.train_autoencoder`'s ``crop``); 0: whole patches.
    chapter_seeds : int
        How many of ``seeds`` the model chapters (4, 6) train or load.
    fpr : float
        Patch-level false positive rate at which every threshold is calibrated on okay
        patches (paper: 0.001).
    progress : bool
        Show progress bars.
    """

    preset: str = "quick"
    data: str = "synthetic"
    gdxray_root: str | None = None
    artifacts_root: str = "artifacts"
    results_root: str = RESULTS_ROOT
    seed: int = 0
    sim_train_radiographs: int = 24
    sim_test_radiographs: int = 4
    sim_height: int = 600
    sim_width: int = 1200
    sim_defects_per_kpx: float = 4.0
    gdxray_test: tuple = ("W0001_0004", "W0001_0005", "W0001_0010")
    n_train_okay: int = 300
    n_val_okay: int = 120
    n_train_defect: int = 150
    n_test_okay: int = 300
    n_test_defect: int = 240
    n_sni: int = 2000
    n_sc: int = 500
    n_spc: int = 500
    n_synthetic_test: int = 40
    cnr_cutoffs: tuple = (3.0, 7.0)
    natural_images: str | None = None
    seeds: tuple = (0, 1, 2)
    ae_epochs: int = 3
    ae_batch_size: int = 8
    ae_steps_per_epoch: int = 12
    cnn_epochs: int = 3
    cnn_batch_size: int = 16
    cnn_steps_per_epoch: int = 12
    patience: int = 5
    learning_rate: float = 1e-3
    ae_dropout_epochs: int = 1
    lr_patience: int = 2
    chapter_seeds: int = 1
    ae_schedule: str = "plateau"
    ae_okay_weight: float = 1.0
    ae_scaling: str = "none"
    ae_clean_epochs: int = 0
    ae_code_weight: float = 1.0
    ae_crop: int = 0
    fpr: float = DEFAULT_FPR
    progress: bool = True

    def __post_init__(self):
        self._check_scalars()
        self._check_lists()
        self._check_training()

    def _check_scalars(self):
        if self.preset not in PRESETS:
            raise ValueError(f"preset: expected one of {PRESETS}, got {self.preset!r}")
        if self.data not in DATA_SOURCES:
            raise ValueError(f"data: expected one of {DATA_SOURCES}, got {self.data!r}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in ("int",) and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{f.name}: expected an integer, got {value!r}")
            if f.type in ("int",) and value < 0:
                raise ValueError(f"{f.name}: expected a non-negative integer, got {value!r}")
        for name in ("sim_train_radiographs", "sim_test_radiographs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected at least 1, got {getattr(self, name)!r}")
        if min(self.sim_height, self.sim_width) < 300:
            raise ValueError(
                f"sim_height, sim_width: {self.sim_height}x{self.sim_width} px cannot hold "
                "rotated 192 px patches; use at least 300 px per side"
            )
        if not (isinstance(self.sim_defects_per_kpx, (int, float)) and self.sim_defects_per_kpx >= 0):
            raise ValueError(f"sim_defects_per_kpx: expected a number >= 0, got {self.sim_defects_per_kpx!r}")

    def _check_lists(self):
        examples = {"cnr_cutoffs": "[3.0, 7.0]", "seeds": "[0, 1, 2]", "gdxray_test": "[W0001_0004, W0001_0005]"}
        for name, example in examples.items():
            if not isinstance(getattr(self, name), (list, tuple)):
                raise ValueError(f"{name}: expected a list such as {example}, got {getattr(self, name)!r}")
        cut = tuple(self.cnr_cutoffs)
        if (len(cut) != 2 or any(isinstance(c, bool) or not isinstance(c, (int, float)) for c in cut)
                or not 0 <= cut[0] < cut[1]):
            raise ValueError(f"cnr_cutoffs: expected (low_mid, mid_high) with 0 <= a < b, got {self.cnr_cutoffs!r}")
        object.__setattr__(self, "cnr_cutoffs", tuple(float(c) for c in cut))
        if not all(isinstance(name, str) for name in self.gdxray_test):
            raise ValueError(f"gdxray_test: expected radiograph names such as W0001_0004, got {self.gdxray_test!r}")
        object.__setattr__(self, "gdxray_test", tuple(self.gdxray_test))
        seeds = tuple(self.seeds)
        if not seeds or any(isinstance(v, bool) or not isinstance(v, int) for v in seeds):
            raise ValueError(f"seeds: expected a non-empty list of integers, got {self.seeds!r}")
        object.__setattr__(self, "seeds", seeds)

    def _check_training(self):
        if self.cnn_batch_size % 2:
            raise ValueError(f"cnn_batch_size: expected an even number (half okay, half not), got {self.cnn_batch_size!r}")
        for name in ("ae_epochs", "ae_batch_size", "cnn_epochs", "cnn_batch_size", "patience", "chapter_seeds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected at least 1, got {getattr(self, name)!r}")
        if not (isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate < 1):
            raise ValueError(f"learning_rate: expected a number in (0, 1), got {self.learning_rate!r}")
        if self.ae_schedule not in LR_SCHEDULES:
            raise ValueError(f"ae_schedule: expected one of {LR_SCHEDULES}, got {self.ae_schedule!r}")
        if self.ae_scaling not in SCALINGS:
            raise ValueError(f"ae_scaling: expected one of {SCALINGS}, got {self.ae_scaling!r}")
        for name, zero_allowed in (("ae_okay_weight", False), ("ae_code_weight", True)):  # loss weights
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (
                    value == 0 and not zero_allowed):
                raise ValueError(f"{name}: expected a number {'>= 0' if zero_allowed else '> 0'}, got {value!r}")
        check_crop(self.ae_crop or None, "ae_crop")
        if isinstance(self.fpr, bool) or not (isinstance(self.fpr, (int, float)) and 0 < self.fpr < 1):
            raise ValueError(f"fpr: expected a rate in (0, 1) such as 0.001, got {self.fpr!r}")

    @property
    def artifacts(self) -> Path:
        """Folder of this run's artifacts: ``<artifacts_root>/<data>/<preset>``."""
        return Path(self.artifacts_root) / self.data / self.preset

    def dataset_params(self) -> dict:
        """The parameters that determine the datasets.

        Everything but paths and display, and on simulated data the simulator's version
        (:data:`~weldlab.simulate.SIMULATOR_VERSION`).
        """
        skip = {"preset", *PATH_PARAMETERS, *TRAINING_PARAMETERS, *EVALUATION_PARAMETERS}
        out = {}
        for f in dataclasses.fields(self):
            if f.name in skip:
                continue
            if self.data == "synthetic" and f.name == "gdxray_test":
                continue
            if self.data == "gdxray" and f.name.startswith("sim_"):
                continue
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        if self.data == "synthetic":
            from .simulate import SIMULATOR_VERSION

            out["simulator_version"] = SIMULATOR_VERSION
        return out

    def dataset_key(self) -> str:
        """Short hash of :meth:`dataset_params`, stored in the dataset manifest."""
        blob = json.dumps(self.dataset_params(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def known_parameters():
    """Names of all parameters a preset or an override may set."""
    return [f.name for f in dataclasses.fields(Config)]


def preset_file(name) -> Path:
    """Path of a preset's YAML parameter file."""
    if name not in PRESETS:
        raise ValueError(f"preset: expected one of {PRESETS}, got {name!r}")
    return PRESET_DIR / f"{name}.yaml"


def load_preset(name) -> dict:
    """Parameters of a preset as a dict (what papermill receives)."""
    with open(preset_file(name)) as fh:
        params = yaml.safe_load(fh) or {}
    unknown = set(params) - set(known_parameters())
    if unknown:
        raise ValueError(f"preset {name!r}: unknown parameters {sorted(unknown)}")
    return params


def parse_override(text):
    """Parse ``name=value`` from the command line (value read as YAML).

    Returns
    -------
    tuple
        ``(name, value)``.
    """
    if "=" not in text:
        raise ValueError(f"parameter override {text!r}: expected NAME=VALUE")
    name, raw = text.split("=", 1)
    name = name.strip()
    if name not in known_parameters():
        raise ValueError(
            f"parameter override {text!r}: unknown parameter {name!r}; known: {', '.join(known_parameters())}"
        )
    return name, yaml.safe_load(raw)


def make_config(preset="quick", **overrides) -> Config:
    """A validated :class:`Config` from a preset plus overrides.

    Parameters
    ----------
    preset : str
    **overrides
        Any of :func:`known_parameters`; ``None`` values are ignored.

    Examples
    --------
    >>> from weldlab.config import make_config
    >>> cfg = make_config("standard", data="gdxray", fpr=0.01)
    >>> cfg.preset, cfg.data, cfg.fpr, str(cfg.artifacts)
    ('standard', 'gdxray', 0.01, 'artifacts/gdxray/standard')
    """
    params = load_preset(preset)
    params["preset"] = preset
    for k, v in overrides.items():
        if k not in known_parameters():
            raise ValueError(f"{k}: unknown parameter; known: {', '.join(known_parameters())}")
        if v is not None:
            params[k] = v
    return Config(**params)


def banner(cfg: Config, recorded=None) -> str:
    """Markdown note that heads every chapter: what the page was computed with.

    Parameters
    ----------
    cfg : Config
        The chapter's parameters.
    recorded : dict, optional
        A recorded table run (:func:`weldlab.results.load_tables`) that the page shows
        instead of computing: the note then names the run's preset and data source, which
        need not be the book's.
    """
    sources = {"synthetic": "simulated radiographs", "gdxray": "GDXray radiographs"}
    if recorded is None:
        preset = cfg.preset
        text = (f"**Computed with** preset `{cfg.preset}` on {sources[cfg.data]}, seed {cfg.seed}. "
                f"Artifacts: `{Path(cfg.artifacts_root).name}/{cfg.data}/{cfg.preset}/`.")
    else:
        preset = recorded["preset"]
        text = (f"**Shown from a recorded run**: preset `{recorded['preset']}` on "
                f"{sources.get(recorded['data'], recorded['data'])}, seeds {recorded['seeds']} (this book was "
                f"built with preset `{cfg.preset}` on {sources[cfg.data]}; nothing on this page is computed "
                "from its data).")
    text += ("\n\n**Run it yourself:** download this chapter as a notebook (the download button "
             "at the top of the page) and rerun it, with other parameters if you like: "
             "[Run it yourself](../book/run.md) says how.")
    if preset == "quick":
        text += (
            "\n\n**Quick preset:** the numbers on this page come from a few hundred patches "
            "and are *not* meaningful; they show that the pipeline runs. Use the `standard` "
            "or `paper` preset for numbers worth quoting."
        )
    return text


def from_parameters(namespace) -> Config:
    """A :class:`Config` from a chapter's parameter variables.

    Parameters
    ----------
    namespace : dict
        Typically ``globals()`` of a notebook after its ``parameters`` cell (and
        papermill's injected cell) ran; names that are not parameters are ignored.
    """
    return Config(**{k: namespace[k] for k in known_parameters() if k in namespace})
