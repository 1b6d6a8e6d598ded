"""Composition: call styles, containers, records and replay, fusion, error messages."""
import numpy as np
import pytest

from core.augment import (
    Affine, Brightness, BrightnessContrast, Compose, Contrast, Gamma, GaussianBlur, HorizontalFlip, OneOf,
    RandomApply, Resize, Rotate, SomeOf, ToCHW, ToFloat, VerticalFlip, derive_rng,
)


def image(h=32, w=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_call_styles():
    pipe = Compose([HorizontalFlip(p=1)])
    img = image()
    assert isinstance(pipe(img), np.ndarray)
    assert isinstance(pipe(img, 0), np.ndarray)
    res = pipe(image=img, rng=0)
    assert set(res) == {"image", "params"}
    res = pipe(img, mask=img[..., 0])
    assert set(res) == {"image", "mask", "params"}
    res = pipe(image=img, masks=[img[..., 0], img[..., 1] > 5])
    assert len(res["masks"]) == 2 and res["masks"][1].dtype == bool


@pytest.mark.parametrize("call,error,message", [
    (lambda p, i: p(), TypeError, "no image given"),
    (lambda p, i: p(i, picture=i), TypeError, "unknown target"),
    (lambda p, i: p(i, 0, rng=1), TypeError, "rng given both"),
    (lambda p, i: p(i, mask=i[:5, :, 0]), ValueError, r"mask shape \(5, 40\) does not match image shape \(32, 40\)"),
    (lambda p, i: p(i, masks=[i[..., 0], i[:3, :3, 0]]), ValueError, r"masks\[1\] shape"),
    (lambda p, i: p(i.astype(np.float64)), TypeError, "image dtype must be uint8 or float32"),
    (lambda p, i: p(np.zeros((4, 4, 2), np.uint8)), ValueError, r"C in 1, 3, 4"),
    (lambda p, i: p(i, boxes=[[1, 2, 3]]), ValueError, r"boxes must have shape \(N, 4\)"),
    (lambda p, i: p(i, boxes=[[5, 5, 2, 9]]), ValueError, r"boxes\[0\] = \[5.0, 5.0, 2.0, 9.0\] \(pascal_voc\) has zero or negative"),
    (lambda p, i: p(i, boxes=[[1, 1, 4, 4]], labels=[1, 2]), ValueError, "labels has 2 entries for 1 boxes"),
    (lambda p, i: p(i, labels=[1]), TypeError, "labels were given without boxes"),
])
def test_bad_calls_name_the_problem(call, error, message):
    with pytest.raises(error, match=message):
        call(Compose([HorizontalFlip()]), image())


def test_constructor_errors_name_the_argument():
    with pytest.raises(ValueError, match="OneOf: weights must be 2 non-negative"):
        OneOf([HorizontalFlip(), VerticalFlip()], weights=[1, -1])
    with pytest.raises(ValueError, match=r"SomeOf: n must satisfy 0 <= low <= high <= 2"):
        SomeOf([HorizontalFlip(), VerticalFlip()], n=3)
    with pytest.raises(TypeError, match=r"Compose: transforms\[1\] must be a per-image Transform"):
        Compose([HorizontalFlip(), "flip"])
    with pytest.raises(ValueError, match="Rotate: border must be one of constant, edge, reflect, symmetric, got 'wrap'"):
        Rotate(border="wrap")
    with pytest.raises(ValueError, match="Compose: min_visibility must be in"):
        Compose([], min_visibility=2)
    with pytest.raises(TypeError, match=r"Affine: scale must be a number or a \(low, high\) pair"):
        Affine(scale="big")
    with pytest.raises(ValueError, match="Brightness: limit must have low <= high"):
        Brightness((0.3, 0.1))


def test_one_of_follows_weights_and_records_choice():
    pipe = Compose([OneOf([HorizontalFlip(p=1), VerticalFlip(p=1), Rotate(10)], weights=[0.7, 0.3, 0.0])])
    rng = np.random.default_rng(0)
    choices = [pipe(image=image(), rng=rng)["params"]["children"][0]["choice"] for _ in range(400)]
    counts = np.bincount(choices, minlength=3)
    assert counts[2] == 0 and 240 < counts[0] < 320


def test_some_of_picks_distinct_children_in_order():
    children = [HorizontalFlip(p=1), VerticalFlip(p=1), Gamma(), Contrast()]
    pipe = Compose([SomeOf(children, n=(1, 3))])
    sizes = set()
    for seed in range(60):
        rec = pipe(image=image(), rng=seed)["params"]["children"][0]
        assert rec["choices"] == sorted(set(rec["choices"]))
        assert [c["name"] for c in rec["children"]] == [type(children[i]).__name__ for i in rec["choices"]]
        sizes.add(len(rec["choices"]))
    assert sizes == {1, 2, 3}


def test_random_apply_probability():
    pipe = Compose([RandomApply([HorizontalFlip(p=1), Brightness(0.1)], p=0.3)])
    applied = [pipe(image=image(), rng=s)["params"]["children"][0]["applied"] for s in range(400)]
    assert 90 < sum(applied) < 150


def test_replay_rejects_a_record_of_another_pipeline():
    rec = Compose([HorizontalFlip()])(image=image(), rng=0)["params"]
    with pytest.raises(ValueError, match="replay: the record has 'HorizontalFlip' where the pipeline has VerticalFlip"):
        Compose([VerticalFlip()]).replay(rec, image=image())


def test_seeded_pipeline_and_worker_independent_rngs():
    a, b = Compose([Rotate(30), Brightness(0.3)], seed=1), Compose([Rotate(30), Brightness(0.3)], seed=1)
    outs = [a(image()) for _ in range(3)]
    for out in outs:
        np.testing.assert_array_equal(out, b(image()))
    assert not np.array_equal(outs[0], outs[1])
    # per-sample generators depend only on (seed, key): any order, any process
    first = [Compose([Rotate(30)])(image(), derive_rng(5, "a.png", k)) for k in range(3)]
    again = [Compose([Rotate(30)])(image(), derive_rng(5, "a.png", k)) for k in reversed(range(3))][::-1]
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)


