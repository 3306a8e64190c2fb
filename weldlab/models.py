"""The two networks of the paper, in Keras 3 (any backend: TensorFlow, JAX or PyTorch).

* :func:`build_autoencoder` (paper §3.1, Fig. 1): 192 x 192 x 1 in, a 42 x 42 x 1 code
  ``z`` bounded to [0, 1], 156 x 156 x 1 out, aligned with the input's central region
  (offset 18 px). 41,186 trainable parameters.
* :func:`build_cnn` (paper §3.2): the supervised okay/defect classifier, 223,221
  trainable parameters, sigmoid output.

Both are plain functional models built from standard Keras layers, so a saved ``.keras``
file loads with ``keras.saving.load_model`` in safe mode and needs no custom objects.
The autoencoder is made of two named sub-models, ``encoder`` (input -> z) and
``decoder`` (z -> reconstruction), so that training can reach the code ``z``.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

import numpy as np

from .geometry import CODE_SIZE, CROP, OFFSET, PATCH, code_side

AE_PARAMETERS = 41_186
CNN_PARAMETERS = 223_221

AE_DROPOUT = 0.12
CNN_DROPOUT = 0.1
CNN_FILTERS = (24, 30, 34, 40)
CNN_DENSE = (60, 50)
#: Added to each patch's intensity variance before dividing: a floor of 0.01 on the
#: standard deviation, so a flat patch (a blank or saturated input) maps to zeros.
CNN_STANDARDISE_EPSILON = 1e-4


#: Bumped when a change alters what a model computes or how it trains from scratch, so
#: that models made before it are retrained rather than reused (``training`` moves them
#: aside). ae 2: the code layer's bias starts at 0.5 (same layers; a training change).
#: cnn 2: each patch standardised before the first block (a change of the function).
ARCHITECTURE_VERSION = {"ae": 2, "cnn": 2}

#: Initial bias of the code layer (see :func:`build_encoder`).
Z_BIAS_INIT = 0.5


def _conv(filters, name, strides=1, activation="relu", padding="valid"):
    return layers.Conv2D(filters, 3, strides=strides, padding=padding, activation=activation, name=name)


def build_encoder(seed=None, any_size=False):
    """Encoder E: 192 x 192 x 1 -> z 42 x 42 x 1.

    Parameters
    ----------
    seed : int, optional
        Seed of the dropout layers (weights follow ``keras.utils.set_random_seed``).
    any_size : bool
        Accept inputs of any side ``192 - 4k`` (training on crops, :func:`build_autoencoder`).

    Returns
    -------
    keras.Model
        Named ``encoder``.
    """
    side = None if any_size else PATCH
    x_in = keras.Input((side, side, 1), name="image")
    x = _conv(18, "e1_conv1")(x_in)                                  # 190
    x = layers.Dropout(AE_DROPOUT, seed=seed, name="e1_dropout")(x)
    x = _conv(18, "e1_conv2")(x)                                     # 188
    x = _conv(18, "e1_down", strides=2)(x)                           # 93
    x = _conv(24, "e2_conv1")(x)                                     # 91
    x = layers.Dropout(AE_DROPOUT, seed=None if seed is None else seed + 1, name="e2_dropout")(x)
    x = _conv(24, "e2_conv2")(x)                                     # 89
    x = _conv(24, "e2_down", strides=2)(x)                           # 44
    # z's bias starts at 0.5, inside the ReLU's [0, 1] range: with Keras' default of 0,
    # about half the seeds drove every z pre-activation negative in the first epoch and the
    # single-channel code died for good (measured: 2 of 3 seeds at the standard preset).
    x = layers.Conv2D(1, 3, padding="valid", activation=None, name="z_conv",
                      bias_initializer=keras.initializers.Constant(Z_BIAS_INIT))(x)  # 42, linear
    z = layers.ReLU(max_value=1.0, name="z")(x)                      # bounded to [0, 1]
    return keras.Model(x_in, z, name="encoder")


def build_decoder(seed=None, any_size=False):
    """Decoder D: z 42 x 42 x 1 -> reconstruction 156 x 156 x 1.

    ``any_size``: accept codes of any side (:func:`build_encoder`).

    Returns
    -------
    keras.Model
        Named ``decoder``.
    """
    side = None if any_size else CODE_SIZE
    z = keras.Input((side, side, 1), name="z")
    x = layers.Dropout(AE_DROPOUT, seed=None if seed is None else seed + 2, name="d1_dropout")(z)
    x = layers.Conv2DTranspose(24, 3, strides=2, padding="valid", activation="relu", name="d1_up")(x)  # 85
    x = _conv(24, "d1_conv1")(x)                                     # 83
    x = _conv(24, "d1_conv2")(x)                                     # 81
    x = layers.Dropout(AE_DROPOUT, seed=None if seed is None else seed + 3, name="d2_dropout")(x)
    x = layers.Conv2DTranspose(18, 3, strides=2, padding="same", activation="relu", name="d2_up")(x)   # 162
    x = _conv(18, "d2_conv1")(x)                                     # 160
    x = _conv(18, "d2_conv2")(x)                                     # 158
    r = _conv(1, "reconstruction", activation=None)(x)               # 156, linear
    return keras.Model(z, r, name="decoder")


@dataclass(frozen=True)
class IntensityScaling:
    """A fixed, parameter-free map of intensities around the network (our choice; method §4).

    The encoder sees ``(x - centre) / scale`` and the decoder's output is mapped back,
    ``y * scale + centre``, where ``centre`` is the constant ``offset`` or, with
    ``patch_mean``, each patch's own mean intensity. Nothing here is trained, so the
    autoencoder keeps its 41,186 parameters; the map is stored in the model as standard
    Keras layers (``Rescaling``, ``GlobalAveragePooling2D``, ``Subtract``, ``Add``), so the
    ``.keras`` file loads in safe mode.

    Why it was tried: GDXray okay patches vary by about 0.005 (film grain) to 0.1 (the weld
    bead) around a level of 0.25-0.47, and the single-channel, [0, 1]-bounded code must carry
    the level too. Measured (3,200 training pairs, ``book/results/convergence/``): both maps
    trained worse than none (median patch maximum |<r>| 0.128 affine and 0.067 patch mean,
    against 0.016); in a one-off check on 32 validation patches, 42 % of the affine model's
    code was 0, its lower bound.

    Parameters
    ----------
    offset : float
        Subtracted before the encoder when ``patch_mean`` is False.
    scale : float
        Positive; the divisor after centring.
    patch_mean : bool
        Centre each patch on its own mean (the mean is added back after the decoder).
    """

    offset: float = 0.0
    scale: float = 1.0
    patch_mean: bool = False

    def __post_init__(self):
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"scale: expected a positive number, got {self.scale!r}")
        if not np.isfinite(self.offset):
            raise ValueError(f"offset: expected a finite number, got {self.offset!r}")

    @classmethod
    def from_patches(cls, patches, patch_mean=False):
        """The map that gives the training okay patches zero mean and unit spread.

        Parameters
        ----------
        patches : array-like, shape (m, 192, 192), float in [0, 1]
            A sample of training okay patches.
        patch_mean : bool
            Centre each patch on its own mean, and keep the scale at 1 (the network then
            works in image units, as without a map, and the loss keeps its balance).

        Returns
        -------
        IntensityScaling

        Examples
        --------
        >>> import numpy as np
        >>> from weldlab.models import IntensityScaling
        >>> x = np.random.default_rng(0).normal(0.4, 0.05, (4, 192, 192))
        >>> s = IntensityScaling.from_patches(x)
        >>> round(s.offset, 2), round(s.scale, 2), s.patch_mean
        (0.4, 0.05, False)
        """
        if np.ndim(patches) != 3 or len(patches) == 0:
            raise ValueError(f"patches: expected shape (m, 192, 192) with m >= 1, got {np.shape(patches)}")
        if patch_mean:
            return cls(0.0, 1.0, True)
        x = np.asarray(patches, np.float64)
        return cls(float(x.mean()), max(float(x.std()), 1e-3), False)

    def to_dict(self):
        """As a JSON-ready dict (the training record's ``scaling``)."""
        return {"offset": self.offset, "scale": self.scale, "patch_mean": self.patch_mean}


def build_autoencoder(seed=None, scaling=None, any_size=False):
    """The paper's autoencoder (method §4, ``book/method.md``).

    Parameters
    ----------
    seed : int, optional
        Seed of the dropout layers.
    scaling : IntensityScaling, optional
        A parameter-free intensity map around the encoder and decoder (None: the network
        sees the intensities as they are, as the paper describes).
    any_size : bool
        Build it for inputs of any side ``s = 192 - 4k`` (output ``s - 36``, code
        ``(s - 24) / 4``): the same 41,186 weights, for training on crops
        (:func:`weldlab.training.train_autoencoder`'s ``crop``). Its weights go into a
        192-px model with ``set_weights`` (:func:`fixed_size`).

    Returns
    -------
    keras.Model
        ``(batch, 192, 192, 1) -> (batch, 156, 156, 1)``, named ``autoencoder``, with the
        sub-models ``encoder`` and ``decoder``; 41,186 trainable parameters.

    Examples
    --------
    >>> import numpy as np
    >>> from weldlab.models import build_autoencoder
    >>> ae = build_autoencoder(0, any_size=True)
    >>> [ae.predict(np.zeros((1, s, s, 1)), verbose=0).shape[1] for s in (96, 192)]
    [60, 156]
    """
    encoder, decoder = build_encoder(seed, any_size), build_decoder(seed, any_size)
    side = None if any_size else PATCH
    x_in = keras.Input((side, side, 1), name="image")
    if scaling is None:
        return keras.Model(x_in, decoder(encoder(x_in)), name="autoencoder")
    x, centre = x_in, scaling.offset
    if scaling.patch_mean:
        mean = layers.GlobalAveragePooling2D(keepdims=True, name="patch_mean")(x_in)
        x, centre = layers.Subtract(name="centre")([x_in, mean]), 0.0
    x = layers.Rescaling(1.0 / scaling.scale, offset=-centre / scaling.scale, name="normalise")(x)
    y = layers.Rescaling(scaling.scale, offset=centre, name="denormalise")(decoder(encoder(x)))
    if scaling.patch_mean:
        y = layers.Add(name="restore_mean")([y, mean])
    return keras.Model(x_in, y, name="autoencoder")


def fixed_size(autoencoder, seed=None):
    """A 192-px autoencoder with the weights of ``autoencoder`` (of any input size).

    Parameters
    ----------
    autoencoder : keras.Model
        From :func:`build_autoencoder` (``any_size`` or not), or an inference model
        that shares its layers (:func:`inference_autoencoder`).
    seed : int, optional
        Seed of the new model's dropout layers.

    Returns
    -------
    keras.Model
        ``(batch, 192, 192, 1) -> (batch, 156, 156, 1)``, the same intensity map.
    """
    fixed = build_autoencoder(seed, scaling_of(autoencoder))
    for part in (encoder_of, decoder_of):
        part(fixed).set_weights(part(autoencoder).get_weights())
    return fixed


def scaling_of(autoencoder):
    """The :class:`IntensityScaling` built into an autoencoder, or None.

    Examples
    --------
    >>> from weldlab.models import IntensityScaling, build_autoencoder, scaling_of
    >>> scaling_of(build_autoencoder(0)) is None
    True
    >>> scaling_of(build_autoencoder(0, IntensityScaling(0.0, 1.0, True)))
    IntensityScaling(offset=0.0, scale=1.0, patch_mean=True)
    """
    names = {layer.name for layer in autoencoder.layers}
    if "denormalise" not in names:
        return None
    out = autoencoder.get_layer("denormalise")
    return IntensityScaling(float(out.offset), float(out.scale), "patch_mean" in names)


def build_cnn(seed=None):
    """The paper's supervised okay/defect classifier (method §6, ``book/method.md``).

    Four blocks of (Dropout 0.1 -> 3x3 conv, valid, ReLU) twice, with 24, 30, 34 and 40
    filters, each followed by 2 x 2 max pooling; flatten; Dense 60 -> Dense 50 -> Dense 1
    with a sigmoid.

    Before the first block each patch is standardised, ``(x - mean) / sqrt(var + 1e-4)``
    over its own pixels, by a parameter-free ``LayerNormalization``. This is weldlab's
    choice, not the paper's (which does not say how inputs were scaled): with raw
    intensities the CNN's validation loss stayed at ln 2 (chance) for the whole of our
    CPU training budget, because the patch-to-patch spread of brightness (std 0.2) dwarfs
    the indications (0.03-0.1); standardised, it learns within the first epoch. A
    consequence worth knowing: the CNN is blind to a patch's overall brightness and
    contrast.

    Returns
    -------
    keras.Model
        ``(batch, 192, 192, 1) -> (batch, 1)`` probability of "not okay"; 223,221
        trainable parameters.
    """
    x_in = keras.Input((PATCH, PATCH, 1), name="image")
    # Each patch to zero mean and unit standard deviation (no parameters; see
    # CNN_STANDARDISE_EPSILON). Our choice: the paper does not say how the CNN's inputs
    # were scaled, and on [0, 1] intensities the CNN stayed at chance for hundreds of steps.
    x = layers.LayerNormalization(axis=(1, 2, 3), center=False, scale=False,
                                  epsilon=CNN_STANDARDISE_EPSILON, name="standardise")(x_in)
    k = 0
    for b, filters in enumerate(CNN_FILTERS, 1):
        for j in (1, 2):
            x = layers.Dropout(CNN_DROPOUT, seed=None if seed is None else seed + k, name=f"b{b}_dropout{j}")(x)
            x = _conv(filters, f"b{b}_conv{j}")(x)
            k += 1
        x = layers.MaxPooling2D(2, name=f"b{b}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    for units in CNN_DENSE:
        x = layers.Dense(units, activation="relu", name=f"dense{units}")(x)
    out = layers.Dense(1, activation="sigmoid", name="probability")(x)
    return keras.Model(x_in, out, name="cnn")


def encoder_of(autoencoder):
    """The ``encoder`` sub-model of an autoencoder (built or loaded)."""
    return autoencoder.get_layer("encoder")


def decoder_of(autoencoder):
    """The ``decoder`` sub-model of an autoencoder (built or loaded)."""
    return autoencoder.get_layer("decoder")


def code_and_reconstruction(model, x):
    """Apply an autoencoder's layers to a tensor, returning its code and reconstruction.

    ``model`` is an autoencoder or any model that shares its layers (a training model
    from :func:`build_training_model`): the ``encoder`` and ``decoder`` sub-models and,
    when the autoencoder has one, its :class:`IntensityScaling` layers.

    Parameters
    ----------
    model : keras.Model
    x : KerasTensor, shape (batch, 192, 192, 1)

    Returns
    -------
    z, reconstruction : KerasTensor
        Shapes (batch, 42, 42, 1) and (batch, 156, 156, 1).
    """
    names = {layer.name for layer in model.layers}
    mean = None
    if "patch_mean" in names:
        mean = model.get_layer("patch_mean")(x)
        x = model.get_layer("centre")([x, mean])
    if "normalise" in names:
        x = model.get_layer("normalise")(x)
    z = encoder_of(model)(x)
    y = decoder_of(model)(z)
    if "denormalise" in names:
        y = model.get_layer("denormalise")(y)
    if mean is not None:
        y = model.get_layer("restore_mean")([y, mean])
    return z, y


def inference_autoencoder(model):
    """The autoencoder (image -> reconstruction) whose layers ``model`` holds.

    Parameters
    ----------
    model : keras.Model
        A training model from :func:`build_training_model` (or an autoencoder).

    Returns
    -------
    keras.Model
        Named ``autoencoder``; its layers are ``model``'s (shared, not copied).
    """
    x = keras.Input((PATCH, PATCH, 1), name="image")
    return keras.Model(x, code_and_reconstruction(model, x)[1], name="autoencoder")


# The training model: the autoencoder wired to the five loss terms of weldlab.losses.


def build_training_model(autoencoder, perturbed=True):
    """Wrap an autoencoder so that ``fit`` optimises the five-term loss.

    Parameters
    ----------
    autoencoder : keras.Model
        From :func:`weldlab.models.build_autoencoder`; its weights are shared.
    perturbed : bool
        False for the "None" perturbation set: only ``L_ok``, ``L_kern,ok`` and
        ``L_reg`` remain, and the model takes ``x_ok`` alone.

    Returns
    -------
    keras.Model
        Inputs ``{"x_ok"[, "x_per"]}``, each (batch, 192, 192, 1) (of any side ``192 - 4k``
        when the autoencoder was built with ``any_size``); outputs named after
        :data:`weldlab.losses.LOSS_TERMS` (``z`` holds the code of ``x_ok`` and, when perturbed, of
        ``x_per``, concatenated along the channel axis). Compiled with the matching
        losses by :func:`compile_training_model`.
    """
    side = autoencoder.input.shape[1]  # None: any size (training on crops)
    x_ok = keras.Input((side, side, 1), name="x_ok")
    z_ok, r_ok = code_and_reconstruction(autoencoder, x_ok)
    inputs = {"x_ok": x_ok}
    outputs = {
        "ok": keras.layers.Identity(name="ok")(r_ok),
        "ok_kern": keras.layers.Identity(name="ok_kern")(r_ok),
    }
    z = z_ok
    if perturbed:
        x_per = keras.Input((side, side, 1), name="x_per")
        z_per, r_per = code_and_reconstruction(autoencoder, x_per)
        inputs["x_per"] = x_per
        outputs["per"] = keras.layers.Identity(name="per")(r_per)
        outputs["per_kern"] = keras.layers.Identity(name="per_kern")(r_per)
        z = keras.layers.Concatenate(name="z_pair")([z_ok, z_per])
    outputs["z"] = keras.layers.Identity(name="z")(z)
    return keras.Model(inputs, outputs, name="autoencoder_training")


def compile_training_model(model, learning_rate=1e-3, okay_weight=1.0, residual_unit=1.0, code_weight=1.0,
                           **compile_options):
    """Compile a training model from :func:`build_training_model` with Adam.

    With a perturbation set, the L1 term is computed on both codes; it is halved so that
    ``L_reg`` keeps the weight of one code per training pair.

    Parameters
    ----------
    model : keras.Model
    learning_rate : float or keras.optimizers.schedules.LearningRateSchedule
    okay_weight : float
        Weight of the two okay terms (``L_ok``, ``L_kern,ok``) against the perturbed ones
        (1: the paper's plain sum). All five terms stay in the loss.
    residual_unit : float
        The four residual terms measure ``Delta / residual_unit`` (their weights are
        divided by its square); ``L_reg`` is unchanged. With an :class:`IntensityScaling`,
        pass its ``scale``: the terms then keep the balance they have for a network that
        works in those units. (Measured: with the patch mean removed, divided by its spread
        0.114, and the residuals in image units, the reconstruction's gradient reached the
        encoder nine times weaker against the L1 term; after 3,200 pairs the code's L1 term
        was 2.3e-4 against the plain recipe's 3.9e-4 and the validation okay loss 4.5 times
        the plain recipe's, ``book/results/convergence/pm.json`` and ``base.json``.)
    code_weight : float
        Multiplies ``L_reg`` (1: the paper's 0.01 per code element, read per reconstructed
        pixel, :mod:`weldlab.losses`). All five terms stay in the loss.
    **compile_options
        Passed on to ``model.compile`` (e.g. ``jit_compile``, for ``scripts/bench_step.py``).
    """
    from . import losses as L

    perturbed = "per" in model.output_names
    # a model of any input size (training on crops) counts its reconstructed pixels per batch
    pixels = None if model.input["x_ok"].shape[1] is None else CROP * CROP
    losses = {"ok": L.ReconstructionLoss(), "ok_kern": L.KernelMaxLoss(),
              "z": L.CodeL1Loss(weight=L.L1_WEIGHT / (2 if perturbed else 1), pixels=pixels)}
    unit = 1.0 / float(residual_unit) ** 2
    weights = {"ok": float(okay_weight) * unit, "ok_kern": float(okay_weight) * unit,
               "z": float(code_weight)}
    if perturbed:
        losses.update(per=L.ReconstructionLoss(), per_kern=L.KernelMaxLoss())
        weights.update(per=unit, per_kern=unit)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=losses, loss_weights=weights, **compile_options)
    return model


def training_targets(x_ok, perturbed=True):
    """Targets for :func:`build_training_model`'s outputs.

    Every reconstruction aims at ``crop(x_ok)`` (the input's central part, ``OFFSET`` px in
    from each side); the code target is unused (zeros).

    Parameters
    ----------
    x_ok : ndarray, shape (batch, s, s, 1)
        Patches (``s = 192``) or crops of them (``s = 192 - 4k``).

    Returns
    -------
    dict of ndarray
        Reconstruction targets of shape (batch, s - 36, s - 36, 1); ``z`` zeros of shape
        (batch, (s - 24) / 4, (s - 24) / 4, 1 or 2).
    """
    side = x_ok.shape[1]
    c = x_ok[:, OFFSET:side - OFFSET, OFFSET:side - OFFSET]  # for a patch: crop(x_ok)
    code = code_side(side)
    z = np.zeros((len(x_ok), code, code, 2 if perturbed else 1), np.float32)
    y = {"ok": c, "ok_kern": c, "z": z}
    if perturbed:
        y.update(per=c, per_kern=c)
    return y


def load_model(path):
    """Load a weldlab ``.keras`` model (safe mode on), with a clear error for bad files.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    keras.Model

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a loadable Keras model (corrupt, truncated, not a model), or
        holds code that safe mode refuses to run (a different message).
    """
    from pathlib import Path

    from . import losses  # noqa: F401  (registers the custom objects)

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found; expected a .keras file saved by weldlab")
    if path.suffix != ".keras":
        raise ValueError(f"{path}: expected a native Keras '.keras' model file")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as exc:  # zipfile, json, h5 and Keras errors all mean "not a model"
        if "safe_mode" in str(exc):
            raise ValueError(
                f"{path}: refused: the model contains Python code (e.g. a Lambda layer), which safe "
                "mode does not run; weldlab loads only models made of standard Keras layers"
            ) from exc
        raise ValueError(
            f"{path}: cannot be loaded as a Keras model ({type(exc).__name__}: {exc}); "
            "the file may be corrupt or truncated"
        ) from exc


def kind_of(record):
    """The kind (``"ae"``/``"cnn"``) a record describes, or None.

    Records written before the kinds were unified say ``"autoencoder"``.
    """
    model = record.get("model") if isinstance(record, dict) else None
    return {"autoencoder": "ae"}.get(model, model) if model in ("ae", "cnn", "autoencoder") else None


def check_autoencoder(model, record=None, where="model"):
    """Refuse a model that is not a weldlab autoencoder of the current architecture.

    Checked: the ``encoder`` and ``decoder`` sub-models, the input and output geometry
    (192 -> 156 px, one channel), the 42 x 42 code, the parameter count
    (:data:`AE_PARAMETERS`) and, when a training record is given, that it records an
    autoencoder of the current :data:`ARCHITECTURE_VERSION`.

    Parameters
    ----------
    model : keras.Model
    record : dict, optional
        The model's ``record.json``.
    where : str
        How to name the model in the error (its folder).

    Raises
    ------
    ValueError
        Listing every property that differs, with the expected and the found value.

    Examples
    --------
    >>> from weldlab.models import build_autoencoder, build_cnn, check_autoencoder
    >>> check_autoencoder(build_autoencoder())
    >>> check_autoencoder(build_cnn(), where="cnn/")
    Traceback (most recent call last):
    ...
    ValueError: cnn/: not a weldlab autoencoder: sub-models: expected 'encoder' and 'decoder', got none; ...
    """
    def shape(x):
        return tuple(getattr(x, "shape", ()))[1:]

    problems = []
    names = {layer.name for layer in getattr(model, "layers", [])}
    if not {"encoder", "decoder"} <= names:
        problems.append(f"sub-models: expected 'encoder' and 'decoder', got {sorted(names & {'encoder', 'decoder'}) or 'none'}")
    else:
        code = shape(model.get_layer("encoder").outputs[0])
        if code != (CODE_SIZE, CODE_SIZE, 1):
            problems.append(f"code: expected {(CODE_SIZE, CODE_SIZE, 1)}, got {code}")
    inputs, outputs = getattr(model, "inputs", None) or [], getattr(model, "outputs", None) or []
    found_in = shape(inputs[0]) if len(inputs) == 1 else f"{len(inputs)} inputs"
    found_out = shape(outputs[0]) if len(outputs) == 1 else f"{len(outputs)} outputs"
    if found_in != (PATCH, PATCH, 1):
        problems.append(f"input: expected {(PATCH, PATCH, 1)}, got {found_in}")
    if found_out != (CROP, CROP, 1):
        problems.append(f"output: expected {(CROP, CROP, 1)}, got {found_out}")
    n = model.count_params() if hasattr(model, "count_params") else None
    if n != AE_PARAMETERS:
        problems.append(f"parameters: expected {AE_PARAMETERS:,}, got {n:,}" if n is not None else "parameters: none")
    if record is not None:
        if kind_of(record) != "ae":
            problems.append(f"record: expected model 'ae', got {record.get('model')!r}")
        if record.get("architecture") != ARCHITECTURE_VERSION["ae"]:
            problems.append(f"record: expected architecture {ARCHITECTURE_VERSION['ae']}, "
                            f"got {record.get('architecture')!r} (retrain it with this weldlab)")
    if problems:
        raise ValueError(f"{where}: not a weldlab autoencoder: " + "; ".join(problems))


def receptive_field():
    """How far the autoencoder sees: the input pixels one reconstructed pixel depends on.

    Measured, not derived: a copy of the architecture with small positive weights and no
    biases (so that no unit is cut off by its ReLU and the code stays below its bound of 1)
    reconstructs an impulse, and the output pixels it reaches span the receptive field.

    Returns
    -------
    int
        The side (px) of the square of input pixels that one output pixel depends on.

    Examples
    --------
    >>> from weldlab.models import receptive_field
    >>> receptive_field()
    45
    """
    ae = build_autoencoder(0)
    rng = np.random.default_rng(0)
    for w in ae.weights:
        if len(w.shape) > 1:
            w.assign((0.05 * np.abs(rng.normal(size=w.shape))).astype("float32"))
        else:
            w.assign(np.zeros(w.shape, "float32"))
    x = np.zeros((2, PATCH, PATCH, 1), "float32")
    x[1, PATCH // 2, PATCH // 2, 0] = 1.0
    y = np.asarray(ae.predict(x, verbose=0))[..., 0]
    rows = np.flatnonzero(np.abs(y[1] - y[0]).max(axis=1) > 0)
    return int(rows.max() - rows.min() + 1)


def layer_table(model):
    """Rows describing a model's layers (sub-models expanded), for the book.

    Parameters
    ----------
    model : keras.Model

    Returns
    -------
    list of dict
        ``block`` (sub-model name or ""), ``layer``, ``type``, ``output`` (shape without
        the batch axis) and ``parameters``.
    """
    rows = []

    def walk(m, block):
        for layer in m.layers:
            if isinstance(layer, keras.Model):
                walk(layer, layer.name)
            elif not isinstance(layer, layers.InputLayer):
                rows.append({"block": block, "layer": layer.name, "type": type(layer).__name__,
                             "output": tuple(layer.output.shape[1:]), "parameters": layer.count_params()})

    walk(model, "")
    return rows


def layer_table_markdown(model):
    """:func:`layer_table` as a Markdown table with a total row (chapters 4 and 6).

    Examples
    --------
    >>> from weldlab.models import build_autoencoder, layer_table_markdown
    >>> print(layer_table_markdown(build_autoencoder(seed=0)).splitlines()[-1])
    |  | **total** |  |  | **41,186** |
    """
    from .figures import markdown_table

    rows = [[r["block"], r["layer"], r["type"], " x ".join(map(str, r["output"])), f"{r['parameters']:,}"]
            for r in layer_table(model)]
    rows.append(["", "**total**", "", "", f"**{model.count_params():,}**"])
    return markdown_table(["block", "layer", "type", "output", "parameters"], rows, align="llllr")
