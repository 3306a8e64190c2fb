import imageio.v3 as iio
import numpy as np
import pytest

from weldlab.radiographs import gdxray_root, load_gdxray


def test_gdxray_loads_ten_radiographs_with_masks(gdxray):
    assert [r.name for r in gdxray] == [f"W0001_{i:04d}" for i in range(1, 11)]
    for r in gdxray:
        assert r.image.dtype == np.float32 and r.mask.dtype == bool
        assert r.image.shape == r.mask.shape
        assert 0.0 <= r.image.min() and r.image.max() <= 1.0
        # 8-bit films: every value is a multiple of 1/255
        assert np.allclose(r.image * 255, np.round(r.image * 255), atol=1e-4)
        assert 0 < r.mask.mean() < 0.2
    assert gdxray[0].image.shape == (366, 3512)


def test_gdxray_subset_and_unknown_name(gdxray_root):
    assert [r.name for r in load_gdxray(gdxray_root, names=["W0001_0002"])] == ["W0001_0002"]
    with pytest.raises(FileNotFoundError, match="W0001_0042"):
        load_gdxray(gdxray_root, names=["W0001_0042"])


@pytest.mark.robustness
def test_missing_gdxray_folder_names_places_and_remedy(tmp_path, monkeypatch):
    monkeypatch.delenv("WELDLAB_GDXRAY", raising=False)
    with pytest.raises(FileNotFoundError, match="--gdxray-root") as exc:
        gdxray_root(tmp_path / "nowhere")
    assert "nowhere" in str(exc.value)


def test_env_variable_points_to_gdxray(gdxray_root, monkeypatch):
    from weldlab.radiographs import gdxray_root as resolve

    monkeypatch.setenv("WELDLAB_GDXRAY", str(gdxray_root))
    assert resolve() == gdxray_root
    monkeypatch.setenv("WELDLAB_GDXRAY", str(gdxray_root / "Welding"))  # wrong level
    with pytest.raises(FileNotFoundError, match="Welding"):
        resolve()


















def test_fetch_gdxray_downloads_with_pooch_from_a_local_server(tmp_path):
    """fetch_gdxray against a throwaway HTTP server on the loopback interface."""
    import functools
    import http.server
    import threading

    from weldlab.radiographs import fetch_gdxray

    src = tmp_path / "server"
    rng = np.random.default_rng(0)
    for i in range(1, 11):
        for series, arr in (("W0001", (rng.random((200, 260)) * 255).astype(np.uint8)),
                            ("W0002", (rng.random((200, 260)) > 0.99).astype(np.uint8) * 255)):
            (src / "Welding" / series).mkdir(parents=True, exist_ok=True)
            iio.imwrite(src / "Welding" / series / f"{series}_{i:04d}.png", arr)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(src))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        dest = fetch_gdxray(tmp_path / "copy", base_url=f"http://127.0.0.1:{server.server_port}", progressbar=False)
    finally:
        server.shutdown()
        server.server_close()
    rs = load_gdxray(dest)
    assert len(rs) == 10 and rs[0].image.shape == (200, 260) and rs[0].mask.any()
