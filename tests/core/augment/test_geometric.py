"""Geometric transforms against NumPy/Pillow references, and their boxes/keypoints."""
import numpy as np
import pytest
from PIL import Image, ImageOps

from core.augment import (
    Affine, CenterCrop, Compose, HorizontalFlip, Pad, PadIfNeeded, RandomCrop, RandomResizedCrop, Resize,
    Rotate, VerticalFlip,
)


def photo(h=37, w=53, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)


def test_flips_equal_numpy_and_pillow():
    image = photo()
    np.testing.assert_array_equal(HorizontalFlip(p=1)(image), image[:, ::-1])
    np.testing.assert_array_equal(VerticalFlip(p=1)(image), image[::-1])
    np.testing.assert_array_equal(HorizontalFlip(p=1)(image), np.asarray(ImageOps.mirror(Image.fromarray(image))))
    both = Compose([HorizontalFlip(p=1), VerticalFlip(p=1)])(image)
    np.testing.assert_array_equal(both, image[::-1, ::-1])
    grey = image[..., 0]
    np.testing.assert_array_equal(HorizontalFlip(p=1)(grey), grey[:, ::-1])


def test_random_crop_equals_slicing_at_recorded_offset():
    image, mask = photo(), photo(channels=1)[..., 0]
    pipe = Compose([RandomCrop(20, 31)])
    for seed in range(5):
        res = pipe(image=image, mask=mask, rng=seed)
        p = res["params"]["children"][0]["params"]
        top, left = int(p["y"] * (37 - 20 + 1)), int(p["x"] * (53 - 31 + 1))
        np.testing.assert_array_equal(res["image"], image[top:top + 20, left:left + 31])
        np.testing.assert_array_equal(res["mask"], mask[top:top + 20, left:left + 31])
    offsets = {tuple(pipe(image=image, rng=s)["params"]["children"][0]["params"].values()) for s in range(40)}
    assert len(offsets) > 20  # positions are actually random


def test_center_crop_equals_pillow_crop():
    image = photo()
    out = CenterCrop(20, 30)(image)
    left, top = (53 - 30) // 2, (37 - 20) // 2
    ref = np.asarray(Image.fromarray(image).crop((left, top, left + 30, top + 20)))
    np.testing.assert_array_equal(out, ref)


def test_crop_larger_than_image_names_the_problem():
    with pytest.raises(ValueError, match=r"RandomCrop: crop 40x10 \(height x width\) is larger than the 37x53 image"):
        RandomCrop(40, 10)(photo(), rng=0)


@pytest.mark.parametrize("border", ["constant", "edge", "reflect", "symmetric"])
def test_pad_equals_numpy_pad(border):
    image = photo(9, 11)
    out = Pad((2, 3, 4, 1), border=border, fill=9)(image)
    kwargs = {"constant_values": 9} if border == "constant" else {}
    np.testing.assert_array_equal(out, np.pad(image, ((3, 1), (2, 4), (0, 0)), mode=border, **kwargs))


def test_pad_if_needed_centres_and_leaves_big_images():
    image = photo(9, 11)
    out = PadIfNeeded(12, 16)(image)
    assert out.shape == (12, 16, 3)
    np.testing.assert_array_equal(out[1:10, 2:13], image)
    np.testing.assert_array_equal(PadIfNeeded(5, 5)(image), image)


def test_resize_matches_pillow_when_enlarging():
    image = photo(20, 30)
    out = Resize(50, 70)(image)
    ref = np.asarray(Image.fromarray(image).resize((70, 50), Image.Resampling.BILINEAR))
    # Pillow renormalises its triangle filter at the border (compare away from it) and rounds
    # between its two separable passes; both use fixed-point weights
    diff = np.abs(out.astype(int) - ref)[2:-2, 2:-2]
    assert diff.max() <= 2 and diff.mean() < 0.5


def test_resize_keep_aspect_fits_inside():
    assert Resize(100, 100, keep_aspect=True)(photo(50, 80)).shape == (62, 100, 3)
    assert Resize(30, 200, keep_aspect=True)(photo(50, 80)).shape == (30, 48, 3)


def test_random_resized_crop_output_and_record():
    image = photo(60, 80)
    res = Compose([RandomResizedCrop(32, 24, scale=(0.2, 0.5))])(image=image, rng=3)
    assert res["image"].shape == (32, 24, 3)
    p = res["params"]["children"][0]["params"]
    area = p["w"] * p["h"]
    assert 0.19 <= area <= 0.51 and p["x"] + p["w"] <= 1 + 1e-9 and p["y"] + p["h"] <= 1 + 1e-9


def test_rotate_boxes_are_bounds_of_rotated_corners():
    image = np.zeros((100, 100, 3), np.uint8)
    res = Rotate(limit=(90, 90))(image=image, boxes=[[10, 20, 30, 60]], labels=[7], rng=0)
    # a counter-clockwise quarter turn about the centre: (x, y) -> (y, 100 - x)
    np.testing.assert_allclose(res["boxes"], [[20, 70, 60, 90]], atol=1e-9)
    assert res["labels"] == [7]


def test_boxes_follow_flip_in_every_format():
    image = np.zeros((50, 80, 3), np.uint8)
    voc = np.array([[10.0, 5.0, 30.0, 25.0]])
    out = Compose([HorizontalFlip(p=1)])(image=image, boxes=voc)["boxes"]
    np.testing.assert_allclose(out, [[50, 5, 70, 25]])
    coco = Compose([HorizontalFlip(p=1)], box_format="coco")(image=image, boxes=[[10, 5, 20, 20]])["boxes"]
    np.testing.assert_allclose(coco, [[50, 5, 20, 20]])
    yolo_in = [[20 / 80, 15 / 50, 20 / 80, 20 / 50]]
    yolo = Compose([HorizontalFlip(p=1)], box_format="yolo")(image=image, boxes=yolo_in)["boxes"]
    np.testing.assert_allclose(yolo, [[60 / 80, 15 / 50, 20 / 80, 20 / 50]])


