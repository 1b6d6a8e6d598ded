"""The one-pass resampler against Pillow, NumPy and its own float path."""
import numpy as np
import pytest
from PIL import Image

from core.augment import warp


def smooth_image(h=64, w=72, channels=3):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = [128 + 100 * np.sin(xx / 7 + k) * np.cos(yy / 9 - k) for k in range(channels)]
    return np.clip(np.rint(np.stack(planes, -1)), 0, 255).astype(np.uint8)


def rotation_about_centre(shape, degrees, scale=1.0, shift=(0.0, 0.0)):
    h, w = shape
    return (warp.translation(w / 2 + shift[0], h / 2 + shift[1]) @ warp.rotation(degrees)
            @ warp.scaling(scale, scale) @ warp.translation(-w / 2, -h / 2))


def pillow_affine(image, matrix, out_shape, resample):
    inv = np.linalg.inv(matrix)
    data = tuple(inv[:2].ravel())
    out = Image.fromarray(image).transform(out_shape[::-1], Image.Transform.AFFINE, data, resample)
    return np.asarray(out)


def interior(shape, matrix, margin=2.0):
    """Output pixels whose bilinear footprint lies at least ``margin`` px inside the source."""
    inv = np.linalg.inv(matrix)
    ii, jj = np.mgrid[0:shape[0], 0:shape[1]]
    pts = np.stack([jj.ravel() + 0.5, ii.ravel() + 0.5], -1)
    src = warp.transform_points(inv, pts)
    return ((src[:, 0] > margin) & (src[:, 0] < SRC_W - margin) & (src[:, 1] > margin)
            & (src[:, 1] < SRC_H - margin)).reshape(shape)


SRC_H, SRC_W = 64, 72


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("degrees,scale", [(12.0, 1.0), (-33.0, 1.3), (70.0, 0.8)])
def test_bilinear_matches_pillow_inside(channels, degrees, scale):
    image = smooth_image(SRC_H, SRC_W, channels)
    m = rotation_about_centre((SRC_H, SRC_W), degrees, scale, shift=(1.3, -2.1))
    ours = warp.warp_image(image[..., 0] if channels == 1 else image, m, (SRC_H, SRC_W))
    src = image[..., 0] if channels == 1 else image
    if channels == 4:  # Pillow premultiplies RGBA; compare as CMYK, a 4-band mode it keeps apart
        ref = np.asarray(Image.frombytes("CMYK", (SRC_W, SRC_H), src.tobytes()).transform(
            (SRC_W, SRC_H), Image.Transform.AFFINE, tuple(np.linalg.inv(m)[:2].ravel()),
            Image.Resampling.BILINEAR))
    else:
        ref = pillow_affine(src, m, (SRC_H, SRC_W), Image.Resampling.BILINEAR)
    inside = interior((SRC_H, SRC_W), m)
    diff = np.abs(ours.astype(int) - ref.astype(int))[inside]
    assert inside.sum() > 1000 and diff.max() <= 1


@pytest.mark.parametrize("border", warp.BORDER_MODES)
def test_uint8_and_float_paths_agree(border):
    image = smooth_image()
    m = rotation_about_centre(image.shape[:2], 25.0, 1.1, shift=(5.0, 3.0))
    fill = (10, 200, 40)
    u8 = warp.warp_image(image, m, (50, 60), border=border, fill=fill)
    f32 = warp.warp_image(image.astype(np.float32) / 255, m, (50, 60), border=border,
                          fill=np.array(fill) / 255)
    # uint8 rounds once and uses 8-bit weights (error <= 0.5 + contrast/512 grey levels)
    assert np.abs(f32 * 255 - u8).max() <= 1.5
    assert np.abs(f32 * 255 - u8).mean() < 0.3


@pytest.mark.parametrize("border", ["edge", "reflect", "symmetric", "constant"])
def test_integer_shift_equals_numpy_pad(border):
    image = smooth_image(20, 24)
    out = warp.warp_image(image, warp.translation(5, 3), (30, 34), border=border, fill=7)
    kwargs = {"constant_values": 7} if border == "constant" else {}
    ref = np.pad(image, ((3, 7), (5, 5), (0, 0)), mode=border, **kwargs)
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("border", ["reflect", "symmetric", "edge"])
def test_subpixel_borders_follow_numpy_pad(border):
    """Far outside the image, reflect/symmetric/edge sample the padded image np.pad would build."""
    image = smooth_image(16, 20)
    m = warp.translation(30.5, 20.25)  # shift by more than the image size, sub-pixel
    out = warp.warp_image(image.astype(np.float32), m, (50, 60), border=border)
    padded = np.pad(image.astype(np.float64), ((40, 40), (40, 40), (0, 0)), mode=border)
    ref = warp.warp_image(padded.astype(np.float32), warp.translation(-9.5, -19.75), (50, 60), border="edge")
    np.testing.assert_allclose(out, ref, atol=1e-3)


