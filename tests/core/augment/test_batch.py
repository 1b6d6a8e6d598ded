"""MixUp and CutMix: label mixing, areas, layouts, replay."""
import numpy as np
import pytest

from core.augment import CutMix, MixUp, from_dict, to_dict


def batch(n=8, layout="NCHW", dtype=np.float32):
    rng = np.random.default_rng(0)
    shape = (n, 3, 16, 20) if layout == "NCHW" else (n, 16, 20, 3)
    x = rng.random(shape, dtype=np.float32)
    return (x * 255).astype(np.uint8) if dtype == np.uint8 else x, rng.integers(0, 5, n)


def test_mixup_blends_images_and_labels_alike():
    x, y = batch()
    x_before = x.copy()
    mixed, soft, params = MixUp(alpha=0.4, num_classes=5)(x, y, rng=1, return_params=True)
    np.testing.assert_array_equal(x, x_before)
    lam, perm = params["lam"], np.array(params["perm"])
    np.testing.assert_allclose(mixed, lam * x + (1 - lam) * x[perm], rtol=1e-6)
    onehot = np.eye(5)[y]
    np.testing.assert_allclose(soft, lam * onehot + (1 - lam) * onehot[perm], rtol=1e-6)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_cutmix_label_weight_is_the_pasted_area(layout):
    x, y = batch(layout=layout, dtype=np.uint8)
    t = CutMix(alpha=1.0, num_classes=5, layout=layout)
    for seed in range(10):
        mixed, soft, params = t(x, y, rng=seed, return_params=True)
        perm = np.array(params["perm"])
        x0, y0, x1, y1 = params["box"]
        changed = (mixed != x).any(axis=1 if layout == "NCHW" else 3)
        inside = np.zeros((16, 20), bool)
        inside[y0:y1, x0:x1] = True
        assert not changed[:, ~inside].any()  # nothing outside the box moves
        np.testing.assert_allclose(params["lam"], 1 - inside.mean())
        np.testing.assert_allclose(soft, params["lam"] * np.eye(5)[y] + (1 - params["lam"]) * np.eye(5)[y[perm]])
        src = x[perm][:, :, y0:y1, x0:x1] if layout == "NCHW" else x[perm][:, y0:y1, x0:x1]
        got = mixed[:, :, y0:y1, x0:x1] if layout == "NCHW" else mixed[:, y0:y1, x0:x1]
        np.testing.assert_array_equal(got, src)


def test_soft_labels_in_and_replay_and_probability():
    x, y = batch()
    probs = np.eye(5, dtype=np.float32)[y]
    t = MixUp(alpha=1.0)
    out, soft, params = t(x, probs, rng=2, return_params=True)
    again, soft2 = t.replay(params, x, probs)
    np.testing.assert_array_equal(again, out)
    np.testing.assert_array_equal(soft2, soft)
    off, labels = MixUp(p=0.0, num_classes=5)(x, y, rng=0)
    np.testing.assert_array_equal(off, x)
    assert from_dict(to_dict(CutMix(num_classes=5, layout="NHWC"))) == CutMix(num_classes=5, layout="NHWC")


def test_batch_errors():
    x, y = batch()
    with pytest.raises(ValueError, match="MixUp: num_classes is required with integer labels"):
        MixUp()(x, y)
    with pytest.raises(ValueError, match=r"CutMix: labels must be in \[0, 3\)"):
        CutMix(num_classes=3)(x, y)
    with pytest.raises(ValueError, match="MixUp: 8 images but 7 labels"):
        MixUp(num_classes=5)(x, y[:7])
    with pytest.raises(ValueError, match="CutMix: layout must be one of NCHW, NHWC"):
        CutMix(layout="CHW")
