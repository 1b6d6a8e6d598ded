"""The fine-tuning recipe: config checks, data preparation, cached vs uncached runs, resume."""
from __future__ import annotations

import numpy as np
import pytest

from core.callbacks import Callback
from core.serialization import save_weights
from vision.datasets import ImageDataset
from vision.finetune import FinetuneConfig, FitCollate, few_shot_indices, finetune, predict_dataset
from vision.models.efficientnet_lite import efficientnet_lite0


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A stand-in 'pretrained' checkpoint: a random EfficientNet-Lite0 with 1000 classes, as .npz."""
    path = tmp_path_factory.mktemp("weights") / "lite0.npz"
    save_weights(efficientnet_lite0(rng=123), path)
    return str(path)


def tiny_data(n_train=12, n_test=6, size=20, channels=1, seed=0):
    rng = np.random.default_rng(seed)

    def split(n):
        y = np.arange(n) % 3
        x = rng.integers(0, 80, (n, size, size, channels)).astype(np.uint8)
        for k in range(3):
            x[y == k, :, k * size // 3:(k + 1) * size // 3] += 150
        return ImageDataset(x, y, ["a", "b", "c"], name="tiny")

    return split(n_train), split(n_test)


def config(weights, **kw):
    base = dict(weights=weights, dataset="tiny", img_size=32, epochs=2, batch_size=4, val_fraction=0.0, seed=0)
    return FinetuneConfig(**{**base, **kw})


@pytest.mark.parametrize("kw, message", [
    ({"freeze": "last:two"}, "last:K"),
    ({"cache_features": True, "freeze": "none"}, "needs freeze='backbone'"),
    ({"cache_copies": 3}, r"cache_copies > 1 needs cache_features \(or head_epochs\) and an augment"),
    ({"head_epochs": 2}, "it needs a pretrained model, freeze 'none' or 'last:K'"),
    ({"head_epochs": 2, "freeze": "none", "pretrained": False}, "head_epochs trains the classifier alone"),
    ({"img_size": 16}, "img_size must be >= 32"),
    ({"optimizer": "lbfgs"}, "optimizer must be one of"),
    ({"per_class": 0}, "per_class must be a positive int"),
    ({"lr": -1.0}, "lr must be a positive number"),
])
def test_config_rejects_bad_values_by_name(kw, message):
    with pytest.raises(ValueError, match=message):
        FinetuneConfig(**kw)


def test_config_round_trips_and_names_unknown_entries():
    c = FinetuneConfig(per_class=10, freeze="last:2")
    assert FinetuneConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown entries colour"):
        FinetuneConfig.from_dict({"colour": 1})


def test_fit_collate_resizes_grey_to_normalised_rgb():
    images = np.zeros((2, 20, 20, 1), np.uint8)
    images[1] = 255
    x, y = FitCollate(32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))([(images[0], 1), (images[1], 2)])
    assert x.shape == (2, 3, 32, 32) and x.dtype == np.float32 and y.tolist() == [1, 2]
    np.testing.assert_allclose(x[0], -2.0)
    np.testing.assert_allclose(x[1], 2.0)
    with pytest.raises(ValueError, match="expected uint8 images"):
        FitCollate(32, (0.5,) * 3, (0.5,) * 3).images(np.zeros((1, 4, 4, 3), np.float32))


def test_few_shot_indices_take_the_budget_of_every_class():
    labels = np.repeat(np.arange(4), [10, 3, 7, 10])
    idx = few_shot_indices(labels, 5, seed=0)
    assert np.bincount(labels[idx]).tolist() == [5, 3, 5, 5]
    assert np.array_equal(idx, few_shot_indices(labels, 5, seed=0))
    assert not np.array_equal(idx, few_shot_indices(labels, 5, seed=1))


def test_cached_and_uncached_runs_train_the_same_classifier(weights):
    data = tiny_data()
    cached = finetune(config(weights, cache_features=True, lr=1e-2), data=data, progress=False)
    uncached = finetune(config(weights, lr=1e-2), data=data, progress=False)
    assert cached.freeze.trainable_params == uncached.freeze.trainable_params == 1280 * 3 + 3
    np.testing.assert_allclose(cached.model._fc.weight.data, uncached.model._fc.weight.data, rtol=1e-3, atol=1e-5)
    before = efficientnet_lite0(rng=123).state_dict()
    after = uncached.model.state_dict()
    for k in before:  # the frozen backbone, BatchNorm statistics included, is untouched
        if not k.startswith("_fc"):
            np.testing.assert_array_equal(after[k], before[k], err_msg=k)


def test_resume_continues_to_the_same_weights_and_reuses_the_feature_cache(weights, tmp_path):
    data = tiny_data()
    straight = finetune(config(weights, cache_features=True, epochs=3), data=data, progress=False)
    run = tmp_path / "run"

    class StopAfterFirstEpoch(Callback):  # an interruption after epoch 1
        def on_epoch_end(self, trainer, epoch, logs):
            trainer.stop_training = True

    first = finetune(config(weights, cache_features=True, epochs=3), run_dir=run, data=data, progress=False,
                     callbacks=[StopAfterFirstEpoch()])
    assert len(first.history) == 1
    assert first.feature_seconds > 0 and (run / "features.npz").is_file()
    resumed = finetune(config(weights, cache_features=True, epochs=3), run_dir=run, data=data, progress=False,
                       resume=True)
    assert resumed.feature_seconds == 0.0  # read back from features.npz
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]
    np.testing.assert_array_equal(resumed.model._fc.weight.data, straight.model._fc.weight.data)


def test_uncached_partial_fine_tuning_learns_the_task(weights):
    data = tiny_data(n_train=30, n_test=12)
    result = finetune(config(weights, freeze="last:2", epochs=6, lr=3e-3, backbone_lr_scale=1.0), data=data,
                      progress=False)
    probs = predict_dataset(result.model, data[1], FitCollate(32, result.entry.mean, result.entry.std))
    assert probs.shape == (12, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_a_validation_split_too_small_for_few_shot_is_refused(weights):
    with pytest.raises(ValueError, match="--val-fraction 0"):
        finetune(config(weights, val_fraction=0.1), data=tiny_data(), progress=False)


def test_head_epochs_probe_first_then_fine_tune(weights, tmp_path):
    from core.serialization import load_checkpoint

    data = tiny_data()
    probe_only = finetune(config(weights, cache_features=True, epochs=2), data=data, progress=False)
    run = tmp_path / "lpft"
    result = finetune(config(weights, freeze="last:1", head_epochs=2, epochs=1), run_dir=run, data=data,
                      progress=False)
    assert len((run / "head" / "metrics.csv").read_text().strip().splitlines()) == 3
    assert len(result.history) == 1 and (run / "head" / "features.npz").is_file()
    assert result.freeze.trainable_stages == ["head", "classifier"]
    probe = load_checkpoint(run / "head" / "checkpoints" / "last.npz")["model"]
    # the probe stage is exactly the cached head-only run; fine-tuning then moved on from it
    np.testing.assert_array_equal(probe["1.weight"], probe_only.model._fc.weight.data)
    assert not np.array_equal(result.model._fc.weight.data, probe["1.weight"])


def test_resnet18_state_dict_fine_tunes_through_the_same_path(tmp_path):
    from vision.models.resnet import resnet18

    path = tmp_path / "resnet18-test.npz"
    save_weights(resnet18(num_classes=1000, rng=3), path)
    data = tiny_data()
    cached = finetune(config(str(path), model="resnet18", cache_features=True, lr=1e-2), data=data, progress=False)
    assert cached.freeze.trainable_params == 512 * 3 + 3 and cached.model.fc.weight.shape == (3, 512)
    partial = finetune(config(str(path), model="resnet18", freeze="last:1", epochs=1), data=data, progress=False)
    assert partial.freeze.trainable_stages == ["stage4", "classifier"]
    probs = predict_dataset(partial.model, data[1], FitCollate(32, partial.entry.mean, partial.entry.std))
    assert probs.shape == (6, 3) and np.isfinite(probs).all()
