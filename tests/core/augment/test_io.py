"""Image/mask files: EXIF orientation, modes, palettes, lossless masks."""
import numpy as np
import pytest
from PIL import Image

from core.augment.io import find_images, read_image, read_mask, write_image, write_mask


def test_exif_orientation_is_respected(tmp_path):
    pixels = np.zeros((10, 20, 3), np.uint8)
    pixels[:, :5] = 255  # white band on the left of the stored image
    im = Image.fromarray(pixels)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    im.save(tmp_path / "a.jpg", exif=exif, quality=95)
    out = read_image(tmp_path / "a.jpg")
    assert out.shape == (20, 10, 3)
    assert out[:5].mean() > 200 and out[-5:].mean() < 50  # the band is now on top


def test_modes_become_l_rgb_rgba(tmp_path):
    Image.new("LA", (4, 3), (10, 20)).save(tmp_path / "la.png")
    Image.new("CMYK", (4, 3)).save(tmp_path / "c.tif")
    Image.fromarray(np.full((3, 4), 4000, np.uint16)).save(tmp_path / "d.png")
    assert read_image(tmp_path / "la.png").shape == (3, 4, 4)
    assert read_image(tmp_path / "c.tif").shape == (3, 4, 3)
    deep = read_image(tmp_path / "d.png")
    assert deep.dtype == np.uint8 and deep.shape == (3, 4) and deep[0, 0] == round(4000 / 65535 * 255)


def test_masks_keep_values_and_palette(tmp_path):
    labels = np.random.default_rng(0).integers(0, 20, (6, 7)).astype(np.uint8)
    im = Image.fromarray(labels)
    im.putpalette([v for i in range(256) for v in (i, 255 - i, 7)])
    im.save(tmp_path / "m.png")
    mask, palette = read_mask(tmp_path / "m.png")
    np.testing.assert_array_equal(mask, labels)
    write_mask(tmp_path / "out" / "m.png", mask, palette)
    again = Image.open(tmp_path / "out" / "m.png")
    assert again.mode == "P" and again.getpalette()[:6] == [0, 255, 7, 1, 254, 7]
    np.testing.assert_array_equal(np.asarray(again), labels)
    wide = np.arange(42, dtype=np.int32).reshape(6, 7) * 1000
    write_mask(tmp_path / "w.png", wide)
    np.testing.assert_array_equal(read_mask(tmp_path / "w.png")[0], wide)
    with pytest.raises(ValueError, match=r"labels must lie in 0..65535 .* got -1..4"):
        write_mask(tmp_path / "neg.png", np.array([[-1, 4]]))


def test_write_image_formats_and_find_images(tmp_path):
    img = np.random.default_rng(1).integers(0, 256, (8, 9, 3), dtype=np.uint8)
    for name in ("a.png", "sub/b.bmp", "sub/c.webp", "d.tiff", "e.JPG"):
        write_image(tmp_path / name, img)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".hidden.png").write_bytes(b"")
    assert find_images(tmp_path) == ["a.png", "d.tiff", "e.JPG", "sub/b.bmp", "sub/c.webp"]
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), img)
    assert not list(tmp_path.rglob("*.tmp"))
