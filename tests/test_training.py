import json
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from weldlab.models import load_model  # noqa: E402
from weldlab.batches import PerturbedPairs  # noqa: E402
from weldlab.training import train_autoencoder  # noqa: E402

FAST = dict(epochs=3, steps_per_epoch=2, val_steps=1, batch_size=4, verbose=0, log=lambda *a: None)


def test_pairs_are_seeded_augmented_and_repaired_each_epoch(quick_datasets):
    _, ds = quick_datasets
    D = ds.perturbation_set("D")
    p = PerturbedPairs(ds.raw("train_okay"), [D], batch_size=8, seed=3)
    assert len(p) == int(np.ceil(6 * len(ds.raw("train_okay")) / 8))
    (x0, y0), (x1, _) = p.batch(0, epoch=0), p.batch(0, epoch=0)
    assert np.array_equal(x0["x_per"], x1["x_per"])
    x2, _ = p.batch(0, epoch=1)
    assert not np.array_equal(x0["x_ok"], x2["x_ok"])  # new order and pairing every epoch
    assert x0["x_ok"].shape == (8, 192, 192, 1) and x0["x_ok"].dtype == np.float32
    assert np.array_equal(y0["ok"], x0["x_ok"][:, 18:174, 18:174])
    assert np.array_equal(y0["per"], y0["ok"])  # the perturbed input must map to the clean patch
    assert (np.abs(x0["x_per"] - x0["x_ok"]) > 0).any()
    none = PerturbedPairs(ds.raw("train_okay"), [], batch_size=4, seed=0)
    xn, yn = none.batch(0)
    assert set(xn) == {"x_ok"} and set(yn) == {"ok", "ok_kern", "z"}
    with pytest.raises(ValueError, match="batch_size"):
        PerturbedPairs(ds.raw("train_okay"), [], batch_size=0)


@pytest.mark.robustness
def test_interrupted_training_resumes(quick_datasets, tmp_path):
    _, ds = quick_datasets
    out = tmp_path / "ae"
    with pytest.raises(KeyboardInterrupt):
        train_autoencoder(ds, "D", seed=0, out_dir=out, stop_after=1, **FAST)
    state = json.loads((out / "state.json").read_text())
    assert state["epochs_done"] == 1 and (out / "checkpoint.keras").is_file()
    assert not (out / "record.json").exists()
    messages = []
    rec = train_autoencoder(ds, "D", seed=0, out_dir=out, **{**FAST, "log": messages.append})
    assert any("resuming" in m and "epoch 1" in m for m in messages)
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert {"ok_loss", "ok_kern_loss", "per_loss", "per_kern_loss", "z_loss", "val_loss"} <= set(history[0])
    assert rec["epochs"] == 3 and rec["training_set"] == "D" and rec["backend"]
    assert rec["hyperparameters"] == {k: v for k, v in FAST.items() if k not in ("verbose", "log")} | {
        "patience": 5, "learning_rate": 1e-3, "dropout_epochs": None, "lr_patience": None, "schedule": "plateau",
        "okay_weight": 1.0, "scaling": "none", "clean_epochs": 0, "code_weight": 1.0, "crop": None}
    for key in ("wall_seconds", "patches_per_second", "git_commit", "weldlab_version", "preset", "data"):
        assert rec[key] is not None, key
    ae = load_model(out / "autoencoder.keras")
    assert ae.count_params() == 41_186 and ae.output.shape[1:] == (156, 156, 1)
    # A finished run is not trained again.
    again = train_autoencoder(ds, "D", seed=0, out_dir=out, **{**FAST, "log": messages.append})
    assert again["epochs"] == 3 and any("already trained" in m for m in messages)


def test_none_perturbation_and_bad_name(quick_datasets, tmp_path):
    _, ds = quick_datasets
    rec = train_autoencoder(ds, "none", seed=1, out_dir=tmp_path / "none", **{**FAST, "epochs": 1})
    assert rec["training_set"] == "none" and rec["training_patches"] == len(ds.raw("train_okay"))
    hist = json.loads((tmp_path / "none" / "history.json").read_text())
    assert "per_loss" not in hist[0]
    with pytest.raises(ValueError, match="perturbation"):
        train_autoencoder(ds, "DNA", out_dir=tmp_path / "x")


