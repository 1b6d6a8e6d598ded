"""Invariants over the whole registry (after albumentations' tests over ``aug_definitions``)."""
import json

import numpy as np
import pytest

from core.augment import Compose, available, from_dict, load_pipeline, save_pipeline, to_dict
from core.augment.serialize import dumps_toml, loads_toml
from tests.core.augment.definitions import AUG_DEFINITIONS, BATCH_DEFINITIONS, CONVERSIONS


def make_image(kind: str, shape=(40, 48), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    channels = {"gray_u8": None, "rgb_u8": 3, "rgba_u8": 4, "rgb_f32": 3, "one_f32": 1}[kind]
    full = shape if channels is None else shape + (channels,)
    if kind.endswith("u8"):
        return rng.integers(0, 256, full, dtype=np.uint8)
    return rng.random(full, dtype=np.float32)


KINDS = ["gray_u8", "rgb_u8", "rgba_u8", "rgb_f32", "one_f32"]
IDS = [name for name, _ in AUG_DEFINITIONS]


def make_mask(shape=(40, 48), seed=1) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 6, shape).astype(np.int32)


def test_registry_is_covered_once():
    names = [n for n, _ in AUG_DEFINITIONS + BATCH_DEFINITIONS]
    assert len(names) == len(set(names))
    assert sorted(names) == available()
    for name, factory in AUG_DEFINITIONS + BATCH_DEFINITIONS:
        assert type(factory()).__name__ == name


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name,factory", AUG_DEFINITIONS, ids=IDS)
def test_inputs_untouched_and_shape_dtype_rules(name, factory, kind):
    image, mask = make_image(kind), make_mask()
    image_before, mask_before = image.copy(), mask.copy()
    res = factory()(image=image, mask=mask, rng=3)
    np.testing.assert_array_equal(image, image_before)
    np.testing.assert_array_equal(mask, mask_before)
    out, out_mask = res["image"], res["mask"]
    assert not np.shares_memory(out, image) and not np.shares_memory(out_mask, mask)
    assert out_mask.dtype == mask.dtype and out_mask.ndim == 2
    if name == "ToCHW":
        assert out.shape == (1 if image.ndim == 2 else image.shape[2],) + image.shape[:2]
    else:
        assert out.ndim == image.ndim and out.shape[2:] == image.shape[2:]
        assert out.shape[:2] == out_mask.shape
    if name in CONVERSIONS - {"ToCHW"}:
        assert out.dtype == np.float32
    else:
        assert out.dtype == image.dtype
    if out.dtype == np.float32 and name != "Normalize":
        assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    # masks only ever hold input labels or the mask fill (0)
    assert set(np.unique(out_mask)) <= set(np.unique(mask)) | {0}


@pytest.mark.parametrize("name,factory", AUG_DEFINITIONS, ids=IDS)
def test_same_seed_same_output(name, factory):
    image = make_image("rgb_u8")
    a = factory()(image, rng=7)
    b = factory()(image, 7)  # the DataLoader's transform(x, rng) style
    np.testing.assert_array_equal(a, b)
    first = Compose([factory()], seed=5)
    second = Compose([factory()], seed=5)
    for _ in range(3):
        np.testing.assert_array_equal(first(image), second(image))


@pytest.mark.parametrize("kind", ["rgb_u8", "rgb_f32"])
@pytest.mark.parametrize("name,factory", AUG_DEFINITIONS, ids=IDS)
def test_replay_reproduces(name, factory, kind):
    pipe = Compose([factory()])
    image, mask = make_image(kind), make_mask()
    res = pipe(image=image, mask=mask, rng=11)
    json.dumps(res["params"])  # records are plain JSON
    again = pipe.replay(json.loads(json.dumps(res["params"])), image=image, mask=mask)
    np.testing.assert_array_equal(again["image"], res["image"])
    np.testing.assert_array_equal(again["mask"], res["mask"])
    # the record also applies to an input of another size
    other = pipe.replay(res["params"], image=make_image(kind, shape=(44, 52), seed=3))
    assert other["image"].dtype == res["image"].dtype


@pytest.mark.parametrize("name,factory", AUG_DEFINITIONS, ids=IDS)
def test_json_and_toml_round_trip(name, factory, tmp_path):
    pipe = Compose([factory()], seed=4, box_format="coco", min_visibility=0.25)
    spec = to_dict(pipe)
    assert from_dict(json.loads(json.dumps(spec))) == pipe
    assert from_dict(loads_toml(dumps_toml(spec))) == pipe
    image = make_image("rgb_u8")
    for suffix in ("json", "toml"):
        save_pipeline(pipe, tmp_path / f"p.{suffix}")
        loaded = load_pipeline(tmp_path / f"p.{suffix}")
        assert loaded == pipe
        np.testing.assert_array_equal(loaded(image, rng=2), pipe(image, rng=2))


@pytest.mark.parametrize("name,factory", AUG_DEFINITIONS, ids=IDS)
def test_probability_outside_unit_interval_is_rejected(name, factory):
    spec = to_dict(factory())
    spec["p"] = 1.5
    with pytest.raises(ValueError, match=rf"{name}: p must be in \[0, 1\], got 1.5"):
        from_dict(spec)


@pytest.mark.parametrize("name,factory", AUG_DEFINITIONS, ids=IDS)
def test_probability_zero_is_identity(name, factory):
    spec = to_dict(factory())
    spec["p"] = 0.0
    t = from_dict(spec)
    image = make_image("rgba_u8")
    res = t(image=image, rng=0)
    np.testing.assert_array_equal(res["image"], image)
    assert not np.shares_memory(res["image"], image)
    record = res["params"] if name == "Compose" else res["params"]["children"][0]
    assert record == {"name": name, "applied": False}
