"""Property tests: masks, boxes and images stay aligned through any geometric pipeline.

The image encodes each pixel's own (column, row) as a linear ramp, and the
mask holds each pixel's flat index. Bilinear sampling reproduces a linear
ramp exactly, so after any pipeline the coordinates decoded from the image
and from the mask must agree to within the nearest-neighbour rounding of
the mask (half a source pixel per resampling pass).
"""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import core.augment.compose as compose_module
from core.augment import (
    Affine, CenterCrop, Compose, HorizontalFlip, Pad, PadIfNeeded, RandomCrop, RandomResizedCrop, Resize, Rotate, VerticalFlip,
)

H, W = 40, 48
BORDERS = ["constant", "edge", "reflect", "symmetric"]
angle = st.floats(-60, 60)
scale = st.floats(0.7, 1.4)
shift = st.floats(-0.15, 0.15)


def crop(t, border):
    """A crop that fits whatever size came before (padding first when needed)."""
    return Compose([PadIfNeeded(t.height, t.width, border=border, fill_mask=-1), t])


def geometric(border, axis_aligned=False):
    """One geometric transform (a crop is a nested Compose of pad-if-needed and crop)."""
    size = st.integers(30, 60)
    options = [
        st.just(HorizontalFlip(p=1.0)),
        st.just(VerticalFlip(p=1.0)),
        st.builds(lambda h, w: crop(RandomCrop(h, w), border), st.integers(8, 30), st.integers(8, 30)),
        st.builds(lambda h, w: crop(CenterCrop(h, w), border), st.integers(8, 30), st.integers(8, 30)),
        st.builds(lambda h, w, s: RandomResizedCrop(h, w, scale=(s, 1.0)), size, size, st.floats(0.2, 1.0)),
        st.builds(lambda h, w, k: Resize(h, w, keep_aspect=k), size, size, st.booleans()),
        st.builds(lambda pad: Pad(pad, border=border, fill=0, fill_mask=-1), st.integers(0, 5)),
        st.builds(lambda s, tx: Affine(scale=(s, s), translate=(tx, tx), border=border, fill_mask=-1), scale, shift),
    ]
    if not axis_aligned:
        options += [
            st.builds(lambda a: Rotate(limit=(a, a), border=border, fill_mask=-1), angle),
            st.builds(lambda a, s, sh, tx: Affine(scale=(s, s), rotate=(a, a), shear=(sh, sh), translate=(tx, tx),
                                                  border=border, fill_mask=-1), angle, scale, st.floats(-20, 20), shift),
        ]
    return st.one_of(*options)


def coordinate_image(dtype):
    jj, ii = np.meshgrid(np.arange(W), np.arange(H))
    if dtype == np.uint8:  # 4 grey levels per pixel step: (H, W) <= 64 fits in a byte
        return np.stack([4 * jj + 2, 4 * ii + 2, np.full_like(jj, 255)], -1).astype(np.uint8)
    return np.stack([(jj + 0.5) / W, (ii + 0.5) / H, np.ones((H, W))], -1).astype(np.float32)


def decode_image(out):
    if out.dtype == np.uint8:
        x, y, valid = (out[..., 0] - 2) / 4.0, (out[..., 1] - 2) / 4.0, out[..., 2] == 255
    else:
        x, y, valid = out[..., 0] * W - 0.5, out[..., 1] * H - 0.5, out[..., 2] == 1.0
    return x, y, valid


def near_fold(coord, radius=2):
    """Output pixels within ``radius`` of a reflection fold (where the source coordinate turns back).

    The antialiasing prefilter of strong zoom-outs averages across folds, so a
    ramp is not linear there; alignment is judged elsewhere.
    """
    out = np.zeros(coord.shape, bool)
    padded = np.pad(coord, radius, mode="edge")
    for axis in (0, 1):
        win = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1, axis=axis)
        win = win[radius:-radius, :] if axis == 1 else win[:, radius:-radius]
        span = win.max(axis=-1) - win.min(axis=-1)
        out |= span > np.abs(win[..., -1] - win[..., 0])
    return out


def assert_aligned(res, tol):
    x, y, valid = decode_image(res["image"])
    mask = res["mask"]
    jm, im = mask % W, mask // W
    defined = valid & (mask >= 0) & ~near_fold(jm) & ~near_fold(im)
    if defined.any():
        err = np.maximum(np.abs(x - jm), np.abs(y - im))[defined]
        assert err.max() <= tol, f"image and mask disagree by {err.max():.3f} px"