def test_cnn_batches_are_balanced(quick_datasets):
    from weldlab.batches import LabelledBatches

    _, ds = quick_datasets
    sources = {"D": None, "sni": ds.perturbation_set("sni")}
    b = LabelledBatches(ds.raw("train_okay"), ds.raw("train_defect"), sources, batch_size=8, seed=0)
    x, y = b.batch(0)
    assert x.shape == (8, 192, 192, 1) and y[:4].sum() == 0 and y[4:].sum() == 4
    assert np.array_equal(b.batch(1, epoch=2)[0], b.batch(1, epoch=2)[0])
    with pytest.raises(ValueError, match="even"):
        LabelledBatches(ds.raw("train_okay"), None, {"sni": sources["sni"]}, batch_size=5)
    with pytest.raises(ValueError, match="defect patches"):
        LabelledBatches(ds.raw("train_okay"), None, {"D": None}, batch_size=4)


@pytest.mark.robustness
def test_cnn_trains_and_resumes(quick_datasets, tmp_path):
    from weldlab.training import train_cnn

    _, ds = quick_datasets
    kw = dict(epochs=2, steps_per_epoch=2, val_steps=1, batch_size=4, verbose=0, log=lambda *a: None)
    with pytest.raises(KeyboardInterrupt):
        train_cnn(ds, "D+circular", seed=0, out_dir=tmp_path / "cnn", stop_after=1, **kw)
    rec = train_cnn(ds, "D+circular", seed=0, out_dir=tmp_path / "cnn", **kw)
    assert rec["model"] == "cnn" and rec["training_set"] == "D+circular" and rec["epochs"] == 2
    cnn = load_model(tmp_path / "cnn" / "cnn.keras")
    assert cnn.count_params() == 223_221
    with pytest.raises(ValueError, match="training_set"):
        train_cnn(ds, "D+SC", out_dir=tmp_path / "bad")


def test_use_case_2_trains_on_okay_and_defect_patches(quick_datasets, tmp_path):
    _, ds = quick_datasets
    rec = train_autoencoder(ds, "okay+defects", seed=0, out_dir=tmp_path / "uc2", **{**FAST, "epochs": 1})
    assert rec["training_set"] == "okay+defects"
    # the patches it learns to reconstruct: every okay and every defect training patch
    n_okay, n_defect = len(ds.raw("train_okay")), len(ds.raw("train_defect"))
    assert n_defect > 0 and rec["training_patches"] == n_okay + n_defect
    history = json.loads((tmp_path / "uc2" / "history.json").read_text())
    assert "per_loss" not in history[0]  # no perturbation: L_ok, L_kern,ok and L_reg only
    # and its batches draw defect patches: some inputs equal an augmented defect patch
    from weldlab.batches import PerturbedPairs
    from weldlab.datasets import decode
    from weldlab.patches import augment

    inputs = np.concatenate([ds.raw("train_okay"), ds.raw("train_defect")])
    x = PerturbedPairs(inputs, [], batch_size=64, seed=0).batch(0)[0]["x_ok"][..., 0]
    defects = decode(np.concatenate([augment(ds.raw("train_defect"), op) for op in range(6)]))
    assert any(np.array_equal(p, d) for p in x for d in defects)


def test_cnn_validation_defects_are_held_out_the_same_way_for_every_seed():
    from weldlab.training import split_defect_patches

    defects = np.arange(50 * 2 * 2, dtype=np.uint16).reshape(50, 2, 2)
    train, val = split_defect_patches(defects)
    assert len(val) == 5 and len(train) == 45
    ids = lambda a: set(a[:, 0, 0].tolist())  # noqa: E731
    assert not ids(train) & ids(val) and ids(train) | ids(val) == ids(defects)
    train2, val2 = split_defect_patches(defects)
    assert np.array_equal(val, val2) and np.array_equal(train, train2)
    assert list(val[:, 0, 0]) == sorted(val[:, 0, 0])  # original order kept
    assert len(split_defect_patches(defects[:2])[1]) == 1
    with pytest.raises(ValueError, match="at least 2"):
        split_defect_patches(defects[:1])
    with pytest.raises(ValueError, match="fraction"):
        split_defect_patches(defects, 1.0)