def test_tone_curves_fuse_into_one_table():
    steps = [Brightness(0.2), Contrast(0.3), Gamma((0.7, 1.4)), BrightnessContrast(0.1, 0.1)]
    img = image()
    fused = Compose(steps)(img, rng=3)
    alone = Compose(steps, fuse=False)(img, rng=3)
    # one rounding instead of four
    assert np.abs(fused.astype(int) - alone).max() <= 2


def test_table_applied_inside_the_warp_matches_separate_steps():
    steps = [Affine(rotate=12, scale=1.1), Brightness(0.2), Contrast(0.2)]
    img = image(64, 64)
    fused = Compose(steps)(img, rng=4)
    alone = Compose(steps, fuse=False)(img, rng=4)
    assert np.abs(fused.astype(int) - alone).max() <= 1


def test_pixel_step_between_warps_splits_the_pass():
    img = image(64, 64).astype(np.float32) / 255
    steps = [Rotate((10, 10)), GaussianBlur((1.0, 1.0)), Resize(32, 32)]
    out = Compose(steps)(img, rng=0)
    ref = Resize(32, 32)(GaussianBlur((1.0, 1.0))(Rotate((10, 10))(img)))
    np.testing.assert_allclose(out, ref, atol=1e-6)


def test_to_chw_must_be_last():
    img = image()
    out = Compose([ToFloat(), ToCHW()])(img)
    assert out.shape == (3, 32, 40) and out.dtype == np.float32
    with pytest.raises(ValueError, match="ToCHW must be the last transform, got HorizontalFlip after it"):
        Compose([ToCHW(), HorizontalFlip(p=1)])(img)


def test_repr_and_equality():
    pipe = Compose([HorizontalFlip(), OneOf([Rotate(5), Gamma()])], seed=3)
    assert "OneOf([" in repr(pipe) and "Rotate(limit=5" in repr(pipe)
    assert pipe == Compose([HorizontalFlip(), OneOf([Rotate(5), Gamma()])], seed=3)
    assert pipe != Compose([HorizontalFlip(), OneOf([Rotate(6), Gamma()])], seed=3)


def test_pipeline_is_a_data_loader_transform():
    from core.data import ArrayDataset, DataLoader

    images = np.random.default_rng(0).integers(0, 256, (12, 40, 48, 3), dtype=np.uint8)
    pipe = Compose([HorizontalFlip(), Affine(rotate=10), ToFloat(), ToCHW()])
    loader = DataLoader(ArrayDataset(images, np.arange(12)), batch_size=4, seed=3, transform=pipe)
    first = [xb for xb, _ in loader]
    loader.set_epoch(0)
    again = [xb for xb, _ in loader]
    assert first[0].shape == (4, 3, 40, 48) and first[0].dtype == np.float32
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
