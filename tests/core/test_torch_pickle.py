"""PyTorch checkpoint reader: both container formats, every dtype, strides, nesting, and hostile files.

The fixture files under ``tests/fixtures/`` were written once by
``tests/fixtures/make_torch_fixtures.py`` (with torch), so the reader is tested
on real ``torch.save`` output even where torch is not installed; the
``torch``-marked tests below build fresh checkpoints when torch is importable.
"""
from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from core.serialization import CheckpointError
from core.torch_pickle import (
    load_torch_file, load_torch_state_dict, rename_keys, strip_prefixes, unwrap_state_dict,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FORMATS = ["torch_zip.pt", "torch_legacy.pt", "torch_bigendian.pt"]


@pytest.fixture(scope="module")
def expected():
    with np.load(FIXTURES / "torch_expected.npz") as z:
        return {k: z[k] for k in z.files}


# ----------------------------------------------------------------- fixtures
@pytest.mark.parametrize("name", FORMATS)
def test_fixture_checkpoints_match_torch_values(name, expected):
    obj = load_torch_file(FIXTURES / name)
    assert obj["epoch"] == 3 and obj["extra"]["lr"] == 0.1 and obj["extra"]["history"][0] == 1.5
    np.testing.assert_array_equal(obj["extra"]["history"][1], expected["extra.history.1"])
    state = obj["state_dict"]
    assert isinstance(state, OrderedDict)
    assert list(state) == [k[len("state_dict."):] for k in expected if k.startswith("state_dict.")]
    for key, want in expected.items():
        if not key.startswith("state_dict."):
            continue
        got = state[key[len("state_dict."):]]
        assert got.dtype == want.dtype and got.dtype.isnative, key
        assert got.shape == want.shape, key
        assert got.flags["C_CONTIGUOUS"] and got.flags["OWNDATA"], key
        np.testing.assert_array_equal(got, want, err_msg=key)


def test_dtypes_strides_and_offsets_from_fixture():
    state = load_torch_state_dict(FIXTURES / "torch_zip.pt")
    assert state["bfloat16"].dtype == np.float32  # widened: NumPy has no bfloat16
    assert state["float16"].dtype == np.float16 and state["float64"].dtype == np.float64
    assert [state[k].dtype for k in ("int8", "int16", "int32", "int64", "uint8", "bool")] == \
        [np.int8, np.int16, np.int32, np.int64, np.uint8, np.bool_]
    np.testing.assert_array_equal(state["int64"], [-(2 ** 63), 0, 2 ** 63 - 1])
    np.testing.assert_array_equal(state["transposed"], state["transposed"].T.T)
    assert state["transposed"].shape == (8, 6) and state["strided"].shape == (3, 3)
    # The two views of one storage keep their own windows into it.
    np.testing.assert_array_equal(state["shared_a"].ravel(), np.arange(12))
    np.testing.assert_array_equal(state["shared_b"].ravel(), np.arange(10, 24))
    assert state["scalar"].shape == () and int(state["scalar"]) == 7
    assert state["empty"].shape == (0, 3)


def test_state_dict_unwrapped_and_module_prefix_stripped():
    state = load_torch_state_dict(FIXTURES / "torch_legacy.pt")
    assert "float32" in state and not any(k.startswith("module.") for k in state)
    kept = load_torch_state_dict(FIXTURES / "torch_legacy.pt", prefixes=())
    assert all(k.startswith("module.") for k in kept)
    renamed = load_torch_state_dict(FIXTURES / "torch_zip.pt", rename=[(r"^shared_", "views."), (r"^param$", "w")])
    assert {"views.a", "views.b", "w"} <= set(renamed) and "param" not in renamed


# ------------------------------------------------------------- state dict helpers
def test_unwrap_finds_nested_weights_and_explicit_keys():
    w = {"a.weight": np.ones(2), "a.bias": np.zeros(2)}
    assert list(unwrap_state_dict({"epoch": 1, "model": {"state_dict": w}})) == ["a.weight", "a.bias"]
    assert list(unwrap_state_dict({"net": w, "optimizer": {"state": {}}})) == ["a.weight", "a.bias"]
    ema = {"ema": {"model": {"x": np.ones(1)}}, "model": w}
    assert list(unwrap_state_dict(ema, key="ema.model")) == ["x"]
    # Scalars mixed into a flat weights dict are dropped.
    assert list(unwrap_state_dict({"x": np.ones(1), "step": 4})) == ["x"]
    with pytest.raises(CheckpointError, match=r"no entry 'ema' on the path 'ema.model'.*found: model"):
        unwrap_state_dict({"model": w}, key="ema.model", where="f.pt")
    with pytest.raises(CheckpointError, match=r"f.pt: no dict of weight arrays found.*'epoch': int"):
        unwrap_state_dict({"epoch": 3, "lr": 0.1}, where="f.pt")


def test_strip_prefixes_only_when_every_key_has_it():
    s = {"module.module.a": 1, "module.module.b": 2}
    assert list(strip_prefixes(s)) == ["a", "b"]
    mixed = {"module.a": 1, "b": 2}
    assert list(strip_prefixes(mixed)) == ["module.a", "b"]
    assert list(strip_prefixes({"backbone.x": 1}, prefixes=("model.", "backbone."))) == ["x"]


def test_rename_rules_apply_in_order_and_collisions_are_reported():
    s = OrderedDict([("backbone.gamma", 1), ("backbone.beta", 2)])
    out = rename_keys(s, [(r"^backbone\.", "body."), (r"gamma$", "weight"), (r"beta$", "bias")])
    assert list(out) == ["body.weight", "body.bias"]
    with pytest.raises(CheckpointError, match=r"both 'backbone.gamma' and 'backbone.beta' to 'x'"):
        rename_keys(s, [(r"^.*$", "x")])
    with pytest.raises(TypeError, match=r"\(regex, replacement\) pair"):
        rename_keys(s, ["oops"])
    with pytest.raises(ValueError, match=r"invalid regex '\('"):
        rename_keys(s, [("(", "")])


# ------------------------------------------------------------ broken files
@pytest.mark.parametrize("name", ["torch_zip.pt", "torch_legacy.pt"])
def test_truncated_files_raise_checkpoint_error_naming_the_file(name, tmp_path):
    data = (FIXTURES / name).read_bytes()
    for cut in (1, 20, 150, len(data) // 2, len(data) - 40, len(data) - 1):
        path = tmp_path / f"cut{cut}_{name}"
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError) as err:
            load_torch_file(path)
        assert str(path) in str(err.value)


def _legacy_layout(path):
    """Offsets of (count, data) for each storage of a legacy file, found with a permissive scan."""
    data = path.read_bytes()
    f = io.BytesIO(data)

    class Skip(pickle.Unpickler):  # our own fixture file, for locating byte offsets only
        def find_class(self, module, name):
            return OrderedDict if module == "collections" else (lambda *a: None)

        def persistent_load(self, pid):
            return None

    for _ in range(5):
        Skip(f).load()
    return data, f.tell()


def test_legacy_corrupt_storage_count(tmp_path):
    data, first = _legacy_layout(FIXTURES / "torch_legacy.pt")
    bad = bytearray(data)
    count = struct.unpack_from("<q", bad, first)[0]
    struct.pack_into("<q", bad, first, count + 1)
    path = tmp_path / "badcount.pt"
    path.write_bytes(bytes(bad))
    with pytest.raises(CheckpointError, match=rf"records {count + 1} elements, the pickle says {count}"):
        load_torch_file(path)
    struct.pack_into("<q", bad, first, 2 ** 60)  # absurd size: refused before allocating
    path.write_bytes(bytes(bad))
    with pytest.raises(CheckpointError, match=r"badcount.pt"):
        load_torch_file(path)


def test_zip_missing_storage_entry(tmp_path):
    src = FIXTURES / "torch_zip.pt"
    dst = tmp_path / "missing.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        dropped = None
        for name in zin.namelist():
            if "/data/" in name and dropped is None:
                dropped = name
                continue
            zout.writestr(name, zin.read(name))
    with pytest.raises(CheckpointError, match=r"missing.pt: storage '.*' is referenced but entry .* is missing"):
        load_torch_file(dst)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_bytes(b"hello world, not a checkpoint")
    with pytest.raises(CheckpointError, match=r"notes.pt: not a PyTorch checkpoint: it starts with b'hell'"):
        load_torch_file(path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_torch_file(tmp_path / "absent.pt")


# --------------------------------------------------------------- hostile files
class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _legacy_wrap(obj_pickle: bytes) -> bytes:
    head = b"".join(pickle.dumps(v, protocol=2) for v in (
        0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}))
    return head + obj_pickle + pickle.dumps([], protocol=2)


def _zip_wrap(obj_pickle: bytes, path: Path) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", obj_pickle)
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/version", "3\n")


def _hostile_pickles(marker: Path) -> dict:
    cmd = f"touch {marker}".encode()
    return {
        # __reduce__ -> os.system (pickled as posix.system on Linux)
        "reduce": pickle.dumps({"w": _Evil(marker)}, protocol=2),
        # hand-written opcodes: PROTO 2, GLOBAL builtins.eval, a string, TUPLE, REDUCE
        "eval": b"\x80\x02cbuiltins\neval\n(S'__import__(\"os\").system(\"" + cmd + b"\")'\ntR.",
        # protocol-4 STACK_GLOBAL of subprocess.call
        "stack_global": b"\x80\x04\x8c\nsubprocess\x94\x8c\x04call\x94\x93\x94\x8c\x02sh\x8c\x02-c\x8c"
                        + bytes([len(cmd)]) + cmd + b"\x87\x94\x85R.",
    }


@pytest.mark.parametrize("kind", ["reduce", "eval", "stack_global"])
@pytest.mark.parametrize("container", ["legacy", "zip", "legacy_header"])
def test_malicious_pickle_is_rejected_not_executed(kind, container, tmp_path):
    marker = tmp_path / "pwned"
    payload = _hostile_pickles(marker)[kind]
    path = tmp_path / f"evil_{kind}.pth"
    if container == "zip":
        _zip_wrap(payload, path)
    elif container == "legacy":
        path.write_bytes(_legacy_wrap(payload))
    else:  # the payload sits where the magic number belongs
        path.write_bytes(payload + b"\x00" * 16)
    with pytest.raises(CheckpointError) as err:
        load_torch_file(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "refusing to load" in msg
    assert any(n in msg for n in ("posix.system", "os.system", "builtins.eval", "subprocess.call"))
    assert not marker.exists()


def test_calling_an_allowed_non_function_global_is_refused(tmp_path):
    # A storage type is resolvable (it appears in persistent ids) but must not be callable.
    payload = b"\x80\x02ctorch\nFloatStorage\n)R."
    path = tmp_path / "odd.pt"
    _zip_wrap(payload, path)
    with pytest.raises(CheckpointError, match=r"odd.pt \(data.pkl\): corrupt pickle"):
        load_torch_file(path)


# ----------------------------------------------------------- fresh torch files
@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


TORCH_DTYPES = ["float32", "float64", "float16", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "bool"]


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_random_tensors_every_dtype_and_layout(torch, legacy, tmp_path):
    g = torch.Generator().manual_seed(1)
    rng = np.random.default_rng(1)
    tensors, expect = OrderedDict(), {}
    for i, name in enumerate(TORCH_DTYPES):
        dtype = getattr(torch, name)
        shape = tuple(int(s) for s in rng.integers(2, 7, size=int(rng.integers(1, 5))))
        base = (torch.randn(shape, generator=g) * 50).to(dtype)
        variants = {"plain": base, "perm": base.permute(*reversed(range(base.ndim)))}
        if base.ndim >= 2:
            variants["slice"] = base[1:, ::2]
        for vname, t in variants.items():
            key = f"layer{i}.{name}.{vname}"
            tensors[key] = t
            expect[key] = (t.float() if dtype == torch.bfloat16 else t).numpy().copy()
    path = tmp_path / "rand.pt"
    torch.save({"model": tensors, "optimizer": {"lr": 1e-3}}, path, _use_new_zipfile_serialization=not legacy)
    state = load_torch_state_dict(path)
    assert list(state) == list(expect)
    for k, want in expect.items():
        assert state[k].dtype == want.dtype, k
        np.testing.assert_array_equal(state[k], want, err_msg=k)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_module_state_dict_in_data_parallel_checkpoint(torch, legacy, tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(2, 2))
    wrapped = {f"module.{k}": v for k, v in net.state_dict().items()}
    path = tmp_path / "dp.pth"
    torch.save({"epoch": 9, "state_dict": wrapped, "best_acc": 0.5}, path,
               _use_new_zipfile_serialization=not legacy)
    state = load_torch_state_dict(path)
    assert list(state) == list(net.state_dict())
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(state[k], v.numpy())
    assert state["1.num_batches_tracked"].dtype == np.int64


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_unsigned_dtypes_through_untyped_storages(torch, legacy, tmp_path):
    # uint16/32/64 have no typed storage class: torch writes _rebuild_tensor_v3 over an UntypedStorage.
    tensors = {"u16": torch.tensor([[1, 2], [65535, 0]], dtype=torch.uint16).t(),
               "u32": torch.tensor([7, 2 ** 32 - 1], dtype=torch.uint32),
               "u64": torch.tensor([0, 1, 2, 3, 4, 5], dtype=torch.uint64)[1::2]}
    path = tmp_path / "unsigned.pt"
    try:
        torch.save(tensors, path, _use_new_zipfile_serialization=not legacy)
    except (RuntimeError, TypeError, NotImplementedError) as e:  # pragma: no cover - older torch
        pytest.skip(f"this torch cannot save unsigned tensors in this format: {e}")
    state = load_torch_file(path)
    np.testing.assert_array_equal(state["u16"], np.array([[1, 65535], [2, 0]], np.uint16))
    assert state["u16"].dtype == np.uint16 and state["u32"].dtype == np.uint32
    np.testing.assert_array_equal(state["u32"], [7, 2 ** 32 - 1])
    np.testing.assert_array_equal(state["u64"], np.array([1, 3, 5], np.uint64))


def test_whole_module_pickle_is_refused(torch, tmp_path):
    # torch.save(model) pickles the class itself: that is code, not weights.
    path = tmp_path / "whole.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(CheckpointError, match=r"global torch.nn.modules.linear.Linear.*refusing"):
        load_torch_file(path)
