"""Atomic writes, npz, safetensors (own codec + interop), weights and full checkpoints."""
import json
import math
import os
import struct
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

from core import serialization as ser
from core.module import Module, Parameter
from core.serialization import (CheckpointError, atomic_path, atomic_write_bytes, load_checkpoint, load_npz,
                                load_safetensors, load_weights, restore_rng, save_checkpoint, save_npz,
                                save_safetensors, save_weights)


class Tiny(Module):
    def __init__(self, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.weight = Parameter(rng.normal(size=(3, 4)).astype(np.float32))
        self.bias = Parameter(rng.normal(size=3).astype(np.float32))
        self.register_buffer("count", np.array(seed, dtype=np.int64))


def leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def sample_arrays():
    rng = np.random.default_rng(0)
    return {
        "f32": rng.normal(size=(2, 3)).astype(np.float32),
        "f64": rng.normal(size=(4,)),
        "f16": rng.normal(size=(3, 1)).astype(np.float16),
        "i8": np.array([-128, 0, 127], dtype=np.int8),
        "i16": np.array([[1, -2]], dtype=np.int16),
        "i32": np.arange(6, dtype=np.int32).reshape(2, 3),
        "i64": np.array([2**40, -5], dtype=np.int64),
        "u8": np.arange(5, dtype=np.uint8),
        "bool": np.array([True, False, True]),
        "scalar": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "nc": np.arange(12, dtype=np.float64).reshape(3, 4).T,  # not C-contiguous
        "big": np.arange(3, dtype=">i4"),  # big-endian input
    }


def assert_arrays_equal(a, b):
    assert list(a) == list(b) or set(a) == set(b)
    for k in a:
        assert a[k].shape == b[k].shape, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        assert a[k].dtype.newbyteorder("=") == b[k].dtype.newbyteorder("="), k


# ------------------------------------------------------------------ atomic
def test_atomic_path_failure_midway_keeps_old_file(tmp_path):
    target = tmp_path / "weights.bin"
    target.write_bytes(b"old contents")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp != target
            with open(tmp, "wb") as f:
                f.write(b"half of the new")
                raise RuntimeError("disk on fire")
    assert target.read_bytes() == b"old contents"
    assert leftovers(tmp_path) == []


def test_atomic_write_bytes_replaces_and_uses_umask_mode(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two" and leftovers(tmp_path) == []
    mask = os.umask(0o022)
    os.umask(mask)
    assert (target.stat().st_mode & 0o777) == 0o666 & ~mask  # not mkstemp's 0o600
    os.chmod(target, 0o640)
    atomic_write_bytes(target, b"three")
    assert target.stat().st_mode & 0o777 == 0o640  # an existing file keeps its mode


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_writer_failing_midway_leaves_target_intact(tmp_path, monkeypatch, suffix):
    path = tmp_path / f"w{suffix}"
    save = save_npz if suffix == ".npz" else save_safetensors
    load = load_npz if suffix == ".npz" else load_safetensors
    save(path, {"a": np.ones(3)})
    before = path.read_bytes()
    calls = []
    if suffix == ".npz":
        real = np.lib.format.write_array

        def flaky(fp, array, **kw):
            calls.append(1)
            if len(calls) == 2:
                raise OSError("simulated write failure")
            return real(fp, array, **kw)

        monkeypatch.setattr(np.lib.format, "write_array", flaky)
    else:
        import core.safetensors_io as sio

        real = sio._write_tensor

        def flaky(fileobj, arr):
            calls.append(1)
            if len(calls) == 2:
                fileobj.write(b"\0" * 3)  # part of a tensor reached the temp file
                raise OSError("simulated write failure")
            return real(fileobj, arr)

        monkeypatch.setattr(sio, "_write_tensor", flaky)
    with pytest.raises(OSError, match="simulated"):
        save(path, {"a": np.zeros(3), "b": np.zeros(4), "c": np.zeros(5)})
    monkeypatch.undo()
    assert path.read_bytes() == before
    np.testing.assert_array_equal(load(path)[0]["a"], np.ones(3))
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------- npz
def test_npz_round_trip_with_metadata_and_numpy_compat(tmp_path):
    arrays = sample_arrays()
    arrays["text"] = np.array(["a", "bc"])
    path = tmp_path / "a.npz"
    save_npz(path, arrays, {"epoch": 3, "note": "hi", "nested": [1, 2.5, None]})
    got, meta = load_npz(path)
    assert_arrays_equal(arrays, got)
    assert meta == {"epoch": 3, "note": "hi", "nested": [1, 2.5, None]}
    with np.load(path, allow_pickle=False) as plain:  # a normal NumPy archive
        np.testing.assert_array_equal(plain["f32"], arrays["f32"])
    np.savez_compressed(tmp_path / "np.npz", w=np.arange(4))
    got, meta = load_npz(tmp_path / "np.npz")
    assert meta == {} and got["w"].tolist() == [0, 1, 2, 3]
    save_npz(tmp_path / "c.npz", arrays, compress=True)
    assert_arrays_equal(arrays, load_npz(tmp_path / "c.npz")[0])


def test_npz_refuses_object_arrays_and_bad_metadata(tmp_path):
    with pytest.raises(TypeError, match="'bad' has dtype object"):
        save_npz(tmp_path / "x.npz", {"bad": np.array([{}, None], dtype=object)})
    with pytest.raises(TypeError, match="metadata must be JSON-serialisable"):
        save_npz(tmp_path / "x.npz", {"a": np.ones(1)}, {"f": object()})
    with pytest.raises(ValueError, match="'__metadata__' is reserved"):
        save_npz(tmp_path / "x.npz", {"__metadata__": np.ones(1)})


def _npz_with_member(path, name, payload):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(name + ".npy", payload)


def _npy_bytes(arr):
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr)
    return buf.getvalue()


def test_npz_errors_name_file_and_problem(tmp_path):
    not_zip = tmp_path / "notzip.npz"
    not_zip.write_bytes(b"hello world, not a zip archive")
    with pytest.raises(CheckpointError, match=r"notzip\.npz: not an \.npz \(zip\) file"):
        load_npz(not_zip)
    good = tmp_path / "good.npz"
    save_npz(good, {"a": np.arange(1000.0)})
    truncated = tmp_path / "trunc.npz"
    truncated.write_bytes(good.read_bytes()[:3000])
    with pytest.raises(CheckpointError, match=r"trunc\.npz: truncated or corrupt"):
        load_npz(truncated)
    short = tmp_path / "short.npz"  # array header promises 10 float64, entry holds 9
    _npz_with_member(short, "a", _npy_bytes(np.arange(10.0))[:-8])
    with pytest.raises(CheckpointError, match=r"short\.npz: truncated or corrupt"):
        load_npz(short)
    long = tmp_path / "long.npz"  # header promises 10, entry holds 11
    _npz_with_member(long, "a", _npy_bytes(np.arange(10.0)) + b"\0" * 8)
    with pytest.raises(CheckpointError, match=r"long\.npz: entry 'a': array header says 80 data bytes"):
        load_npz(long)
    flipped = bytearray(good.read_bytes())
    flipped[200] ^= 0xFF  # inside the array data: the CRC check catches it
    (tmp_path / "crc.npz").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match=r"crc\.npz: truncated or corrupt.*CRC"):
        load_npz(tmp_path / "crc.npz")


