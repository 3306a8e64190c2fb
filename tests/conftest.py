"""Shared fixtures. GDXray is read from ../shared/data/gdxray (or $WELDLAB_GDXRAY); when it
is missing the tests that need it are skipped locally and FAIL in CI (CI=true)."""

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def _gdxray_root():
    from weldlab.radiographs import gdxray_root

    try:
        return gdxray_root(os.environ.get("WELDLAB_GDXRAY") or (REPO.parent / "shared" / "data" / "gdxray"))
    except FileNotFoundError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"GDXray is required in CI but missing: {exc}")
        pytest.skip(f"GDXray not available: {exc}")


@pytest.fixture(scope="session")
def gdxray_root():
    return _gdxray_root()


@pytest.fixture(scope="session")
def gdxray(gdxray_root):
    from weldlab.radiographs import load_gdxray

    return load_gdxray(gdxray_root)


@pytest.fixture(scope="session")
def quick_datasets(tmp_path_factory):
    """The quick synthetic datasets, built once per test session."""
    from weldlab.config import make_config
    from weldlab.datasets import build_or_load

    root = tmp_path_factory.mktemp("artifacts")
    cfg = make_config("quick", artifacts_root=str(root), progress=False)
    return cfg, build_or_load(cfg)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