def test_boxes_clipped_and_filtered_with_labels():
    image = np.zeros((40, 40, 3), np.uint8)
    boxes = [[0, 0, 10, 10], [15, 15, 35, 35], [30, 0, 40, 4]]
    pipe = Compose([CenterCrop(20, 20)], min_visibility=0.5)
    res = pipe(image=image, boxes=boxes, labels=np.array([1, 2, 3]))
    # crop window is [10, 30)^2: box 0 disappears, box 1 keeps 225/400, box 2 disappears
    np.testing.assert_allclose(res["boxes"], [[5, 5, 20, 20]])
    np.testing.assert_array_equal(res["labels"], [2])
    res = Compose([CenterCrop(20, 20)], min_area=300)(image=image, boxes=boxes, labels=["a", "b", "c"])
    assert res["labels"] == [] and res["boxes"].shape == (0, 4)


def test_strict_boxes_reject_boxes_outside():
    image = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(ValueError, match=r"boxes\[1\] = \[30.0, 30.0, 45.0, 39.0\] \(pascal_voc\) lies outside the 40x40"):
        Compose([HorizontalFlip()], strict_boxes=True)(image=image, boxes=[[1, 1, 5, 5], [30, 30, 45, 39]])
    out = Compose([HorizontalFlip(p=0)])(image=image, boxes=[[30, 30, 45, 39]])["boxes"]
    np.testing.assert_allclose(out, [[30, 30, 40, 39]])  # lenient mode clips


def test_keypoints_follow_and_invisible_ones_are_dropped():
    image = np.zeros((40, 60, 3), np.uint8)
    kps = np.array([[10.5, 5.5, 1.0], [59.0, 39.0, 2.0]])
    res = Compose([HorizontalFlip(p=1), CenterCrop(30, 50)])(image=image, keypoints=kps, keypoint_labels=["a", "b"])
    np.testing.assert_allclose(res["keypoints"], [[44.5, 0.5, 1.0]])  # extra columns pass through
    assert res["keypoint_labels"] == ["a"]
    keep_all = Compose([CenterCrop(30, 50)], remove_invisible_keypoints=False)(image=image, keypoints=kps)
    assert len(keep_all["keypoints"]) == 2


def test_affine_identity_parameters_change_nothing():
    image = photo()
    np.testing.assert_array_equal(Affine()(image, rng=0), image)


def test_fused_and_sequential_agree():
    image = photo(64, 64, seed=3).astype(np.float32) / 255
    transforms = [Rotate(limit=(20, 20)), Affine(scale=1.2, translate=(0.05, 0.05)), CenterCrop(40, 40)]
    fused = Compose(transforms)(image, rng=0)
    alone = Compose(transforms, fuse=False)(image, rng=0)
    # fusion resamples once: differences come only from the extra interpolation of the sequential run
    inner = np.s_[8:-8, 8:-8]
    assert np.abs(fused - alone)[inner].mean() < 0.08
    assert fused.shape == alone.shape == (40, 40, 3)


def test_matrices_are_the_products_of_their_parts():
    from core.augment import warp

    shape = (37, 53)
    rng = np.random.default_rng(0)
    affine = Affine(scale=(0.7, 1.3), translate=0.2, rotate=40, shear=15)
    for _ in range(20):
        p = affine.sample_params(rng, shape)
        h, w = shape
        ref = (warp.translation(w / 2 + p["tx"] * w, h / 2 + p["ty"] * h) @ warp.rotation(p["angle"])
               @ warp.shearing(p["shear"]) @ warp.scaling(p["scale"], p["scale"]) @ warp.translation(-w / 2, -h / 2))
        np.testing.assert_allclose(affine.matrix(p, shape)[0], ref, rtol=0, atol=1e-9)
        angle = {"angle": p["angle"]}
        ref = warp.translation(w / 2, h / 2) @ warp.rotation(p["angle"]) @ warp.translation(-w / 2, -h / 2)
        np.testing.assert_allclose(Rotate(40).matrix(angle, shape)[0], ref, rtol=0, atol=1e-9)
    crop = RandomResizedCrop(24, 30)
    p = crop.sample_params(rng, shape)
    x0, y0, cw, ch = p["x"] * 53, p["y"] * 37, p["w"] * 53, p["h"] * 37
    ref = warp.scaling(30 / cw, 24 / ch) @ warp.translation(-x0, -y0)
    np.testing.assert_allclose(crop.matrix(p, shape)[0], ref, rtol=0, atol=1e-9)


def test_one_draw_for_many_parameters_gives_the_same_numbers():
    from core.augment.base import uniform, uniforms

    pairs = [(0.9, 1.1), (-0.1, 0.1), (0.0, 0.0), (-15.0, 15.0), (2.0, 2.0)]
    for seed in range(5):
        one_by_one = [uniform(r, p) for r in [np.random.default_rng(seed)] for p in pairs]
        r = np.random.default_rng(seed)
        assert uniforms(r, *pairs) == one_by_one
        # and the generator is left where one draw per random parameter leaves it
        reference = np.random.default_rng(seed)
        reference.random(3)
        assert r.random() == reference.random()
    assert uniforms(np.random.default_rng(0), (1.0, 1.0)) == [1.0]
