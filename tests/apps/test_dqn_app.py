"""``zerodl dqn`` run as a user would (subprocess): train / eval / play with tiny budgets, resume, bad input."""
import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# CartPole's rgb_array frames need pygame (gymnasium[classic-control]); without it no GIF is written.
HAS_PYGAME = importlib.util.find_spec("pygame") is not None
TINY = ["--set", "hidden=[16]", "--set", "learning_starts=100", "--set", "train_freq=8", "--set", "gradient_steps=2",
        "--set", "eval_every=200", "--set", "eval_episodes=2", "--no-progress"]


def zerodl(*args, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "apps", "dqn", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("dqn") / "run"
    out = zerodl("train", "--env", "CartPole-v1", "--steps", 500, "--seed", 1, "--run-dir", run, *TINY)
    assert out.returncode == 0, out.stderr
    return run, out


def test_train_writes_the_run_folder(trained):
    run, out = trained
    for name in ("config.json", "metrics.csv", "learning_curve.png", "summary.json",
                 "checkpoints/last.npz", "checkpoints/best.npz"):
        assert (run / name).is_file(), name
    assert (run / "episode.gif").is_file() == HAS_PYGAME
    config = json.loads((run / "config.json").read_text())
    assert config["env_id"] == "CartPole-v1" and config["total_steps"] == 500 and config["hidden"] == [16]
    assert config["double"] is True  # from the CartPole preset
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert any(r["return"] for r in rows) and [int(r["step"]) for r in rows if r["val_return"]] == [200, 400]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 500 and summary["reward_threshold"] == 475.0 and not summary["interrupted"]
    assert "last evaluation" in out.stdout and "steps/s" in out.stdout


def test_eval_and_play(trained, tmp_path):
    run, _ = trained
    out = zerodl("eval", "--checkpoint", run / "checkpoints" / "best.npz", "--episodes", 3)
    assert out.returncode == 0, out.stderr
    assert "CartPole-v1: return" in out.stdout and "over 3 episodes" in out.stdout
    gif = tmp_path / "out" / "cartpole.gif"
    out = zerodl("play", "--checkpoint", run / "checkpoints" / "last.npz", "--gif", gif, "--max-frames", 50)
    if not HAS_PYGAME:
        assert out.returncode == 2 and "gymnasium[classic-control]" in out.stderr
        return
    assert out.returncode == 0, out.stderr
    from PIL import Image

    with Image.open(gif) as im:
        assert im.n_frames > 1 and im.size[0] > 100


def test_resume_continues_to_more_steps(trained, tmp_path):
    run, _ = trained
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(run, copy)
    out = zerodl("train", "--resume", "--run-dir", copy, "--steps", 700, "--no-gif", "--no-progress")
    assert out.returncode == 0, out.stderr
    assert json.loads((copy / "summary.json").read_text())["steps"] == 700
    with open(copy / "metrics.csv") as f:
        evals = [int(r["step"]) for r in csv.DictReader(f) if r["val_return"]]
    assert evals == [200, 400, 600]


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
    proc = subprocess.Popen([sys.executable, "-m", "apps", "dqn", "train", "--env", "CartPole-v1", "--steps",
                             str(10**7), "--run-dir", str(run), "--set", "eval_every=0", "--set", "hidden=[16]",
                             "--no-progress"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 60
    while not (run / "config.json").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted at step" in stdout and "--resume" in stdout
    assert (run / "checkpoints" / "last.npz").is_file()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["interrupted"] and 0 < summary["steps"] < 10**7


@pytest.mark.parametrize("args, message", [
    (["train", "--env", "CartPol-v1"], "unknown environment id 'CartPol-v1'; did you mean 'CartPole-v1'"),
    (["train", "--env", "Pendulum-v1"], "DQN on Pendulum-v1 needs a Discrete action space, got Box("),
    (["train", "--preset", "cartpole"], "unknown preset 'cartpole'; did you mean 'CartPole-v1'"),
    (["train", "--set", "learnig_rate=0.1"], "unknown setting 'learnig_rate'; did you mean 'learning_rate'"),
    (["train", "--set", "gamma"], "--set expects KEY=VALUE"),
    (["train", "--steps", "0"], "total_steps must be an int >= 1, got 0"),
    (["train", "--resume"], "--resume needs --run-dir"),
    (["eval", "--checkpoint", "missing.npz"], "missing.npz: checkpoint file not found"),
    (["eval", "--checkpoint", "x.npz", "--episodes", "0"], "--episodes must be >= 1, got 0"),
])
def test_bad_input_gets_a_clear_message(args, message):
    out = zerodl(*args)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr


def test_checkpoint_for_another_env_is_rejected(trained):
    run, _ = trained
    out = zerodl("eval", "--checkpoint", run / "checkpoints" / "last.npz", "--env", "Acrobot-v1")
    assert out.returncode == 2
    assert "checkpoint does not fit Acrobot-v1: it was trained on observations (4,) with 2 actions" in out.stderr


def run_without(module, tmp_path, *args):
    """Run ``zerodl dqn ...`` with ``module`` hidden (installed or not): importing it fails like a missing extra."""
    shim = tmp_path / module
    shim.mkdir()
    (shim / "__init__.py").write_text(f"raise ImportError('No module named {module} (hidden by the test)')\n")
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}", MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "apps", "dqn", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=60)


def test_missing_optional_extras_name_the_pip_command(tmp_path, trained):
    out = run_without("ale_py", tmp_path, "train", "--env", "ALE/Pong-v5")
    assert out.returncode == 2 and 'pip install "zerodl[atari]"' in out.stderr
    out = run_without("Box2D", tmp_path, "train", "--env", "LunarLander-v3")
    assert out.returncode == 2 and 'pip install "zerodl[box2d]"' in out.stderr
    out = run_without("pygame", tmp_path, "play", "--checkpoint", trained[0] / "checkpoints" / "last.npz",
                      "--gif", tmp_path / "x.gif")
    assert out.returncode == 2 and "gymnasium[classic-control]" in out.stderr


def test_help_lists_commands_and_defaults():
    out = zerodl("train", "--help")
    text = " ".join(out.stdout.split())
    assert out.returncode == 0 and "--n-step" in text and "else CartPole-v1" in text
    out = zerodl("--help")
    assert out.returncode == 0 and "train" in out.stdout and "eval" in out.stdout and "play" in out.stdout
