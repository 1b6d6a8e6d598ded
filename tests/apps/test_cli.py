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


def threads_after(argv, env_value=None):
    """OPENBLAS_NUM_THREADS seen after ``configure_threads(argv)`` in a fresh interpreter (no NumPy yet)."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                            "MKL_NUM_THREADS")}
    if env_value is not None:
        env["OPENBLAS_NUM_THREADS"] = env_value
    code = ("import os, sys; from apps.cli import configure_threads; "
            f"configure_threads({argv!r}); print(os.environ.get('OPENBLAS_NUM_THREADS'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_thread_configuration():
    assert threads_after(["dqn", "train"]) == "1"            # small matrices: one BLAS thread
    assert threads_after(["dqn", "train"], env_value="2") == "2"  # the user's environment wins
    assert threads_after(["--threads", "3", "dqn", "train"], env_value="2") == "3"  # the flag wins
    assert threads_after(["demo"]) == "None"                  # other apps keep the library default
