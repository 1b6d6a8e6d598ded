"""Weights registry: class names, preprocessing, file lookup and checksum, reading any weights format."""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.serialization import CheckpointError, save_checkpoint, save_npz, save_safetensors
from vision.weights import (
    WEIGHTS, get_weights, imagenet_classes, load_pretrained, load_state_dict_any, load_weights_any,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ENTRY = get_weights("efficientnet_lite0")


def test_imagenet_class_names():
    names = imagenet_classes()
    assert len(names) == 1000 and all(n and n == n.strip() for n in names)
    known = {0: "tench", 1: "goldfish", 207: "golden retriever", 281: "tabby", 409: "analog clock",
             652: "military uniform", 954: "banana", 999: "toilet tissue"}
    assert {i: names[i] for i in known} == known
    assert ENTRY.class_names() == names


def test_registry_entries_and_unknown_name():
    assert {"efficientnet_lite0", "resnet18", "resnet34", "vgg16"} <= set(WEIGHTS)
    for entry in WEIGHTS.values():
        assert entry.licence and entry.provenance and entry.install
        assert len(entry.mean) == len(entry.std) == 3 and entry.input_size <= entry.resize_size
    with pytest.raises(ValueError, match=r"unknown pretrained weights 'lenet'; available: efficientnet_lite0, "):
        get_weights("lenet")


# ------------------------------------------------------------- preprocessing
def _two_tone(h=40, w=60):
    """Left half red, right half blue."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :w // 2, 0] = 255
    img[:, w // 2:, 2] = 255
    return img


def test_preprocess_shapes_normalisation_and_inputs(tmp_path):
    img = _two_tone()
    x = ENTRY.preprocess(img)
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    # Lite normalisation: (pixel - 127) / 128, so pure red is +1 in R and -127/128 elsewhere.
    assert x[0, 100, 5] == pytest.approx(128 / 128, abs=1e-3) and x[1, 100, 5] == pytest.approx(-127 / 128, abs=1e-3)
    assert x[2, 100, -5] == pytest.approx(1.0, abs=1e-3) and x[0, 100, -5] == pytest.approx(-127 / 128, abs=1e-3)
    path = tmp_path / "img.png"
    Image.fromarray(img).save(path)
    np.testing.assert_array_equal(ENTRY.preprocess(path), x)
    np.testing.assert_array_equal(ENTRY.preprocess(Image.fromarray(img)), x)
    gray = ENTRY.preprocess(np.full((10, 12), 127, np.uint8))
    assert np.abs(gray).max() < 1e-6
    with pytest.raises(ValueError, match=r"expected an \(H, W, 3\) or \(H, W\) uint8 array, got float64"):
        ENTRY.preprocess(np.zeros((4, 4, 3)))
    with pytest.raises(TypeError, match="expected a PIL image, a path or a uint8 array, got list"):
        ENTRY.preprocess([1, 2])


def test_preprocess_crops_the_centre_of_the_shorter_side():
    img = np.zeros((100, 300, 3), np.uint8)
    img[:, 100:200] = 255  # only the central square is white
    x = ENTRY.preprocess(img)
    assert x.min() > 0.99  # the crop (87.5% of the central 100x100) never reaches the black sides


def test_preprocess_applies_exif_orientation_and_transparency(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: viewers rotate 90 degrees clockwise
    Image.fromarray(_two_tone(60, 40)).save(path, exif=exif, quality=95)
    x = ENTRY.preprocess(path)
    # After rotating clockwise, the stored left (red) half is on top.
    assert x[0, 10, 112] > 0.9 and x[2, 10, 112] < -0.9
    assert x[2, -10, 112] > 0.9 and x[0, -10, 112] < -0.9
    rgba = np.zeros((20, 20, 4), np.uint8)  # fully transparent black: shown as the white page behind it
    y = ENTRY.preprocess(Image.fromarray(rgba, mode="RGBA"))
    assert y.min() > 0.99


# ------------------------------------------------------------- file lookup
def test_find_file_searches_weights_folders_and_explains_how_to_install(tmp_path, monkeypatch):
    entry = get_weights("resnet18")
    monkeypatch.setenv("ZERODL_WEIGHTS", str(tmp_path / "w"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(FileNotFoundError, match=r"resnet18-\*\.pth not found .* Download resnet18-f37072fd.pth"):
        entry.find_file()
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.write_bytes(b"x")
    assert entry.find_file() == cached
    (tmp_path / "w").mkdir()
    mine = tmp_path / "w" / "resnet18-0000.pth"
    mine.write_bytes(b"x")
    assert entry.find_file() == mine  # $ZERODL_WEIGHTS comes first
    with pytest.raises(FileNotFoundError, match="no file at"):
        entry.find_file(tmp_path / "nope.pth")


def test_checksum_mismatch_is_reported(tmp_path):
    fake = tmp_path / "efficientnet-lite0-57934424.pth"
    fake.write_bytes(b"not the real weights")
    with pytest.raises(CheckpointError, match=r"SHA-256 [0-9a-f]{64} does not match the 'efficientnet_lite0' entry's 5793"):
        ENTRY.verify(fake)


# ------------------------------------------------------------- reading files
def _state():
    rng = np.random.default_rng(0)
    return OrderedDict([("module.conv.weight", rng.standard_normal((2, 1, 3, 3)).astype(np.float32)),
                        ("module.conv.bias", np.zeros(2, np.float32)),
                        ("module.bn.num_batches_tracked", np.array(3, np.int64))])


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin"])
def test_load_state_dict_any_reads_pytorch_files(suffix, tmp_path):
    path = tmp_path / f"weights{suffix}"
    path.write_bytes((FIXTURES / "torch_legacy.pt").read_bytes())
    state = load_state_dict_any(path)
    assert "float32" in state and state["bool"].dtype == np.bool_  # unwrapped from "state_dict", prefix stripped


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_load_state_dict_any_reads_array_files(suffix, tmp_path):
    path = tmp_path / f"w{suffix}"
    (save_npz if suffix == ".npz" else save_safetensors)(path, _state())
    state = load_state_dict_any(path)
    assert set(state) == {"conv.weight", "conv.bias", "bn.num_batches_tracked"}  # module. stripped
    np.testing.assert_array_equal(state["conv.weight"], _state()["module.conv.weight"])
    renamed = load_state_dict_any(path, rename=[(r"^conv\.", "features.0.")])
    assert "features.0.weight" in renamed


def test_zerodl_checkpoint_model_part_and_unknown_suffix(tmp_path):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, model={"w": np.ones(3, np.float32)}, extra={"epoch": 2})
    assert list(load_state_dict_any(path)) == ["w"]
    with pytest.raises(ValueError, match=r"cannot tell the format of 'w.h5' from its suffix '.h5'"):
        load_state_dict_any(tmp_path / "w.h5")


def test_mismatches_reported_by_key_and_shape(tmp_path):
    from core.layers import Conv2d
    from core.module import Module

    class Net(Module):
        def __init__(self):
            super().__init__()
            self.conv = Conv2d(1, 2, 3)

    path = tmp_path / "w.npz"
    save_npz(path, {"conv.weight": np.zeros((2, 1, 5, 5), np.float32), "head.weight": np.zeros(4, np.float32)})
    with pytest.raises(CheckpointError) as err:
        load_weights_any(Net(), path)
    msg = str(err.value)
    assert str(path) in msg and "missing keys (1): conv.bias" in msg and "unexpected keys (1): head.weight" in msg
    assert "conv.weight: checkpoint (2, 1, 5, 5) vs model (2, 1, 3, 3)" in msg


def test_torchvision_resnet18_state_dict_loads(tmp_path):
    torch = pytest.importorskip("torch")
    entry = get_weights("resnet18")
    try:
        model = entry.build(rng=0)
    except ImportError as e:  # pragma: no cover - the ResNet builder is another module's
        pytest.skip(str(e))
    # What torchvision's resnet18().state_dict() holds: our names are torchvision's, so write ours with torch.
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save({k: torch.from_numpy(v) for k, v in model.state_dict().items()}, path)
    loaded = load_pretrained("resnet18", path=path)
    assert not loaded.training
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[k], v)
