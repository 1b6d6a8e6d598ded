"""Lookup tables applied two bytes at a time: identical to ``np.take`` on every layout."""
import numpy as np
import pytest

from core.augment import lut as L


def random_lut(seed=0):
    return np.random.default_rng(seed).integers(0, 256, 256, dtype=np.uint8)


def test_pair_table_maps_each_byte_in_place():
    lut = random_lut()
    table = L.pair_table(lut)
    assert table.shape == (65536,) and table.dtype == np.uint16
    pairs = np.arange(65536, dtype=np.uint16)
    # whatever the byte order, the bytes of table[u] are lut of the bytes of u, in place
    np.testing.assert_array_equal(table.view(np.uint8), lut[pairs.view(np.uint8)])


@pytest.mark.parametrize("shape", [(224, 224, 3), (181, 181), (181, 183, 3), (3, 5), (1,), (0, 4)])
def test_map_bytes_equals_take_for_odd_even_small_and_large(shape):
    lut = random_lut(1)
    values = np.random.default_rng(2).integers(0, 256, shape, dtype=np.uint8)
    expected = np.take(lut, values)
    out = np.empty_like(values)
    assert L.map_bytes(values, lut, out) is out
    np.testing.assert_array_equal(out, expected)
    assert L.map_bytes(values, lut) is values  # in place
    np.testing.assert_array_equal(values, expected)


def test_map_bytes_refuses_views_it_cannot_pair():
    values = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(ValueError, match="C-contiguous uint8"):
        L.map_bytes(values[:, ::2], random_lut())
    with pytest.raises(ValueError, match="C-contiguous uint8"):
        L.map_bytes(values.astype(np.uint16), random_lut())


@pytest.mark.parametrize("channels", [None, 1, 3, 4])
def test_apply_lut_is_a_new_array_and_keeps_alpha(channels):
    lut = random_lut(3)
    shape = (200, 210) if channels is None else (200, 210, channels)
    image = np.random.default_rng(4).integers(0, 256, shape, dtype=np.uint8)
    view = image[:, ::-1]  # not contiguous: copied, still mapped right
    for src in (image, view):
        out = L.apply_lut(src, lut)
        assert out.dtype == np.uint8 and out.shape == src.shape and not np.shares_memory(out, src)
        if channels == 4:
            np.testing.assert_array_equal(out[..., :3], lut[src[..., :3]])
            np.testing.assert_array_equal(out[..., 3], src[..., 3])
        else:
            np.testing.assert_array_equal(out, lut[src])
