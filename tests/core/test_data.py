"""Datasets, splits and the DataLoader: coverage, reproducibility, fast path, workers, errors."""
import numpy as np
import pytest

from core.data import ArrayDataset, DataLoader, Dataset, Subset, default_collate, random_split, train_val_split


def make_arrays(n=50, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3, 2)).astype(np.float32)
    y = rng.integers(0, 4, size=n)
    return x, y


class ListDataset:
    """A plain Dataset (no ``get_sample``): exercises the generic per-sample path."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def add_noise(x, rng):
    """Module-level so it pickles for spawn workers."""
    return x + rng.normal(size=x.shape).astype(x.dtype)


def collect(loader):
    return [(xb.copy(), None if yb is None else yb.copy()) for xb, yb in loader]


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


# ---------------------------------------------------------------- datasets
def test_array_dataset_items_and_protocol():
    x, y = make_arrays(10)
    ds = ArrayDataset(x, y)
    assert isinstance(ds, Dataset) and len(ds) == 10
    xi, yi = ds[3]
    np.testing.assert_array_equal(xi, x[3])
    assert yi == y[3]
    np.testing.assert_array_equal(ds[-1][0], x[9])
    assert ArrayDataset(x)[2][1] is None
    with pytest.raises(IndexError, match="index 10 out of range"):
        ds[10]


def test_array_dataset_length_mismatch_names_both_lengths():
    with pytest.raises(ValueError, match="x has 5 samples but y has 4"):
        ArrayDataset(np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(TypeError, match="transform must be callable"):
        ArrayDataset(np.zeros((5, 2)), transform=3)


def test_dataset_transform_uses_per_index_generator():
    x, y = make_arrays(6)
    ds = ArrayDataset(x, y, transform=add_noise)
    a, b = ds[2][0], ds[2][0]
    np.testing.assert_array_equal(a, b)  # ds[i] is reproducible
    assert not np.allclose(a, x[2])
    one_arg = ArrayDataset(x, y, transform=lambda v: v * 2)
    np.testing.assert_array_equal(one_arg[1][0], x[1] * 2)


def test_subset_nested_and_negative_indices():
    x, y = make_arrays(20)
    ds = ArrayDataset(x, y)
    outer = Subset(Subset(ds, np.arange(10, 20)), [-1, 0, 2])
    assert len(outer) == 3
    np.testing.assert_array_equal(outer[0][0], x[19])
    np.testing.assert_array_equal(outer[2][0], x[12])
    with pytest.raises(ValueError, match=r"indices must lie in \[-20, 20\)"):
        Subset(ds, [0, 20])
    with pytest.raises(ValueError, match="1-d integer"):
        Subset(ds, [0.5, 1.0])


def test_random_split_lengths_and_fractions():
    ds = ArrayDataset(*make_arrays(11))
    parts = random_split(ds, [0.5, 0.3, 0.2], seed=1)
    assert [len(p) for p in parts] == [6, 3, 2]  # floor 5,3,2 then one remainder round-robin
    all_idx = np.concatenate([p.indices for p in parts])
    assert sorted(all_idx.tolist()) == list(range(11))
    again = random_split(ds, [6, 3, 2], seed=1)
    for p, q in zip(parts, again):
        np.testing.assert_array_equal(p.indices, q.indices)
    with pytest.raises(ValueError, match="sum to the dataset size 11"):
        random_split(ds, [5, 5])
    with pytest.raises(ValueError, match="sum to 1"):
        random_split(ds, [0.5, 0.2])


def test_train_val_split_sizes_disjoint_and_seeded():
    ds = ArrayDataset(*make_arrays(50))
    tr, va = train_val_split(ds, 0.2, seed=3)
    assert len(tr) == 40 and len(va) == 10
    assert not set(tr.indices) & set(va.indices)
    tr2, va2 = train_val_split(ds, 0.2, seed=3)
    np.testing.assert_array_equal(va.indices, va2.indices)
    _, va3 = train_val_split(ds, 0.2, seed=4)
    assert not np.array_equal(va.indices, va3.indices)


def test_stratified_split_keeps_class_proportions():
    y = np.repeat([0, 1, 2], [60, 30, 10])
    x = np.arange(100, dtype=np.float32)[:, None]
    tr, va = train_val_split(ArrayDataset(x, y), 0.2, stratify=True, seed=0)
    assert np.bincount(y[va.indices]).tolist() == [12, 6, 2]
    assert np.bincount(y[tr.indices]).tolist() == [48, 24, 8]
    # Same result through the generic path (a dataset without arrays) ...
    _, va_generic = train_val_split(ListDataset(x, y), 0.2, stratify=True, seed=0)
    np.testing.assert_array_equal(va.indices, va_generic.indices)
    # ... and uneven class sizes still give exactly round(N * f) validation samples.
    y2 = np.repeat([0, 1, 2], [7, 7, 7])
    _, va2 = train_val_split(ArrayDataset(np.zeros((21, 1)), y2), 0.3, stratify=True)
    assert len(va2) == 6 and sorted(np.bincount(y2[va2.indices]).tolist()) == [2, 2, 2]


def test_train_val_split_errors():
    ds = ArrayDataset(*make_arrays(10))
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\), got 1.5"):
        train_val_split(ds, 1.5)
    with pytest.raises(ValueError, match="gives 0 validation samples"):
        train_val_split(ds, 0.01)
    masks = ArrayDataset(np.zeros((10, 2)), np.zeros((10, 4, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="one class label per sample"):
        train_val_split(masks, 0.2, stratify=True)


# ------------------------------------------------------------------- loader
def test_loader_covers_every_sample_once_and_len():
    x, y = make_arrays(50)
    loader = DataLoader(ArrayDataset(x, y), batch_size=16, seed=0)
    batches = collect(loader)
    assert len(loader) == 4 == len(batches)
    assert [len(b[0]) for b in batches] == [16, 16, 16, 2]
    xs = np.concatenate([b[0] for b in batches])
    ys = np.concatenate([b[1] for b in batches])
    order = np.random.default_rng([0, 0]).permutation(50)  # the documented epoch order
    np.testing.assert_array_equal(xs, x[order])
    np.testing.assert_array_equal(ys, y[order])
    assert batches[0][0].dtype == np.float32


def test_loader_drop_last_and_no_shuffle_and_no_labels():
    x, _ = make_arrays(50)
    loader = DataLoader(ArrayDataset(x), batch_size=16, shuffle=False, drop_last=True)
    batches = collect(loader)
    assert len(loader) == 3 == len(batches)
    assert all(yb is None for _, yb in batches)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x[:48])


def test_epochs_differ_advance_and_set_epoch_resumes():
    ds = ArrayDataset(*make_arrays(40))
    loader = DataLoader(ds, batch_size=8, seed=5)
    epoch0, epoch1 = collect(loader), collect(loader)
    assert loader.epoch == 2
    assert not np.array_equal(epoch0[0][0], epoch1[0][0])
    resumed = DataLoader(ds, batch_size=8, seed=5)
    resumed.set_epoch(1)
    assert_same_batches(collect(resumed), epoch1)
    resumed.set_epoch(0)
    assert_same_batches(collect(resumed), epoch0)
    other_seed = collect(DataLoader(ds, batch_size=8, seed=6))
    assert not np.array_equal(other_seed[0][0], epoch0[0][0])


def test_fast_path_does_not_index_samples_one_by_one(monkeypatch):
    x, y = make_arrays(30)
    ds = Subset(ArrayDataset(x, y), np.arange(5, 30))

    def boom(*args, **kwargs):
        raise AssertionError("per-sample access on the fast path")

    monkeypatch.setattr(ArrayDataset, "get_sample", boom)
    monkeypatch.setattr(ArrayDataset, "__getitem__", boom)
    batches = collect(DataLoader(ds, batch_size=7, seed=1))
    order = np.random.default_rng([1, 0]).permutation(25)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x[5:][order])


def test_generic_path_matches_fast_path():
    x, y = make_arrays(33)
    fast = collect(DataLoader(ArrayDataset(x, y), batch_size=10, seed=2, transform=add_noise))
    generic = collect(DataLoader(ListDataset(x, y), batch_size=10, seed=2, transform=add_noise))
    assert_same_batches(fast, generic)


def test_transform_draws_depend_on_sample_not_on_batching():
    x, y = make_arrays(24)
    ds = ArrayDataset(x, y)
    small = collect(DataLoader(ds, batch_size=4, seed=9, transform=add_noise))
    large = collect(DataLoader(ds, batch_size=7, seed=9, transform=add_noise))
    # Same epoch order, different batch boundaries: identical transformed samples.
    np.testing.assert_array_equal(np.concatenate([b[0] for b in small]), np.concatenate([b[0] for b in large]))
    loader = DataLoader(ds, batch_size=24, seed=9, transform=add_noise, shuffle=False)
    first, second = collect(loader), collect(loader)
    assert not np.allclose(first[0][0], second[0][0])  # a new epoch draws new augmentations


def test_transform_call_styles():
    x, y = make_arrays(8)
    seen = []

    def keyword(x, mask=None, rng=None):  # an augmentation pipeline's signature
        seen.append(isinstance(rng, np.random.Generator) and mask is None)
        return x

    for fn in (keyword, lambda v: v + 1, lambda v, rng: v + rng.random()):
        batches = collect(DataLoader(ArrayDataset(x, y), batch_size=4, shuffle=False, transform=fn))
        assert batches[0][0].shape == (4, 3, 2)
    assert seen and all(seen)
    np.testing.assert_array_equal(
        collect(DataLoader(ArrayDataset(x), batch_size=8, shuffle=False, transform=lambda v: v + 1))[0][0], x + 1)


def test_dataset_get_sample_receives_loader_generator_and_custom_collate():
    class Joint:
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return self.get_sample(i, np.random.default_rng(0))

        def get_sample(self, i, rng):
            flip = rng.random() < 0.5
            img = np.arange(4.0) + i
            return (img[::-1] if flip else img), {"flipped": flip}

    loader = DataLoader(Joint(), batch_size=3, seed=1, collate=lambda s: [t for t in s])
    a = [b for b in loader]
    loader.set_epoch(0)
    b = [b for b in loader]
    assert len(a) == 2 and len(a[0]) == 3
    assert [s[1] for batch in a for s in batch] == [s[1] for batch in b for s in batch]


def test_default_collate():
    xb, yb = default_collate([(np.zeros(2), 1), (np.ones(2), 0)])
    assert xb.shape == (2, 2) and yb.tolist() == [1, 0]
    assert default_collate([(np.zeros(2), None)])[1] is None


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_workers_give_identical_batches(context):
    if context == "fork" and "fork" not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip("no fork on this platform")
    x, y = make_arrays(64)
    kwargs = dict(batch_size=8, seed=4, transform=add_noise)
    serial = collect(DataLoader(ArrayDataset(x, y), **kwargs))
    loader = DataLoader(ArrayDataset(x, y), num_workers=2, mp_context=context, prefetch=1, **kwargs)
    assert_same_batches(collect(loader), serial)
    if context == "fork":  # breaking out early shuts the pool down; the next epoch still works
        for i, _ in enumerate(loader):
            if i == 1:
                break
        loader.set_epoch(0)
        assert_same_batches(collect(loader), serial)


def test_loader_errors_name_argument_and_value():
    ds = ArrayDataset(*make_arrays(5))
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        DataLoader(ds, batch_size=0)
    with pytest.raises(TypeError, match="batch_size must be an int, got float"):
        DataLoader(ds, batch_size=2.0)
    with pytest.raises(ValueError, match=r"dataset is empty \(len 0\)"):
        DataLoader(ArrayDataset(np.zeros((0, 3))), batch_size=2)
    with pytest.raises(ValueError, match="num_workers must be an int >= 0, got -1"):
        DataLoader(ds, num_workers=-1)
    with pytest.raises(ValueError, match="seed must be a non-negative int or None, got -3"):
        DataLoader(ds, seed=-3)
    with pytest.raises(ValueError, match="epoch must be an int >= 0"):
        DataLoader(ds).set_epoch(-1)
    with pytest.raises(TypeError, match="must define __len__ and __getitem__"):
        DataLoader(object())
