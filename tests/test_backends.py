"""The model code is Keras 3 only: the same models train, save, load and predict on JAX.

The JAX run is a subprocess (a Keras backend is fixed when Keras is first imported). JAX
comes with the ``jax`` extra (``make test`` installs it); without it these tests are
skipped locally and fail in CI.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

JAX_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import keras
    from weldlab.config import make_config
    from weldlab.datasets import build_or_load
    from weldlab.models import build_autoencoder, build_cnn, load_model
    from weldlab.trained import load_pretrained
    from weldlab.training import train_autoencoder, train_cnn

    out = {"backend": keras.backend.backend()}
    out["parameters"] = [build_autoencoder(0).count_params(), build_cnn(0).count_params()]
    x = np.load(sys.argv[2])
    ae, cnn = load_pretrained("ae", 0).model, load_pretrained("cnn", 0).model
    out["ae"] = ae.predict(x, verbose=0).tolist()
    out["cnn"] = cnn.predict(x, verbose=0).tolist()
    cfg = make_config("quick", artifacts_root=sys.argv[3], progress=False)
    ds = build_or_load(cfg)
    models = sys.argv[1] + ".models"
    fast = dict(epochs=2, steps_per_epoch=2, val_steps=1, batch_size=2, verbose=0, log=lambda *a: None)
    try:
        train_autoencoder(ds, "D+sni", seed=0, out_dir=models + "/ae", stop_after=1, **fast)
    except KeyboardInterrupt:
        pass
    rec = train_autoencoder(ds, "D+sni", seed=0, out_dir=models + "/ae", **fast)  # resumes
    out["ae_record"] = {k: rec[k] for k in ("backend", "epochs")}
    out["ae_history"] = json.load(open(models + "/ae/history.json"))
    out["ae_loaded_params"] = load_model(models + "/ae/autoencoder.keras").count_params()
    rec = train_cnn(ds, "D+sni", seed=0, out_dir=models + "/cnn", **fast)
    out["cnn_record"] = {k: rec[k] for k in ("backend", "epochs")}
    json.dump(out, open(sys.argv[1], "w"))
""")


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory, quick_datasets):
    try:
        import jax  # noqa: F401
    except ImportError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"JAX is required in CI (pip install -e '.[jax]'): {exc}")
        pytest.skip("JAX not installed (pip install -e '.[jax]')")
    tmp = tmp_path_factory.mktemp("jax")
    x = np.random.default_rng(0).random((3, 192, 192, 1)).astype(np.float32)
    np.save(tmp / "x.npy", x)
    script = tmp / "run.py"
    script.write_text(JAX_SCRIPT)
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu"}
    cfg, _ = quick_datasets  # the subprocess reuses the session's quick datasets
    proc = subprocess.run([sys.executable, str(script), str(tmp / "out.json"), str(tmp / "x.npy"), str(cfg.artifacts_root)],
                          env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp / "out.json").read_text()), x


def test_models_build_train_resume_and_save_on_jax(jax_run):
    out, _ = jax_run
    assert out["backend"] == "jax"
    assert out["parameters"] == [41_186, 223_221]
    assert out["ae_record"] == {"backend": "jax", "epochs": 2} and out["cnn_record"] == {"backend": "jax", "epochs": 2}
    assert [h["epoch"] for h in out["ae_history"]] == [1, 2]  # interrupted after 1, resumed for the 2nd
    terms = {"ok_loss", "ok_kern_loss", "per_loss", "per_kern_loss", "z_loss"}
    assert terms <= set(out["ae_history"][0]) and all(np.isfinite(out["ae_history"][-1][t]) for t in terms)
    assert out["ae_loaded_params"] == 41_186


def test_shipped_models_predict_the_same_on_jax_and_tensorflow(jax_run):
    """The .keras files trained on TensorFlow give the same outputs on JAX."""
    import keras

    from weldlab.trained import load_pretrained

    out, x = jax_run
    assert keras.backend.backend() != "jax"  # this process runs the default backend
    ae, cnn = load_pretrained("ae", 0).model, load_pretrained("cnn", 0).model
    assert np.allclose(np.array(out["ae"]), ae.predict(x, verbose=0), atol=1e-4)
    assert np.allclose(np.array(out["cnn"]), cnn.predict(x, verbose=0), atol=1e-4)