# ------------------------------------------------------------- safetensors
def test_safetensors_round_trip_all_dtypes(tmp_path):
    arrays = sample_arrays()
    arrays["u16"] = np.array([1, 65535], dtype=np.uint16)
    path = tmp_path / "a.safetensors"
    save_safetensors(path, arrays, {"source": "test"})
    got, meta = load_safetensors(path)
    assert_arrays_equal(arrays, got)
    assert meta == {"source": "test"}
    assert all(a.flags.writeable and a.flags.aligned for a in got.values())
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0  # data section starts 8-byte aligned
    header = json.loads(raw[8:8 + n])
    assert header["f16"]["dtype"] == "F16" and header["bool"]["dtype"] == "BOOL"


def test_safetensors_interop_with_reference_package(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    arrays = {k: np.ascontiguousarray(v).astype(v.dtype.newbyteorder("<"))
              for k, v in sample_arrays().items()}
    ours = tmp_path / "ours.safetensors"
    save_safetensors(ours, arrays, {"k": "v"})
    assert_arrays_equal(arrays, st.load_file(str(ours)))
    theirs = tmp_path / "theirs.safetensors"
    st.save_file(arrays, str(theirs), metadata={"format": "np"})
    got, meta = load_safetensors(theirs)
    assert_arrays_equal(arrays, got)
    assert meta == {"format": "np"}


def _raw_safetensors(header: dict, data: bytes, pad=True) -> bytes:
    blob = json.dumps(header).encode()
    if pad:
        blob += b" " * (-len(blob) % 8)
    return struct.pack("<Q", len(blob)) + blob + data


def test_safetensors_bf16_reads_as_float32(tmp_path):
    values = np.array([1.0, -2.5, 3.140625, 0.0], dtype=np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype("<u2")  # exact in bfloat16
    path = tmp_path / "bf.safetensors"
    path.write_bytes(_raw_safetensors({"w": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]}},
                                      bf16.tobytes()))
    got, _ = load_safetensors(path)
    assert got["w"].dtype == np.float32
    np.testing.assert_array_equal(got["w"], values.reshape(2, 2))