def test_flips_and_quarter_turns_are_exact():
    image = smooth_image(9, 13)
    h, w = image.shape[:2]
    flip_h = np.array([[-1.0, 0, w], [0, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(warp.warp_image(image, flip_h, (h, w)), image[:, ::-1])
    turn = warp.translation(0, w) @ warp.rotation(90)  # counter-clockwise quarter turn
    np.testing.assert_array_equal(warp.warp_image(image, turn, (w, h)), np.rot90(image))
    np.testing.assert_array_equal(warp.warp_mask(image[..., 0], turn, (w, h)), np.rot90(image[..., 0]))


def test_nearest_keeps_labels_and_matches_pillow():
    labels = np.random.default_rng(0).integers(0, 7, (SRC_H, SRC_W)).astype(np.uint8)
    m = rotation_about_centre(labels.shape, 17.0, 1.2)
    ours = warp.warp_mask(labels, m, labels.shape, border="constant", fill=0)
    ref = pillow_affine(labels, m, labels.shape, Image.Resampling.NEAREST)
    inside = interior(labels.shape, m, margin=1.0)
    assert (ours[inside] == ref[inside]).mean() > 0.995  # ties at exact half pixels may differ
    for dtype in (np.int32, np.int64, np.uint16, bool):
        out = warp.warp_mask(labels.astype(dtype), m, labels.shape)
        assert out.dtype == dtype and set(np.unique(out)) <= set(np.unique(labels.astype(dtype))) | {0}


def test_multichannel_masks_and_many_channels():
    rng = np.random.default_rng(1)
    stack = rng.integers(0, 3, (30, 40, 5)).astype(np.uint8)
    m = rotation_about_centre((30, 40), 10.0)
    out = warp.warp_mask(stack, m, (30, 40))
    for k in range(5):
        np.testing.assert_array_equal(out[..., k], warp.warp_mask(stack[..., k], m, (30, 40)))
    six = rng.integers(0, 256, (30, 40, 6), dtype=np.uint8)  # more than four channels: two packed groups
    out6 = warp.warp_image(six, m, (30, 40))
    np.testing.assert_array_equal(out6[..., 4:], warp.warp_image(six[..., 4:], m, (30, 40)))


def test_downscale_is_antialiased():
    stripes = np.zeros((128, 128), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes alias badly under point sampling
    m = warp.scaling(0.25, 0.25) @ warp.translation(-0.5, 0)  # samples land on white columns only
    small = warp.warp_image(stripes, m, (32, 32), border="edge")[:, 1:-1]  # edge columns see the border
    assert abs(float(small.mean()) - 127.5) < 3 and small.std() < 3
    aliased = warp.warp_image(stripes, m, (32, 32), border="edge", antialias=False)
    assert aliased.mean() > 250


def test_large_coordinates_use_wide_integers():
    image = smooth_image(8, 8)
    m = warp.translation(-40000.5, 0)  # sample far beyond int32 16.16 fixed-point range
    out = warp.warp_image(image, m, (8, 8), border="edge")
    np.testing.assert_array_equal(out, np.repeat(image[:, -1:], 8, axis=1))


def test_fill_rules_and_errors():
    image = smooth_image(10, 10, 4)
    out = warp.warp_image(image, warp.translation(0.5, 100), (10, 10), border="constant", fill=(1, 2, 3))
    np.testing.assert_array_equal(out[0, 0], [1, 2, 3, 255])  # RGB fill on RGBA: opaque
    grey = warp.warp_image(image[..., 0], warp.translation(0.5, 100), (4, 4), fill=(255, 255, 255))
    assert np.all(grey == 255)
    with pytest.raises(ValueError, match="fill has 2 values but the array has 4 channels"):
        warp.warp_image(image, warp.translation(0.5, 100), (10, 10), fill=(1, 2))