def test_dropout_phase_then_off_and_paper_settings_in_the_saved_model(quick_datasets, tmp_path):
    import keras

    _, ds = quick_datasets
    out = tmp_path / "ae"
    messages = []
    rec = train_autoencoder(ds, "sni", seed=0, out_dir=out, dropout_epochs=1, lr_patience=1,
                            **{**FAST, "epochs": 2, "log": messages.append})
    state = json.loads((out / "state.json").read_text())
    assert state["dropout_off_after"] == 1 and rec["dropout_off_after_epoch"] == 1
    assert any("dropout off from epoch 2" in m for m in messages)

    def rates(model):
        return {layer.rate for layer in model._flatten_layers(recursive=True)
                if isinstance(layer, keras.layers.Dropout)}

    assert rates(load_model(out / "checkpoint.keras")) == {0.0}  # trained without dropout
    assert rates(load_model(out / "autoencoder.keras")) == {0.12}  # the paper's layers, shipped
    assert [h["learning_rate"] for h in state["history"]][0] == pytest.approx(1e-3)
    conv = rec["convergence"]
    assert conv["n"] == len(ds.raw("val_okay")) and conv["noise_std"] > 0
    assert conv["rms_over_noise"] == pytest.approx(conv["residual_rms"] / conv["noise_std"])
    assert conv["converged"] is False  # two epochs of two batches converge nothing


def test_a_model_trained_on_other_datasets_is_moved_aside_and_retrained(tmp_path):
    """Reuse is keyed on the datasets too: a run with other dataset sizes must not be
    reported as 'already trained' (and its record rewritten) for the new datasets."""
    from weldlab.config import make_config
    from weldlab.datasets import build_or_load
    from weldlab.trained import TrainedModel, stale_reason
    from weldlab.training import current_model
    from weldlab.training import train_models

    small = dict(sim_train_radiographs=2, sim_test_radiographs=1, sim_height=400, sim_width=1200,
                 n_val_okay=8, n_train_defect=12, n_test_okay=16, n_test_defect=12,
                 n_synthetic_test=3, n_sni=10, n_sc=5, n_spc=5, progress=False, ae_epochs=1,
                 ae_steps_per_epoch=1, ae_batch_size=2, seeds=[0])
    cfg_a = make_config("quick", artifacts_root=str(tmp_path), n_train_okay=20, **small)
    cfg_b = make_config("quick", artifacts_root=str(tmp_path), n_train_okay=24, **small)
    ds_a = build_or_load(cfg_a)
    (rec_a,) = train_models(cfg_a, ds_a, "ae", "none", verbose=0, log=lambda *a: None)
    ds_b = build_or_load(cfg_b)
    folder = tmp_path / "synthetic" / "quick" / "models" / "ae" / "none" / "seed0"
    assert stale_reason(folder, "ae", ds_b.manifest["dataset_key"]).startswith("datasets ")
    assert stale_reason(folder, "ae", ds_a.manifest["dataset_key"]) is None
    trained_a = TrainedModel.load(folder)
    assert trained_a.is_current(ds_a.manifest["dataset_key"]) and not trained_a.is_current(ds_b.manifest["dataset_key"])
    # --no-train refuses the stale model by name, and leaves it as it is
    with pytest.raises(FileNotFoundError, match=rf"{folder}: trained with datasets {rec_a['dataset_key']}"):
        current_model(cfg_b, ds_b, "ae", "none", 0, train=False)
    assert TrainedModel.load(folder).record["dataset_key"] == rec_a["dataset_key"]
    assert current_model(cfg_a, ds_a, "ae", "none", 0, train=False).record == rec_a  # current: reused
    messages = []
    (rec_b,) = train_models(cfg_b, ds_b, "ae", "none", verbose=0, log=messages.append)
    assert not any("already trained" in m for m in messages)
    assert rec_b["dataset_key"] == ds_b.manifest["dataset_key"] != rec_a["dataset_key"]
    kept = folder.with_name(f"seed0.datasets-{rec_a['dataset_key']}")
    assert TrainedModel.load(kept).record["dataset_key"] == rec_a["dataset_key"]
    assert current_model(cfg_b, ds_b, "ae", "none", 0, train=False).is_current(ds_b.manifest["dataset_key"])


_PAGE_FAULT_PROBE = """
import json, os, resource, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras
from weldlab.batches import PerturbedPairs
from weldlab.datasets import PatchDatasets
from weldlab.fitting import KeepFreedMemory
from weldlab.models import build_autoencoder, build_training_model, compile_training_model
ds = PatchDatasets(sys.argv[1])
faults = []
class Count(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
model = compile_training_model(build_training_model(build_autoencoder(0), True))
pairs = PerturbedPairs(ds.raw("train_okay"), [ds.perturbation_set("D")], batch_size=4, seed=0, steps=12)
model.fit(pairs, epochs=1, verbose=0, callbacks=[KeepFreedMemory(), Count()])
print(json.dumps(faults))
"""


