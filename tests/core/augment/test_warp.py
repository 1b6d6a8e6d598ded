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


@pytest.mark.parametrize("dtype,shift", [(np.float32, -40000.5), (np.uint8, -5e6 - 0.5), (np.uint8, 5e6 + 0.25)])
def test_large_coordinates_use_wide_integers(dtype, shift):
    # beyond int32 fixed point: 16.16 for float images, 24.8 for the uint8 kernel
    image = smooth_image(8, 8).astype(dtype)
    out = warp.warp_image(image, warp.translation(shift, 0), (8, 8), border="edge")
    np.testing.assert_array_equal(out, np.repeat(image[:, -1:] if shift < 0 else image[:, :1], 8, axis=1))


def test_fill_rules_and_errors():
    image = smooth_image(10, 10, 4)
    out = warp.warp_image(image, warp.translation(0.5, 100), (10, 10), border="constant", fill=(1, 2, 3))
    np.testing.assert_array_equal(out[0, 0], [1, 2, 3, 255])  # RGB fill on RGBA: opaque
    grey = warp.warp_image(image[..., 0], warp.translation(0.5, 100), (4, 4), fill=(255, 255, 255))
    assert np.all(grey == 255)
    with pytest.raises(ValueError, match="fill has 2 values but the array has 4 channels"):
        warp.warp_image(image, warp.translation(0.5, 100), (10, 10), fill=(1, 2))


def random_affine(rng, shape, spread):
    """A rotation/zoom/shift about the centre; ``spread`` scales how far samples may leave the image."""
    return rotation_about_centre(shape, rng.uniform(-40, 40), rng.uniform(0.5, 3.0),
                                 shift=tuple(rng.uniform(-spread, spread, 2)))


@pytest.mark.parametrize("frac", [8, 16])
def test_grid_knows_its_extremes_before_building_the_field(frac):
    from core.augment.resample import Grid

    rng = np.random.default_rng(0)
    for trial in range(60):
        h, w = rng.integers(1, 90, 2)
        oh, ow = rng.integers(1, 70, 2)
        m = warp.scaling(rng.uniform(0.3, 4), rng.uniform(0.3, 4)) @ random_affine(rng, (h, w), 40)
        border = warp.BORDER_MODES[trial % 4]
        grid = Grid(warp.index_affine(m), (oh, ow), (h, w), border, frac)
        assert (int(grid.xx.min()) >> frac, int(grid.xx.max()) >> frac) == grid.x0_span
        assert (int(grid.yy.min()) >> frac, int(grid.yy.max()) >> frac) == grid.y0_span
        top, left = grid.origin
        assert 0 <= top and top + grid.h <= h and 0 <= left and left + grid.w <= w
        if grid.border in ("constant", "edge"):  # every sample inside the cut lands on the cut
            p = grid.pad
            x0, y0 = grid.xx >> frac, grid.yy >> frac
            inside = (x0 >= p - left) & (x0 + 1 < p - left + w) & (y0 >= p - top) & (y0 + 1 < p - top + h)
            assert np.all((x0[inside] >= p) & (x0[inside] + 1 < p + grid.w))
            assert np.all((y0[inside] >= p) & (y0[inside] + 1 < p + grid.h))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_border_mode_is_irrelevant_when_samples_stay_inside(dtype):
    image = smooth_image(40, 50)
    image = image if dtype == np.uint8 else image.astype(np.float32) / 255
    m = rotation_about_centre(image.shape[:2], 13.0, 2.5, shift=(3.0, -2.0))  # zoomed in: all inside
    outs = [warp.warp_image(image, m, (30, 36), border=b, fill=99) for b in warp.BORDER_MODES]
    masks = [warp.warp_mask(image[..., 0], m, (30, 36), border=b, fill=7) for b in warp.BORDER_MODES]
    for out, mask in zip(outs[1:], masks[1:]):
        np.testing.assert_array_equal(out, outs[0])
        np.testing.assert_array_equal(mask, masks[0])


def test_flat_images_stay_exactly_flat():
    """The four 8-bit weights of every pixel sum to exactly 256, so a constant is reproduced."""
    rng = np.random.default_rng(1)
    lut = rng.integers(0, 256, 256, dtype=np.uint8)
    for value in (0, 1, 37, 128, 254, 255):
        flat = np.full((45, 61, 3), value, np.uint8)
        for _ in range(5):
            m = random_affine(rng, flat.shape[:2], 8)
            out = warp.warp_image(flat, m, (40, 50), border="edge")
            assert np.all(out == value)
            assert np.all(warp.warp_image(flat, m, (40, 50), border="edge", lut=lut) == lut[value])


def test_zoom_into_a_corner_matches_pillow():
    """A small crop of the source (the part the output samples) gives Pillow's values."""
    image = smooth_image(SRC_H, SRC_W)
    m = warp.scaling(3.1, 2.7) @ warp.rotation(7.0) @ warp.translation(-58.3, -47.9)  # bottom-right, partly off
    ours = warp.warp_image(image, m, (SRC_H, SRC_W), border="constant")
    ref = pillow_affine(image, m, (SRC_H, SRC_W), Image.Resampling.BILINEAR)
    inside = interior((SRC_H, SRC_W), m, margin=1.0)
    assert inside.sum() > 300 and (~inside).sum() > 300
    assert np.abs(ours.astype(int) - ref.astype(int))[inside].max() <= 1
    assert np.all(ours[~interior((SRC_H, SRC_W), m, margin=-1.0)] == 0)  # beyond the image: the fill


@pytest.mark.parametrize("channels", [1, 3, 4, 6])
def test_strided_and_changing_inputs_give_the_same_result(channels):
    """Views (flipped, strided) are read like their copies; scratch buffers that grow and
    shrink between calls leave no trace."""
    rng = np.random.default_rng(2)
    big = rng.integers(0, 256, (90, 120, channels), dtype=np.uint8)
    small = big[5:25, 7:31]
    m_big, m_small = random_affine(rng, big.shape[:2], 10), random_affine(rng, small.shape[:2], 3)
    lut = rng.integers(0, 256, 256, dtype=np.uint8)
    first = warp.warp_image(big, m_big, (70, 80), lut=lut)
    np.testing.assert_array_equal(warp.warp_image(small, m_small, (20, 30)),
                                  warp.warp_image(small.copy(), m_small, (20, 30)))
    np.testing.assert_array_equal(warp.warp_image(big, m_big, (70, 80), lut=lut), first)
    flipped = big[:, ::-1]
    np.testing.assert_array_equal(warp.warp_image(flipped, m_big, (70, 80)),
                                  warp.warp_image(flipped.copy(), m_big, (70, 80)))