def test_safetensors_errors_name_file_and_problem(tmp_path):
    good = tmp_path / "weights.safetensors"
    save_safetensors(good, {"w": np.zeros(1024, dtype=np.float32)})
    raw = good.read_bytes()
    cases = {
        "truncated": (raw[:-3096], r"header says 4096 bytes of tensor data, file has 1000"),
        "tiny": (b"\x01\x02", r"file is 2 bytes"),
        "length": (struct.pack("<Q", 500) + b"{}", r"header length field says 500 bytes, only 2 bytes follow"),
        "huge": (struct.pack("<Q", 2**40) + b"{}", r"header length field says 1099511627776 bytes \(limit"),
        "json": (struct.pack("<Q", 4) + b"{no}", r"header is not valid UTF-8 JSON"),
        "dtype": (_raw_safetensors({"w": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 8),
                  r"tensor 'w': unknown dtype 'C64'"),
        "span": (_raw_safetensors({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8),
                 r"tensor 'w': F32 of shape \[3\] needs 12 bytes, data_offsets \[0, 8\] span 8"),
        "overlap": (_raw_safetensors({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                                      "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}, b"\0" * 6),
                    r"tensor 'b': data starts at 2, expected 4"),
        "trailing": (_raw_safetensors({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}, b"\0" * 5),
                     r"header accounts for 2 bytes of tensor data, file has 5 \(3 unexplained trailing bytes\)"),
        "shape": (_raw_safetensors({"a": {"dtype": "U8", "shape": [-2], "data_offsets": [0, 2]}}, b"\0" * 2),
                  r"tensor 'a': shape must be a list of non-negative ints, got \[-2\]"),
        "bool": (_raw_safetensors({"a": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}, b"\x01\x07"),
                 r"tensor 'a': BOOL data holds bytes other than 0 and 1"),
        "meta": (_raw_safetensors({"__metadata__": {"a": 1}}, b""), r"__metadata__ must be an object of string values"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(content)
        with pytest.raises(CheckpointError, match=f"{name}.safetensors: {message}"):
            load_safetensors(path)


def test_safetensors_write_errors():
    import io

    from core.safetensors_io import write_safetensors

    with pytest.raises(TypeError, match="tensor 'z': .*complex128 is not storable"):
        write_safetensors(io.BytesIO(), {"z": np.zeros(2, dtype=complex)})
    with pytest.raises(TypeError, match="metadata must be a dict of str -> str"):
        write_safetensors(io.BytesIO(), {"a": np.zeros(2)}, {"epoch": 3})
    with pytest.raises(ValueError, match="'__metadata__' is reserved"):
        write_safetensors(io.BytesIO(), {"__metadata__": np.zeros(2)})


# ----------------------------------------------------------------- weights
@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_weights_round_trip(tmp_path, suffix):
    src, dst = Tiny(seed=1), Tiny(seed=2)
    path = tmp_path / f"tiny{suffix}"
    save_weights(src, path)
    load_weights(dst, path)
    for (name, a), b in zip(src.state_dict().items(), dst.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert dst.count.dtype == np.int64 and int(dst.count) == 1


def test_weights_suffix_and_mismatch_errors(tmp_path):
    with pytest.raises(ValueError, match=r"suffix '\.pt'; supported: \.npz, \.safetensors"):
        save_weights(Tiny(), tmp_path / "w.pt")
    with pytest.raises(ValueError, match=r"suffix '\.bin'; supported"):
        load_weights(Tiny(), tmp_path / "w.bin")
    path = tmp_path / "partial.safetensors"
    save_safetensors(path, {"weight": np.zeros((3, 4), np.float32), "extra": np.zeros(1)})
    with pytest.raises(CheckpointError, match=r"partial\.safetensors: .*missing keys \(2\): bias, count"):
        load_weights(Tiny(), path)
    result = load_weights(Tiny(), path, strict=False)
    assert result.missing == ["bias", "count"] and result.unexpected == ["extra"]


def test_load_weights_accepts_a_checkpoint(tmp_path):
    src = Tiny(seed=4)
    save_checkpoint(tmp_path / "ckpt.npz", model=src, extra={"epoch": 1})
    dst = Tiny(seed=5)
    load_weights(dst, tmp_path / "ckpt.npz")
    np.testing.assert_array_equal(dst.weight.data, src.weight.data)


# ------------------------------------------------------------- checkpoints
def nested_state():
    return {
        "state": {0: {"step": 7, "exp_avg": np.arange(3.0)}, 2: {"step": 7, "exp_avg": np.ones((2, 2), np.float32)}},
        "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "params": [0, 1, 2],
                          "nesterov": False, "after": None}],
        "floats": [0.1, float("nan"), float("inf"), -float("inf"), 1.0, 10**30],
        "numpy_scalars": [np.float32(0.25), np.int64(-3), np.bool_(True), np.uint8(200)],
        "odict": OrderedDict([("b", 1), ("a", 2)]),
        "keys": {1.5: "float key", True: "bool key", None: "none key", "a.b": np.zeros(1)},
        "a": {"b": np.ones(1)},  # its dotted name collides with the "a.b" key above at top level
        "blob": b"\x00\x01raw",
        "empty": {}, "empty_list": [], "text": "ünïcode",
    }


def assert_same_structure(a, b, where="root"):
    assert type(a) is type(b), f"{where}: {type(a)} vs {type(b)}"
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert type(k) is type(next(x for x in b if x == k and type(x) is type(k))), where
            assert_same_structure(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_structure(x, y, f"{where}.{i}")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, where
        if isinstance(a, np.generic):
            assert a.dtype == b.dtype, where


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_checkpoint_round_trips_exactly(tmp_path, suffix):
    model = Tiny(seed=3)
    rng = np.random.default_rng(11)
    rng.normal(size=5)
    state = nested_state()
    path = tmp_path / f"ckpt{suffix}"
    save_checkpoint(path, model=model, optimizer=state, schedule={"t": 4, "base_lrs": [0.1]},
                    rng=rng, extra={"history": [{"loss": 1.25, "epoch": 1}], "note": None},
                    epoch=3, step=1200, replay=np.arange(6, dtype=np.uint8).reshape(2, 3))
    ckpt = load_checkpoint(path)
    assert set(ckpt) == {"model", "optimizer", "schedule", "rng", "extra", "epoch", "step", "replay"}
    assert_same_structure(model.state_dict(), ckpt["model"], "model")
    assert_same_structure(state, ckpt["optimizer"], "optimizer")
    assert ckpt["schedule"] == {"t": 4, "base_lrs": [0.1]}
    assert ckpt["extra"] == {"history": [{"loss": 1.25, "epoch": 1}], "note": None}
    assert ckpt["epoch"] == 3 and type(ckpt["epoch"]) is int and ckpt["step"] == 1200
    assert ckpt["replay"].dtype == np.uint8 and ckpt["replay"].shape == (2, 3)
    resumed = restore_rng(ckpt["rng"])
    np.testing.assert_array_equal(resumed.normal(size=8), rng.normal(size=8))


def test_checkpoint_with_real_optimizer_resumes_identically(tmp_path):
    optim = pytest.importorskip("core.optim")
    model = Tiny()
    opt = optim.Adam(model.parameters(), lr=0.01)
    for _ in range(2):
        model.weight.grad, model.bias.grad = np.ones((3, 4), np.float32), np.ones(3, np.float32)
        opt.step()
    save_checkpoint(tmp_path / "o.npz", model=model, optimizer=opt)
    ckpt = load_checkpoint(tmp_path / "o.npz")
    twin = Tiny(seed=9)
    twin_opt = optim.Adam(twin.parameters(), lr=0.5)
    twin.load_state_dict(ckpt["model"])
    twin_opt.load_state_dict(ckpt["optimizer"])
    for m, o in ((model, opt), (twin, twin_opt)):
        m.weight.grad, m.bias.grad = np.full((3, 4), 0.5, np.float32), np.full(3, 0.5, np.float32)
        o.step()
    np.testing.assert_array_equal(model.weight.data, twin.weight.data)


def test_rng_states_of_every_bit_generator_round_trip(tmp_path):
    gens = {name: np.random.Generator(getattr(np.random, name)(5))
            for name in ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")}
    for g in gens.values():
        g.random(3)
    save_checkpoint(tmp_path / "r.safetensors", rng=gens)
    states = load_checkpoint(tmp_path / "r.safetensors")["rng"]
    for name, g in gens.items():
        np.testing.assert_array_equal(restore_rng(states[name]).integers(0, 2**62, size=4),
                                      g.integers(0, 2**62, size=4), err_msg=name)
    with pytest.raises(ValueError, match="restore_rng: expected a bit_generator.state dict"):
        restore_rng({"bit_generator": "os.system"})


def test_checkpoint_refuses_unstorable_values(tmp_path):
    with pytest.raises(TypeError, match=r"extra\.cb is a set"):
        save_checkpoint(tmp_path / "x.npz", extra={"cb": {1, 2}})
    with pytest.raises(TypeError, match=r"has a key \(1, 2\) of type tuple"):
        save_checkpoint(tmp_path / "x.npz", extra={(1, 2): 3})
    with pytest.raises(ValueError, match="format must be 'npz' or 'safetensors'"):
        save_checkpoint(tmp_path / "x.npz", format="pickle", epoch=1)
    assert not (tmp_path / "x.npz").exists() and leftovers(tmp_path) == []


def test_checkpoint_errors_name_file_and_problem(tmp_path):
    plain = tmp_path / "plain.npz"
    save_npz(plain, {"w": np.ones(2)})
    with pytest.raises(CheckpointError, match=r"plain\.npz: not a zerodl checkpoint"):
        load_checkpoint(plain)
    path = tmp_path / "full.npz"
    save_checkpoint(path, model=Tiny(), epoch=2)
    arrays, meta = load_npz(path)
    del arrays["model.bias"]
    save_npz(tmp_path / "missing.npz", arrays, meta)
    with pytest.raises(CheckpointError, match=r"missing\.npz: missing array entry 'model\.bias'"):
        load_checkpoint(tmp_path / "missing.npz")
    save_npz(tmp_path / "future.npz", arrays, {**meta, "version": "99"})
    with pytest.raises(CheckpointError, match=r"future\.npz: checkpoint format version '99' is not supported"):
        load_checkpoint(tmp_path / "future.npz")
    (tmp_path / "cut.npz").write_bytes(path.read_bytes()[:-50])
    with pytest.raises(CheckpointError, match=r"cut\.npz: truncated or corrupt"):
        load_checkpoint(tmp_path / "cut.npz")
    st = tmp_path / "cut.safetensors"
    save_checkpoint(st, model=Tiny())
    st.write_bytes(st.read_bytes()[:-4])
    with pytest.raises(CheckpointError, match=r"cut\.safetensors: header says \d+ bytes of tensor data"):
        load_checkpoint(st)
    (tmp_path / "junk.ckpt").write_bytes(b"\x00" * 3)
    with pytest.raises(CheckpointError, match=r"junk\.ckpt: file is 3 bytes"):
        load_checkpoint(tmp_path / "junk.ckpt")


def test_module_is_not_changed_by_saving(tmp_path):
    model = Tiny()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    save_weights(model, tmp_path / "w.npz")
    save_checkpoint(tmp_path / "c.npz", model=model)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    assert model.weight.data.dtype == np.float32
    assert ser.WEIGHT_SUFFIXES == (".npz", ".safetensors")


def test_writes_create_missing_folders_and_format_is_sniffed_on_load(tmp_path):
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    save_checkpoint(path, format="safetensors", epoch=4, model=Tiny())
    assert path.read_bytes()[8:9] == b"{"  # a safetensors header despite the suffix
    assert load_checkpoint(path)["epoch"] == 4
    save_checkpoint(tmp_path / "plain" / "last", epoch=5)  # no suffix: npz by default
    assert (tmp_path / "plain" / "last").read_bytes()[:2] == b"PK"
    assert load_checkpoint(tmp_path / "plain" / "last")["epoch"] == 5
