"""``zerodl`` entry point and the demo app, run as a user would (subprocess)."""
import csv
import subprocess
import sys


def zerodl(*args, cwd=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "apps", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def test_help_lists_apps_and_defaults():
    out = zerodl("--help")
    assert out.returncode == 0, out.stderr
    assert "demo" in out.stdout
    demo = zerodl("demo", "--help")
    assert demo.returncode == 0
    assert "(default: 0.01)" in demo.stdout and "--epochs" in demo.stdout


def test_demo_trains_and_resumes(tmp_path):
    run = tmp_path / "run"
    out = zerodl("demo", "--epochs", "3", "--samples", "200", "--run-dir", str(run), "--no-progress")
    assert out.returncode == 0, out.stderr
    assert (run / "checkpoints" / "last.npz").exists() and (run / "learning_curves.png").exists()
    out = zerodl("demo", "--epochs", "5", "--samples", "200", "--run-dir", str(run), "--resume", "--no-progress")
    assert out.returncode == 0, out.stderr
    with open(run / "metrics.csv") as f:
        assert [int(float(r["epoch"])) for r in csv.DictReader(f)] == [1, 2, 3, 4, 5]


def test_demo_rejects_bad_arguments(tmp_path):
    out = zerodl("demo", "--epochs", "0", "--run-dir", str(tmp_path / "r"))
    assert out.returncode == 2 and "--epochs must be >= 1, got 0" in out.stdout
    out = zerodl("demo", "--optimizer", "lbfgs")
    assert out.returncode == 2 and "invalid choice" in out.stderr