def test_training_steps_do_not_page_fault_their_tensors(quick_datasets):
    """TensorFlow's generator dataset froze glibc's malloc thresholds at 128 KB, so each
    step mapped and faulted in its tensors afresh (half the CPU time in the kernel).

    Measured in a fresh process: glibc's settings and arenas are per process, and the
    tests before this one (other fits, other threads) change them.
    """
    import subprocess
    import sys

    import keras

    if not sys.platform.startswith("linux") or keras.backend.backend() != "tensorflow":
        pytest.skip("glibc malloc and TensorFlow's generator dataset only")
    _, ds = quick_datasets
    run = subprocess.run([sys.executable, "-c", _PAGE_FAULT_PROBE, str(ds.path)], capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    faults = json.loads(run.stdout.strip().splitlines()[-1])
    per_step = np.median(np.diff(faults[2:]))  # steady steps, after tracing; robust to a stray spike
    # One step of 4 pairs moves ~100 MB of tensors: ~300,000 faults a step without the callback;
    # with it but without one shared malloc arena, 55 to 69,389 depending on which threads ran
    # which ops (15,111 in a CI run); with both, 13-21 in 14 fresh runs of 14.
    assert per_step < 2_000, (per_step, faults)


def test_okay_only_warm_up_pairs_each_patch_with_itself(quick_datasets):
    _, ds = quick_datasets
    p = PerturbedPairs(ds.raw("train_okay"), [ds.perturbation_set("sni")], batch_size=4, seed=0, clean_epochs=1)
    x0, _ = p.batch(0, epoch=0)
    x1, _ = p.batch(0, epoch=1)
    assert np.array_equal(x0["x_per"], x0["x_ok"])
    assert not np.array_equal(x1["x_per"], x1["x_ok"])


def test_recipe_levers_are_used_and_recorded(quick_datasets, tmp_path):
    """Issue 22's levers: a cosine schedule over the budget, the okay terms' weight, the
    patch mean removed around the network, an okay-only warm-up; each recorded as used."""
    _, ds = quick_datasets
    levers = dict(schedule="cosine", okay_weight=5.0, scaling="patch_mean", clean_epochs=1, code_weight=0.1,
                  dropout_epochs=0)
    with pytest.raises(KeyboardInterrupt):  # interrupted and resumed: the weights survive the checkpoint
        train_autoencoder(ds, "sni", seed=0, out_dir=tmp_path / "ae", stop_after=1, **levers, **FAST)
    rec = train_autoencoder(ds, "sni", seed=0, out_dir=tmp_path / "ae", **levers, **FAST)
    h = rec["hyperparameters"]
    assert (h["schedule"], h["okay_weight"], h["scaling"], h["clean_epochs"], h["code_weight"]) == (
        "cosine", 5.0, "patch_mean", 1, 0.1)
    assert rec["scaling"] == {"offset": 0.0, "scale": 1.0, "patch_mean": True}
    history = json.loads((tmp_path / "ae" / "history.json").read_text())
    rates = [e["learning_rate"] for e in history]
    assert rates[0] > rates[1] > rates[2] >= 1e-5  # decayed along the cosine, towards 1 % of 1e-3
    # In the warm-up epoch the perturbed branch saw the okay patches: equal losses. (Keras
    # calls a PyDataset's on_epoch_end once before the first epoch too; counted there, the
    # epochs were shifted by one and "warm-up" batches were perturbed: 1.2 % apart.)
    assert history[0]["per_loss"] == pytest.approx(history[0]["ok_loss"], rel=1e-5)
    assert history[1]["per_loss"] != pytest.approx(history[1]["ok_loss"], rel=1e-3)
    for e in history:  # the total is the five terms under their weights (okay x5, L_reg x0.1)
        total = 5 * (e["ok_loss"] + e["ok_kern_loss"]) + e["per_loss"] + e["per_kern_loss"] + 0.1 * e["z_loss"]
        assert e["loss"] == pytest.approx(total, rel=1e-3), e["epoch"]
    ae = load_model(tmp_path / "ae" / "autoencoder.keras")
    from weldlab.models import scaling_of

    assert scaling_of(ae).patch_mean and ae.count_params() == 41_186
    with pytest.raises(ValueError, match="schedule"):
        train_autoencoder(ds, "sni", out_dir=tmp_path / "x", schedule="linear", **FAST)
    with pytest.raises(ValueError, match="perturbation"):
        train_autoencoder(ds, "D+circular", out_dir=tmp_path / "x", **FAST)


def test_a_warm_start_begins_from_the_source_weights_and_says_so(quick_datasets, tmp_path):
    from weldlab.trained import TrainedModel

    _, ds = quick_datasets
    first = train_autoencoder(ds, "none", seed=0, out_dir=tmp_path / "first", **{**FAST, "epochs": 1})
    # a rate too small to move a weight: the second model ends where the first did
    second = train_autoencoder(ds, "sni", seed=5, out_dir=tmp_path / "second", start_from=tmp_path / "first",
                               learning_rate=1e-12, **{**FAST, "epochs": 1})
    a, b = (TrainedModel.load(tmp_path / n, "ae").model.get_weights() for n in ("first", "second"))
    assert len(a) == len(b) and all(np.allclose(x, y, atol=1e-9) for x, y in zip(a, b))
    assert any(not np.allclose(x, y) for x, y in zip(a, fresh_weights(5)))  # not what a cold start gives
    assert second["start_from"]["folder"] == str(tmp_path / "first")
    assert second["start_from"]["training_set"] == "none" == first["training_set"]
    with pytest.raises(ValueError, match="a warm start needs the same intensity map"):
        train_autoencoder(ds, "sni", out_dir=tmp_path / "third", start_from=tmp_path / "first", scaling="affine",
                          **FAST)


def fresh_weights(seed):
    """The initial weights of a fresh autoencoder of ``seed`` (what a cold start begins from)."""
    import keras

    from weldlab.models import build_autoencoder

    keras.utils.set_random_seed(seed)
    return build_autoencoder(seed).get_weights()


def test_crops_cut_both_images_of_a_pair_at_one_seeded_window(quick_datasets):
    _, ds = quick_datasets
    psets = [ds.perturbation_set("sni")]
    whole = PerturbedPairs(ds.raw("train_okay"), psets, batch_size=4, seed=3)
    crops = PerturbedPairs(ds.raw("train_okay"), psets, batch_size=4, seed=3, crop=96)
    (xw, _), (xc, yc) = whole.batch(0, 1), crops.batch(0, 1)
    assert xc["x_ok"].shape == xc["x_per"].shape == (4, 96, 96, 1)
    assert yc["ok"].shape == yc["per"].shape == (4, 60, 60, 1) and yc["z"].shape == (4, 18, 18, 2)
    for i in range(4):  # each crop is a window of its whole pair, the same for x_ok and x_per
        hits = [(t, left) for t in range(97) for left in range(97)
                if np.array_equal(xw["x_ok"][i, t:t + 96, left:left + 96], xc["x_ok"][i])]
        assert len(hits) == 1
        t, left = hits[0]
        assert np.array_equal(xw["x_per"][i, t:t + 96, left:left + 96], xc["x_per"][i])
        assert np.array_equal(yc["ok"][i], xc["x_ok"][i, 18:78, 18:78])
    again = crops.batch(0, 1)[0]
    assert all(np.array_equal(again[k], xc[k]) for k in xc)
    with pytest.raises(ValueError, match="crop: expected a side from 64 to 192"):
        PerturbedPairs(ds.raw("train_okay"), psets, crop=98)


def test_an_autoencoder_trained_on_crops_is_validated_and_saved_whole(quick_datasets, tmp_path):
    from weldlab.models import build_autoencoder

    _, ds = quick_datasets
    out = tmp_path / "crops"
    with pytest.raises(KeyboardInterrupt):  # interrupted, then resumed, as any run
        train_autoencoder(ds, "sni", seed=0, out_dir=out, crop=96, stop_after=1, **FAST)
    rec = train_autoencoder(ds, "sni", seed=0, out_dir=out, crop=96, **FAST)
    assert rec["hyperparameters"]["crop"] == 96 and rec["epochs"] == 3
    history = json.loads((out / "history.json").read_text())
    # validation on whole patches: the code term's scale is that of a 192 px patch
    assert all(h["val_z_loss"] < 2 * 0.01 * 42 * 42 / 156**2 for h in history)
    ae = load_model(out / "autoencoder.keras")
    assert ae.input.shape[1:] == (192, 192, 1) and ae.output.shape[1:] == (156, 156, 1)
    assert ae.count_params() == 41_186
    # the saved weights are the trained ones: a fully convolutional copy agrees on a crop's interior
    x = ds["val_okay"][:2][..., None]
    any_size = build_autoencoder(0, any_size=True)
    any_size.set_weights(ae.get_weights())
    whole = ae.predict(x, verbose=0)
    part = any_size.predict(x[:, 32:128, 48:144], verbose=0)
    np.testing.assert_allclose(part[:, 8:-8, 8:-8], whole[:, 32 + 8:92 - 8, 48 + 8:108 - 8], atol=1e-5)
    assert rec["convergence"]["n"] == len(ds["val_okay"])
