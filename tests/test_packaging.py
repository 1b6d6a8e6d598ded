"""The distribution ships every top-level package and the ``zerodl`` console script."""
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_packages_and_entry_point(tmp_path):
    try:
        import setuptools  # noqa: F401
    except ImportError:
        pytest.skip("setuptools not importable: cannot build without isolation")
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    wheel = next(tmp_path.glob("zerodl-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for required in ("core/module.py", "core/trainer.py", "apps/cli.py", "vision/__init__.py", "rl/__init__.py"):
        assert required in names, required
    assert not any(n.startswith("tests/") for n in names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "zerodl = apps.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
