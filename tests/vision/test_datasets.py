"""Dataset readers on generated files (IDX, CIFAR pickles, image folders), the registry and ImageDataset."""
import gzip
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data import ArrayDataset, DataLoader, train_val_split
from vision.datasets import (CLASS_NAMES, DATASETS, ImageCollate, ImageDataset, ImageFolder, find_idx_files,
                             get_dataset, load_cifar10, load_cifar100, load_idx_dataset, read_idx, write_idx)

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def write_fake_idx(folder, n_train=12, n_test=5, size=(6, 5), seed=0, gz=True):
    """Write MNIST-style train/t10k IDX files with random images and labels 0..9; return the arrays."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ext = ".gz" if gz else ""
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, size=(n, *size), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", labels)
        out[split] = (images, labels)
    return out


# ----------------------------------------------------------------------------- IDX
@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, suffix, dtype):
    array = (np.arange(2 * 3 * 4) - 7).reshape(2, 3, 4).astype(dtype)
    if dtype == np.uint8:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / f"a.idx{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, array)


def test_idx_header_is_big_endian_as_published(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    write_idx(path, np.array([7, 2, 1], dtype=np.uint8))
    assert path.read_bytes() == bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1])
    path.write_bytes(bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFE]))  # int16, big-endian
    np.testing.assert_array_equal(read_idx(path), [258, -2])


def test_idx_gzip_is_detected_from_content_not_suffix(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"  # gzip data without the .gz suffix
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 1, 5, 6])))
    np.testing.assert_array_equal(read_idx(path), [[5], [6]])


def test_idx_bad_magic_names_the_file(tmp_path):
    path = tmp_path / "bad-magic.idx"
    path.write_bytes(bytes([0x12, 0x34, 8, 1, 0, 0, 0, 1, 0]))
    with pytest.raises(ValueError, match=r"bad-magic\.idx.*magic number 0x12340801"):
        read_idx(path)
    path.write_bytes(bytes([0, 0, 0x42, 1, 0, 0, 0, 1, 0]))  # unknown type code
    with pytest.raises(ValueError, match="magic number 0x00004201"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_truncated_file_names_the_file_and_sizes(tmp_path, gz):
    images = np.zeros((4, 3, 3), dtype=np.uint8)
    raw = tmp_path / "full"
    write_idx(raw, images)
    data = raw.read_bytes()[:-5]  # 5 pixel bytes missing
    path = tmp_path / ("short.gz" if gz else "short")
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(ValueError, match=r"short.*truncated.*\(4, 3, 3\).*36 data bytes.*holds 31"):
        read_idx(path)


def test_idx_cut_gzip_stream_and_trailing_bytes(tmp_path):
    raw = tmp_path / "ok"
    write_idx(raw, np.ones((50, 8, 8), dtype=np.uint8))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(raw.read_bytes())[:-20])
    with pytest.raises(ValueError, match=r"cut\.gz.*(corrupt gzip|truncated)"):
        read_idx(cut)
    long = tmp_path / "long"
    long.write_bytes(raw.read_bytes() + b"\x00")
    with pytest.raises(ValueError, match="long: trailing bytes"):
        read_idx(long)
    header_only = tmp_path / "header"
    header_only.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(ValueError, match="header: truncated header"):
        read_idx(header_only)


def test_find_idx_files_accepts_common_spellings(tmp_path):
    write_idx(tmp_path / "train-images.idx3-ubyte", np.zeros((2, 2, 2), np.uint8))
    write_idx(tmp_path / "train-labels.idx1-ubyte", np.zeros(2, np.uint8))
    assert find_idx_files(tmp_path, "train") == (tmp_path / "train-images.idx3-ubyte",
                                                 tmp_path / "train-labels.idx1-ubyte")
    assert find_idx_files(tmp_path, "test") is None
    with pytest.raises(ValueError, match="split must be one of"):
        find_idx_files(tmp_path, "val")


def test_load_idx_dataset_checks_counts_and_label_range(tmp_path):
    write_idx(tmp_path / "img", np.zeros((3, 2, 2), np.uint8))
    write_idx(tmp_path / "lab", np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match=r"img holds 3 images but .*lab holds 4 labels"):
        load_idx_dataset(tmp_path / "img", tmp_path / "lab", ["a", "b"])
    write_idx(tmp_path / "lab", np.array([0, 1, 2], np.uint8))
    with pytest.raises(ValueError, match=r"lab: labels must lie in \[0, 2\) for 2 classes, got a label 2"):
        load_idx_dataset(tmp_path / "img", tmp_path / "lab", ["a", "b"])


# ----------------------------------------------------------------------------- registry
def test_get_dataset_reads_generated_mnist_from_root(tmp_path):
    arrays = write_fake_idx(tmp_path / "mnist", gz=False)
    for split in ("train", "test"):
        ds = get_dataset("MNIST", split, root=tmp_path, cache_dir=tmp_path / "cache")
        images, labels = arrays[split]
        np.testing.assert_array_equal(ds.images[..., 0], images)
        np.testing.assert_array_equal(ds.labels, labels)
        assert ds.images.shape[1:] == (6, 5, 1) and ds.labels.dtype == np.int64
        assert ds.classes == CLASS_NAMES["mnist"] and ds.name == "mnist"


def test_get_dataset_root_is_searched_before_system_copy(tmp_path):
    write_fake_idx(tmp_path, n_train=7)  # files directly in root
    ds = get_dataset("fashion_mnist", "train", root=tmp_path, cache_dir=tmp_path / "cache")
    assert len(ds) == 7 and ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"


def test_get_dataset_uses_zerodl_data_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZERODL_DATA", str(tmp_path / "zcache"))
    write_fake_idx(tmp_path / "zcache" / "kmnist", n_test=3)
    ds = get_dataset("kmnist", "test")
    assert len(ds) == 3 and ds.classes[:2] == ["o", "ki"]


def test_get_dataset_bad_name_split_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'; valid names: mnist, fashion-mnist"):
        get_dataset("imagenet")
    with pytest.raises(ValueError, match="split must be one of train, test, got 'val'"):
        get_dataset("mnist", "val", root=tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        get_dataset("mnist", "train", root=tmp_path, cache_dir=tmp_path / "cache")
    message = str(err.value)
    assert str(tmp_path / "mnist") in message and str(tmp_path / "cache" / "mnist") in message
    assert "download=True" in message and "train-images-idx3-ubyte.gz" in message
    with pytest.raises(ValueError, match="no downloader for 'kmnist'"):
        get_dataset("kmnist", root=tmp_path, cache_dir=tmp_path / "cache", download=True)
    assert set(DATASETS) == {"mnist", "fashion-mnist", "kmnist", "cifar10", "cifar100"}


# ----------------------------------------------------------------------------- ImageDataset
def rgb_dataset(n=10, seed=0, transform=None):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 4, 5, 3), dtype=np.uint8)
    labels = np.arange(n) % 3
    return ImageDataset(images, labels, ["a", "b", "c"], name="toy", transform=transform)


def test_image_dataset_validation():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\) for 3 classes.*first bad label 3 at index 1"):
        ImageDataset(np.zeros((2, 4, 4), np.uint8), [0, 3], ["a", "b", "c"])
    with pytest.raises(ValueError, match="labels must lie in"):
        ImageDataset(np.zeros((1, 4, 4), np.uint8), [-1], ["a", "b", "c"])
    with pytest.raises(TypeError, match="images must be uint8"):
        ImageDataset(np.zeros((2, 4, 4), np.float32), [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\)"):
        ImageDataset(np.zeros((2, 4, 4), np.uint8), [0, 1, 1], ["a", "b"])
    with pytest.raises(ValueError, match="C = 1 or 3"):
        ImageDataset(np.zeros((2, 4, 4, 2), np.uint8), [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="duplicates"):
        ImageDataset(np.zeros((2, 4, 4), np.uint8), [0, 1], ["a", "a"])
    ds = ImageDataset(np.zeros((2, 4, 4), np.uint8), [0, 1], ["a", "b"])
    assert ds.image_shape == (4, 4, 1) and ds[1][1] == 1 and ds[-1][1] == 1
    with pytest.raises(IndexError):
        ds[2]
    with pytest.raises(TypeError):
        ds[0.5]


def test_as_arrays_layouts_and_standardisation():
    ds = rgb_dataset()
    x, y = ds.as_arrays()
    assert x.shape == (10, 3, 4, 5) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(x, ds.images.transpose(0, 3, 1, 2) / 255.0, rtol=1e-6)
    xh, _ = ds.as_arrays(layout="NHWC", dtype=np.float64)
    assert xh.dtype == np.float64 and xh.shape == (10, 4, 5, 3)
    mean, std = ds.channel_stats()
    xs, _ = ds.as_arrays(mean=mean, std=std)
    np.testing.assert_allclose(xs.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(xs.std(axis=(0, 2, 3)), 1, atol=1e-5)
    raw, _ = ds.as_arrays(normalize=False)
    assert raw.dtype == np.uint8 and raw.shape == (10, 3, 4, 5) and raw.flags.c_contiguous
    with pytest.raises(ValueError, match="need normalize=True"):
        ds.as_arrays(normalize=False, mean=mean, std=std)
    with pytest.raises(ValueError, match="layout must be"):
        ds.as_arrays(layout="CHW")
    with pytest.raises(ValueError, match="1 or 3 values"):
        ds.as_arrays(mean=[0.5, 0.5], std=[1, 1])


def test_channel_stats_match_numpy():
    ds = rgb_dataset(n=30, seed=3)
    mean, std = ds.channel_stats()
    pixels = ds.images.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(mean, pixels.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, pixels.std(axis=0), rtol=1e-10)


def jitter(image, rng):
    """A stand-in augmentation: (H, W, C) uint8 in, same shape out, randomness only from rng."""
    return np.clip(image.astype(np.int16) + rng.integers(-20, 21, size=image.shape), 0, 255).astype(np.uint8)


def test_transform_through_get_sample_and_loader_is_reproducible():
    ds = rgb_dataset(transform=jitter)
    a, la = ds.get_sample(3, np.random.default_rng(7))
    b, _ = ds.get_sample(3, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert la == 0 and a.shape == (4, 5, 3) and a.dtype == np.uint8 and not np.array_equal(a, ds.images[3])
    loader = DataLoader(ds, batch_size=4, seed=5, collate=ImageCollate(mean=[0.5] * 3, std=[0.25] * 3))
    first = [(x.copy(), y.copy()) for x, y in loader]
    loader.set_epoch(0)
    again = [(x.copy(), y.copy()) for x, y in loader]
    assert first[0][0].shape == (4, 3, 4, 5) and first[0][0].dtype == np.float32
    for (x1, y1), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    # the pipeline protocol core.augment uses: pipeline(image, rng=rng)
    seen = []
    ds.transform = lambda image, rng=None: seen.append(rng) or image
    ds.get_sample(0, np.random.default_rng(1))
    assert isinstance(seen[0], np.random.Generator)


def test_split_subset_and_array_fast_path():
    ds = rgb_dataset(n=30)
    fit, val = train_val_split(ds, val_fraction=0.2, stratify=True, seed=0)
    assert len(val) == 6 and np.bincount(ds.labels[val.indices]).tolist() == [2, 2, 2]
    part = ds.subset(fit.indices)
    assert isinstance(part, ImageDataset) and len(part) == 24 and part.classes == ds.classes
    np.testing.assert_array_equal(part.images, ds.images[fit.indices])
    x, y = part.as_arrays()
    xb, yb = next(iter(DataLoader(ArrayDataset(x, y), batch_size=8, shuffle=False)))
    np.testing.assert_array_equal(xb, x[:8])
    np.testing.assert_array_equal(part.class_counts(), [8, 8, 8])


# ----------------------------------------------------------------------------- CIFAR
def cifar_images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


def cifar_batch(images, labels, label_key="labels", as_array=True, extra=None):
    planar = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    batch = {b"batch_label": b"testing batch", label_key.encode(): [int(v) for v in labels],
             b"data": planar if as_array else planar.tobytes(),
             b"filenames": [f"img_{i}.png".encode() for i in range(len(images))]}
    batch.update(extra or {})
    return pickle.dumps(batch, protocol=2)


def write_cifar10(folder, per_batch=3):
    folder.mkdir(parents=True)
    all_images, all_labels = [], []
    for i in range(1, 6):
        images, labels = cifar_images(per_batch, i), (np.arange(per_batch) + i) % 10
        # the published files hold numpy arrays; hand-made ones may hold bytes
        (folder / f"data_batch_{i}").write_bytes(cifar_batch(images, labels, as_array=i % 2 == 1))
        all_images.append(images)
        all_labels.append(labels)
    test = cifar_images(2, 99)
    (folder / "test_batch").write_bytes(cifar_batch(test, [3, 4]))
    names = [n.encode() for n in ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                  "ship", "truck"]]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=2))
    return np.concatenate(all_images), np.concatenate(all_labels), test


def test_cifar10_folder_and_archive(tmp_path):
    images, labels, test = write_cifar10(tmp_path / "cifar-10-batches-py")
    ds = load_cifar10(tmp_path, "train")
    assert ds.images.shape == (15, 32, 32, 3) and ds.classes[1] == "automobile" and ds.name == "cifar10"
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.labels, labels)
    np.testing.assert_array_equal(load_cifar10(tmp_path / "cifar-10-batches-py", "test").images, test)
    archive = tmp_path / "arch" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    from_archive = get_dataset("cifar-10", "test", root=archive.parent, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(from_archive.images, test)
    np.testing.assert_array_equal(load_cifar10(archive, "train").labels, labels)
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing .*data_batch_4"):
        load_cifar10(tmp_path)
    with pytest.raises(FileNotFoundError, match="found neither the folder"):
        load_cifar10(tmp_path / "arch" / "nothing-here")


def test_cifar_pickle_from_numpy_1x_names_loads(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    data = (folder / "data_batch_1").read_bytes()
    assert b"numpy._core.multiarray" in data
    (folder / "data_batch_1").write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert len(load_cifar10(tmp_path)) == 15


def test_cifar100_fine_and_coarse(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    images = cifar_images(4, 1)
    batch = pickle.loads(cifar_batch(images, [0, 99, 5, 42], label_key="fine_labels"))
    batch[b"coarse_labels"] = [0, 19, 1, 2]
    for split in ("train", "test"):
        (folder / split).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"c{i}".encode() for i in range(20)]}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    fine = load_cifar100(tmp_path, "train")
    coarse = load_cifar100(tmp_path, "test", label_type="coarse")
    assert fine.labels.tolist() == [0, 99, 5, 42] and fine.num_classes == 100 and fine.classes[99] == "f99"
    assert coarse.labels.tolist() == [0, 19, 1, 2] and coarse.num_classes == 20
    np.testing.assert_array_equal(fine.images, images)


class _Exploit:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_malicious_cifar_pickle_is_refused_and_not_executed(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    marker = tmp_path / "pwned"
    evil = {b"data": _Exploit(f"touch {marker}"), b"labels": [0]}
    (folder / "data_batch_2").write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(ValueError, match=r"data_batch_2: refusing to load global (posix|os|nt)\.system"):
        load_cifar10(tmp_path)
    assert not marker.exists()
    # a global smuggled in through the label names file is refused the same way
    (folder / "data_batch_2").write_bytes(cifar_batch(cifar_images(3, 2), [1, 2, 3]))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [eval]}, protocol=2))
    with pytest.raises(ValueError, match=r"batches\.meta: refusing to load global (__builtin__|builtins)\.eval"):
        load_cifar10(tmp_path)


def test_cifar_batch_structure_errors(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    (folder / "data_batch_3").write_bytes(cifar_batch(cifar_images(3, 0), [1, 2]))
    with pytest.raises(ValueError, match=r"data_batch_3: 'data' holds 9216 values but 2 labels need 2 x 3072"):
        load_cifar10(tmp_path)
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": np.array([object()] * 3072),
                                                        b"labels": [1]}, protocol=2))
    with pytest.raises(ValueError, match="data_batch_3: refusing to load global"):
        load_cifar10(tmp_path)
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": np.array([7] * 3072, dtype=object),
                                                        b"labels": [1]}, protocol=2))
    with pytest.raises(ValueError, match="data_batch_3: 'data' must hold integer pixel values, got object"):
        load_cifar10(tmp_path)
    (folder / "data_batch_3").write_bytes(b"\x80\x02not really")
    with pytest.raises(ValueError, match="data_batch_3: not a valid"):
        load_cifar10(tmp_path)
    (folder / "data_batch_3").write_bytes(cifar_batch(cifar_images(1, 0), [10]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        load_cifar10(tmp_path)


# ----------------------------------------------------------------------------- image folders
def save(path, array, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)


def pattern(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def make_folder(root):
    """cat: PNG + BMP, dog: PNG + JPEG (nested), all 6x8 RGB; returns the lossless arrays by file."""
    arrays = {"cat/a.png": pattern(6, 8, 0), "cat/b.bmp": pattern(6, 8, 1), "dog/c.png": pattern(6, 8, 2)}
    for rel, arr in arrays.items():
        save(root / rel, arr)
    save(root / "dog" / "sub" / "d.jpg", np.full((6, 8, 3), 120, np.uint8), quality=95)
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    return arrays


def test_image_folder_formats_labels_and_laziness(tmp_path):
    arrays = make_folder(tmp_path)
    eager = ImageFolder(tmp_path, in_memory=True)
    lazy = ImageFolder(tmp_path, in_memory=False)
    assert eager.classes == ["cat", "dog"] and eager.labels.tolist() == [0, 0, 1, 1]
    assert [str(p.relative_to(tmp_path)) for p in eager.files] == ["cat/a.png", "cat/b.bmp", "dog/c.png",
                                                                   "dog/sub/d.jpg"]
    assert eager.image_shape == (6, 8, 3) and eager.in_memory and not lazy.in_memory
    for i, rel in enumerate(["cat/a.png", "cat/b.bmp", "dog/c.png"]):
        np.testing.assert_array_equal(eager[i][0], arrays[rel])
        np.testing.assert_array_equal(lazy[i][0], arrays[rel])
    assert np.abs(lazy[3][0].astype(int) - 120).max() <= 3  # JPEG is lossy
    np.testing.assert_allclose(lazy.channel_stats(), eager.channel_stats())
    assert lazy._images is None
    np.testing.assert_array_equal(lazy.images, eager.images)  # materialises on demand
    assert lazy.in_memory
    assert ImageFolder(tmp_path).in_memory  # small folder: auto picks memory


def test_image_folder_grayscale_and_rgb_conversion(tmp_path):
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    save(tmp_path / "g" / "gray.png", gray)
    save(tmp_path / "c" / "color.png", pattern(6, 8, 4))
    as_l = ImageFolder(tmp_path, mode="L")
    assert as_l.image_shape == (6, 8, 1)
    np.testing.assert_array_equal(as_l[1][0][..., 0], gray)  # classes sorted: c, g
    expected = np.asarray(Image.fromarray(pattern(6, 8, 4)).convert("L"))
    np.testing.assert_array_equal(as_l[0][0][..., 0], expected)
    as_rgb = ImageFolder(tmp_path, mode="RGB")
    np.testing.assert_array_equal(as_rgb[1][0], np.repeat(gray[..., None], 3, axis=2))
    with pytest.raises(ValueError, match="mode must be 'L'"):
        ImageFolder(tmp_path, mode="CMYK")


def test_image_folder_respects_exif_orientation(tmp_path):
    stored = np.zeros((16, 32, 3), np.uint8)  # stored 16 high, 32 wide: left half dark, right half bright
    stored[:, 16:] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "photos" / "rotated.jpg"
    path.parent.mkdir()
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    save(tmp_path / "photos" / "upright.png", pattern(32, 16, 0))  # upright size already 32x16
    ds = ImageFolder(tmp_path)
    assert ds.image_shape == (32, 16, 3)
    upright = ds[0][0].astype(int)
    expected = np.rot90(stored, k=-1).astype(int)  # clockwise: bright half ends at the bottom
    assert np.abs(upright - expected).mean() < 8


def test_image_folder_mixed_sizes_and_resize(tmp_path):
    save(tmp_path / "a" / "x.png", pattern(6, 8, 0))
    save(tmp_path / "b" / "y.png", pattern(10, 4, 1))
    save(tmp_path / "b" / "z.png", pattern(6, 8, 2))
    with pytest.raises(ValueError, match=r"a/x\.png is 6x8 \(HxW\) but b/y\.png is 10x4 \(1 of 3 files differ"):
        ImageFolder(tmp_path)
    ds = ImageFolder(tmp_path, size=(5, 7), in_memory=False)
    assert ds.image_shape == (5, 7, 3) and ds[1][0].shape == (5, 7, 3)
    with pytest.raises(ValueError, match="size must be None or"):
        ImageFolder(tmp_path, size=(5, 0))


def test_image_folder_empty_class_and_unreadable_files(tmp_path):
    save(tmp_path / "full" / "x.png", pattern(4, 4, 0))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match=rf"class folder {tmp_path / 'empty'} holds no images"):
        ImageFolder(tmp_path)
    (tmp_path / "empty" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match=r"broken\.png"):
        ImageFolder(tmp_path)
    with pytest.raises(ValueError, match="has no class sub-folders"):
        ImageFolder(tmp_path / "full")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        ImageFolder(tmp_path / "nope")


# ----------------------------------------------------------------------------- real Fashion-MNIST
@pytest.fixture(scope="module")
def fashion():
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    return get_dataset("fashion-mnist", "train", cache_dir="/nonexistent"), \
        get_dataset("fashion-mnist", "test", cache_dir="/nonexistent")


def test_installed_fashion_mnist(fashion):
    train, test = fashion
    assert train.images.shape == (60000, 28, 28, 1) and test.images.shape == (10000, 28, 28, 1)
    assert train.class_counts().tolist() == [6000] * 10 and test.class_counts().tolist() == [1000] * 10
    assert train.classes == CLASS_NAMES["fashion-mnist"] and train.name == "fashion-mnist"
    mean, std = train.channel_stats()  # the published statistics of the training set
    assert abs(mean[0] - 0.2860) < 1e-3 and abs(std[0] - 0.3530) < 1e-3