class CountPasses:
    """Counts the image resampling passes a pipeline makes."""

    def __init__(self, monkeypatch):
        self.passes = 0
        original = compose_module.warp.warp_image

        def counting(*args, **kwargs):
            self.passes += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(compose_module.warp, "warp_image", counting)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), dtype=st.sampled_from([np.float32, np.uint8]), seed=st.integers(0, 2**16))
def test_mask_matches_image(monkeypatch, data, dtype, seed):
    border = data.draw(st.sampled_from(BORDERS))
    mixed = data.draw(st.booleans())
    step = st.sampled_from(BORDERS).flatmap(geometric) if mixed else geometric(border)
    transforms = data.draw(st.lists(step, min_size=1, max_size=4))
    mask = np.arange(H * W, dtype=np.int32).reshape(H, W)
    counter = CountPasses(monkeypatch)
    res = Compose(transforms)(image=coordinate_image(dtype), mask=mask, rng=seed)
    # one pass: half a source pixel of nearest rounding (uint8 adds 1/8 px quantisation and
    # 8-bit weights); every further pass adds half an intermediate pixel, which zoom-outs
    # (down to 0.7 * 0.625) and rotations magnify to at most ~2 source pixels
    tol = (0.5 + 1e-3 if dtype == np.float32 else 0.75) + 2.0 * (counter.passes - 1)
    assert_aligned(res, tol)


def test_pipelines_that_can_fuse_make_one_pass(monkeypatch):
    counter = CountPasses(monkeypatch)
    image = coordinate_image(np.uint8)
    Compose([HorizontalFlip(p=1), Affine(rotate=15, translate=0.1, scale=(0.9, 1.1)),
             RandomResizedCrop(24, 24)])(image, rng=0)
    assert counter.passes == 1
    Compose([Pad(3), VerticalFlip(p=1), Rotate(20), Resize(30, 30), CenterCrop(20, 20)])(image, rng=0)
    assert counter.passes == 2
    # a border step after a crop (or a rotation, which cuts corners) must see that step's
    # edge, not the pixels it cut away
    Compose([CenterCrop(20, 20), Rotate(20)])(image, rng=0)
    assert counter.passes == 4
    Compose([Rotate(20), Affine(scale=0.8)])(image, rng=0)
    assert counter.passes == 6
    # reflecting a reflection is not one reflection
    Compose([Pad(3, border="reflect"), Rotate(20, border="reflect")])(image, rng=0)
    assert counter.passes == 8


@settings(max_examples=60, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**16),
       box=st.tuples(st.integers(2, 20), st.integers(2, 16), st.integers(6, 26), st.integers(6, 22)))
def test_box_is_bounding_box_of_its_mask_region(data, seed, box):
    x0, y0, bw, bh = box
    x1, y1 = min(W - 1, x0 + bw), min(H - 1, y0 + bh)
    border = "constant"  # edge/reflect borders replicate mask labels (not boxes) into the margin
    # axis-aligned steps, then one step that may rotate/shear: once a box is rotated its
    # bounding box is larger than the region, so a later rotation or crop would compare a
    # box with a region that no longer share their bounds (true of every box library)
    steps = data.draw(st.lists(geometric(border, axis_aligned=True), max_size=3))
    steps.append(data.draw(geometric(border)))
    mask = np.zeros((H, W), np.uint8)
    mask[y0:y1, x0:x1] = 1
    res = Compose(steps)(image=np.zeros((H, W, 3), np.uint8), mask=mask, boxes=[[x0, y0, x1, y1]],
                         labels=["b"], rng=seed)
    ys, xs = np.nonzero(res["mask"] == 1)
    if len(res["boxes"]) == 0:
        assert len(xs) <= 4  # dropped boxes leave at most a sliver of mask
        return
    bx0, by0, bx1, by1 = res["boxes"][0]
    if bx1 - bx0 < 3 or by1 - by0 < 3:
        return  # slivers: rounding dominates
    last = res["params"]["children"][-1].get("params", {})
    oh, ow = res["mask"].shape
    if (last.get("angle") or last.get("shear")) and (bx0 <= 0 or by0 <= 0 or bx1 >= ow or by1 >= oh):
        return  # a rotated box cut by the frame: clipping its bounds is not bounding its clipped region
    assert res["labels"] == ["b"]
    region = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    np.testing.assert_allclose(res["boxes"][0], region, atol=2.0)
