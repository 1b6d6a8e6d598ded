"""Pixel and colour transforms: tables vs float math, references, channel rules."""
import colorsys

import numpy as np
import pytest
from PIL import Image, ImageFilter

from core.augment import (
    Brightness, BrightnessContrast, ColorJitter, Compose, Contrast, Gamma, GaussianBlur, GaussianNoise,
    Grayscale, Hue, Normalize, RandomErasing, Saturation, ToCHW, ToFloat,
)
from core.augment.color import hsv_to_rgb, rgb_to_hsv
from core.augment.pixel import blur_float


def rgb(h=24, w=30, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)


@pytest.mark.parametrize("t", [Brightness((0.15, 0.15)), Contrast((0.4, 0.4)), Gamma((1.7, 1.7)),
                               BrightnessContrast((-0.1, -0.1), (0.3, 0.3))])
def test_lookup_table_matches_float_math(t):
    img = rgb()
    u8 = t(img, rng=0).astype(np.float64)
    f32 = t(img.astype(np.float32) / 255, rng=0) * 255
    assert np.abs(u8 - f32).max() <= 0.5 + 1e-3


def test_tone_curve_formulas():
    img = np.array([[[0, 64, 128], [191, 255, 10]]], np.uint8)
    x = img / 255.0
    np.testing.assert_array_equal(Brightness((0.1, 0.1))(img), np.clip(np.rint((x + 0.1) * 255), 0, 255))
    np.testing.assert_array_equal(Contrast((0.5, 0.5))(img), np.clip(np.rint(((x - 0.5) * 1.5 + 0.5) * 255), 0, 255))
    np.testing.assert_array_equal(Gamma((2.0, 2.0))(img), np.rint(x ** 2 * 255))


def test_identity_parameters():
    img = rgb(channels=4)
    for t in (Brightness(0.0), Contrast(0.0), Gamma(1.0), Saturation(0.0), Hue(0.0),
              ColorJitter(0, 0, 0, 0), GaussianBlur(0.0), GaussianNoise(0.0)):
        np.testing.assert_array_equal(t(img, rng=0), img)


def test_alpha_is_never_touched():
    img = rgb(channels=4)
    for t in (Brightness(0.3), Gamma((0.5, 0.5)), Saturation(0.5), Hue(0.3), ColorJitter(0.5, 0.5, 0.5, 0.2),
              Grayscale(), GaussianNoise(0.1), RandomErasing(p=1.0, value="random"), GaussianBlur((2, 2))):
        out = t(img, rng=1)
        if isinstance(t, GaussianBlur):
            continue  # a blur spreads alpha too, like any channel
        np.testing.assert_array_equal(out[..., 3], img[..., 3])


def test_hsv_round_trip_and_reference():
    pixels = np.random.default_rng(0).random((200, 3)).astype(np.float32)
    hsv = rgb_to_hsv(pixels)
    ref = np.array([colorsys.rgb_to_hsv(*p) for p in pixels.astype(np.float64)])
    np.testing.assert_allclose(hsv, ref, atol=1e-5)
    np.testing.assert_allclose(hsv_to_rgb(hsv), pixels, atol=1e-5)


def test_hue_full_turn_and_known_shift():
    img = rgb()
    np.testing.assert_array_equal(Hue((0.5, 0.5))(Hue((0.5, 0.5))(img)).astype(int) // 3, img.astype(int) // 3)
    red = np.zeros((1, 1, 3), np.float32)
    red[..., 0] = 1.0
    np.testing.assert_allclose(Hue((1 / 3, 1 / 3))(red), [[[0, 1, 0]]], atol=1e-6)  # red -> green


def test_saturation_and_grayscale_use_bt601_luma():
    img = rgb()
    grey = Grayscale()(img)
    luma = np.rint(img @ np.array([0.299, 0.587, 0.114]))
    assert np.abs(grey[..., 0] - luma).max() <= 1
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    np.testing.assert_array_equal(Saturation((-1, -1))(img), grey)
    ref = np.asarray(Image.fromarray(img).convert("L"))
    assert np.abs(grey[..., 0].astype(int) - ref).max() <= 1
    single = rgb(channels=1)
    np.testing.assert_array_equal(Grayscale()(single), single)


def test_color_jitter_records_order_and_factors():
    res = ColorJitter(0.4, 0.4, 0.4, 0.1)(image=rgb(), rng=3)
    params = res["params"]["children"][0]["params"]
    assert sorted(params["order"]) == [0, 1, 2, 3]
    assert 0.6 <= params["brightness"] <= 1.4 and -0.1 <= params["hue"] <= 0.1


def test_gaussian_blur_uint8_close_to_exact_kernel():
    img = rgb(48, 48)
    out = GaussianBlur((1.5, 1.5))(img).astype(np.float64)
    exact = blur_float(img.astype(np.float32), 1.5)
    assert np.abs(out - exact)[5:-5, 5:-5].mean() < 1.0
    ref = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(1.5)))
    np.testing.assert_array_equal(out, ref)


def test_noise_statistics_and_replay():
    flat = np.full((64, 64, 3), 0.5, np.float32)
    pipe = Compose([GaussianNoise((0.05, 0.05))])
    res = pipe(image=flat, rng=0)
    assert abs(float((res["image"] - 0.5).std()) - 0.05) < 0.005
    np.testing.assert_array_equal(pipe.replay(res["params"], image=flat)["image"], res["image"])
    mono = GaussianNoise((0.05, 0.05), per_channel=False)(flat, rng=0)
    np.testing.assert_array_equal(mono[..., 0], mono[..., 1])


def test_random_erasing_rectangles():
    img = np.full((40, 50, 3), 200, np.uint8)
    res = Compose([RandomErasing(scale=(0.1, 0.1), ratio=(1, 1), value=0.0, count=2, p=1)])(image=img, rng=0)
    erased = (res["image"] == 0).all(axis=2)
    assert 0.1 <= erased.mean() <= 0.2 + 0.02
    assert len(res["params"]["children"][0]["params"]["rects"]) == 2


def test_normalize_to_float_to_chw():
    img = rgb()
    out = Normalize()(img)
    ref = (img / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    assert out.dtype == np.float32
    np.testing.assert_allclose(ToFloat()(img), img / 255.0, atol=1e-7)
    assert ToCHW()(img).shape == (3, 24, 30) and ToCHW()(img[..., 0]).shape == (1, 24, 30)
    with pytest.raises(ValueError, match="Normalize: mean/std have 3 values but the image has 1 channels"):
        Normalize()(img[..., 0])
