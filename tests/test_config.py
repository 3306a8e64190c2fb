import json
import re
from pathlib import Path

import pytest
import yaml

from weldlab import config as C

REPO = Path(__file__).resolve().parent.parent


def test_presets_are_valid_and_quick_is_the_default():
    for name in C.PRESETS:
        cfg = C.make_config(name)
        assert cfg.preset == name
    quick = C.load_preset("quick")
    defaults = C.Config()
    for k, v in quick.items():
        d = getattr(defaults, k)
        assert (list(d) if isinstance(d, tuple) else d) == v, k


def test_notebook_parameter_cells_match_the_quick_preset():
    quick = C.load_preset("quick")
    for nb in sorted((REPO / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        params = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(params) == 1, nb.name
        ns = {}
        exec("".join(params[0]["source"]), ns)
        for k, v in quick.items():
            if k in ns:
                assert ns[k] == v, (nb.name, k)
        assert not any(c.get("outputs") for c in cells if c["cell_type"] == "code"), f"{nb.name} has outputs"


@pytest.mark.robustness
def test_bad_preset_and_parameters_are_named():
    with pytest.raises(ValueError, match="preset.*'fast'"):
        C.make_config("fast")
    with pytest.raises(ValueError, match="data.*'film'"):
        C.make_config("quick", data="film")
    with pytest.raises(ValueError, match="n_train_okay.*-5"):
        C.make_config("quick", n_train_okay=-5)
    with pytest.raises(ValueError, match="seed.*'abc'"):
        C.make_config("quick", seed="abc")
    with pytest.raises(ValueError, match="cnr_cutoffs"):
        C.make_config("quick", cnr_cutoffs=[7, 3])
    with pytest.raises(ValueError, match=r"ae_okay_weight: expected a number > 0, got 0"):
        C.make_config("quick", ae_okay_weight=0)
    with pytest.raises(ValueError, match=r"ae_code_weight: expected a number >= 0, got -0.1"):
        C.make_config("quick", ae_code_weight=-0.1)
    with pytest.raises(ValueError, match="ae_code_weight.*True"):
        C.make_config("quick", ae_code_weight=True)
    assert C.make_config("quick", ae_code_weight=0).ae_code_weight == 0  # L_reg off is allowed
    for bad in (95, 60, 196, True):
        with pytest.raises(ValueError, match=f"ae_crop: expected .*got {bad!r}"):
            C.make_config("quick", ae_crop=bad)
    assert C.make_config("quick", ae_crop=96).ae_crop == 96 and C.make_config("quick").ae_crop == 0
    with pytest.raises(ValueError, match="unknown parameter 'n_bananas'"):
        C.parse_override("n_bananas=3")
    with pytest.raises(ValueError, match="NAME=VALUE"):
        C.parse_override("seed")
    assert C.parse_override("cnr_cutoffs=[2, 5]") == ("cnr_cutoffs", [2, 5])


def test_dataset_key_ignores_paths_not_content():
    a = C.make_config("quick", artifacts_root="/x")
    b = C.make_config("quick", artifacts_root="/y", progress=False)
    assert a.dataset_key() == b.dataset_key()
    assert a.dataset_key() != C.make_config("quick", seed=2).dataset_key()


def test_simulated_datasets_are_rebuilt_when_the_simulator_changes(monkeypatch):
    import weldlab.simulate

    sim, real = C.make_config("quick"), C.make_config("quick", data="gdxray")
    keys = sim.dataset_key(), real.dataset_key()
    monkeypatch.setattr(weldlab.simulate, "SIMULATOR_VERSION", weldlab.simulate.SIMULATOR_VERSION + 1)
    assert sim.dataset_key() != keys[0] and real.dataset_key() == keys[1]


def _names(specs):
    return {re.split(r"[<>=!~\[ ]", s.strip(), maxsplit=1)[0].lower(): s.replace(" ", "") for s in specs}


def test_environment_yml_lists_the_pyproject_dependencies():
    import tomllib

    py = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = _names(py["dependencies"] + sum(py["optional-dependencies"].values(), []))
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    specs = [d for d in env["dependencies"] if isinstance(d, str)]
    specs += [d for d in env["dependencies"] if isinstance(d, dict)][0]["pip"]
    have = _names(s for s in specs if not s.startswith("-e"))
    for name, spec in wanted.items():
        assert name in have, f"{name} missing from environment.yml"
        assert have[name] == spec, f"{name}: pyproject {spec} vs environment.yml {have[name]}"


def test_glossary_is_alphabetical_and_has_the_terms_the_chapters_use():
    text = (REPO / "book" / "glossary.md").read_text()
    body = text.split("```{glossary}")[1].split("```")[0]
    terms = [line.strip() for line in body.splitlines() if line and not line.startswith(" ")]
    assert terms == sorted(terms, key=str.lower), terms
    for needed in ("AUROC", "Residual", "ROC curve", "Convolutional neural network (CNN)",
                   "Image quality indicator (IQI)", "Two-sided rule"):
        assert needed in terms, needed
