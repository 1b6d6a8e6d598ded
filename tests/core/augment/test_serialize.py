"""Pipeline files: JSON/TOML round trips of nested pipelines and the errors users see."""
import json

import pytest

from core.augment import PRESETS, Compose, from_dict, get_preset, load_pipeline, save_pipeline
from core.augment.serialize import dumps_toml, loads_toml


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_both_formats(name, tmp_path):
    pipe = get_preset(name, seed=3)
    for suffix in ("json", "toml"):
        save_pipeline(pipe, tmp_path / f"{name}.{suffix}")
        assert load_pipeline(tmp_path / f"{name}.{suffix}") == pipe


def test_hand_written_toml():
    text = """
name = "Compose"
seed = 7

[[transforms]]
name = "HorizontalFlip"

[[transforms]]
name = "OneOf"
p = 0.5
weights = [3, 1]

[[transforms.transforms]]
name = "Rotate"
limit = [-10, 30]
border = "reflect"

[[transforms.transforms]]
name = "GaussianBlur"
"""
    pipe = from_dict(loads_toml(text))
    assert pipe.seed == 7 and pipe.transforms[1].weights == [3, 1]
    assert pipe.transforms[1].transforms[0].border == "reflect"
    assert loads_toml(dumps_toml({"name": "X", "v": 1e-05, "s": 'a "b"\n', "f": float("inf")})) == \
        {"name": "X", "v": 1e-05, "s": 'a "b"\n', "f": float("inf")}


def write(tmp_path, spec, suffix="json"):
    path = tmp_path / f"p.{suffix}"
    path.write_text(json.dumps(spec) if suffix == "json" else dumps_toml(spec))
    return path


def test_unknown_transform_parameter_and_bad_values_are_named(tmp_path):
    bad_name = {"name": "Compose", "transforms": [{"name": "HorizontalFlip"}, {"name": "Rotat", "limit": 5}]}
    with pytest.raises(ValueError, match=r"p.json.transforms\[1\]: unknown transform 'Rotat'; did you mean Rotate"):
        load_pipeline(write(tmp_path, bad_name))
    bad_arg = {"name": "Compose", "transforms": [{"name": "Affine", "rotation": 5}]}
    with pytest.raises(ValueError, match=r"transforms\[0\] \(Affine\): unknown parameter\(s\) rotation; accepted: scale"):
        load_pipeline(write(tmp_path, bad_arg, "toml"))
    bad_p = {"name": "Compose", "transforms": [{"name": "VerticalFlip", "p": -0.1}]}
    with pytest.raises(ValueError, match=r"transforms\[0\]: VerticalFlip: p must be in \[0, 1\], got -0.1"):
        load_pipeline(write(tmp_path, bad_p))
    missing = {"name": "Compose", "transforms": [{"name": "RandomCrop", "height": 3}]}
    with pytest.raises(ValueError, match=r"\(RandomCrop\): missing required parameter\(s\) width"):
        load_pipeline(write(tmp_path, missing))


def test_file_level_errors(tmp_path):
    (tmp_path / "p.json").write_text("{not json")
    with pytest.raises(ValueError, match="invalid JSON"):
        load_pipeline(tmp_path / "p.json")
    (tmp_path / "p.toml").write_text("name = ")
    with pytest.raises(ValueError, match="invalid TOML"):
        load_pipeline(tmp_path / "p.toml")
    with pytest.raises(ValueError, match="must end in .json or .toml"):
        save_pipeline(Compose([]), tmp_path / "p.yaml")
    with pytest.raises(ValueError, match="cannot read pipeline file"):
        load_pipeline(tmp_path / "missing.json")
