"""Env factory, space validation, close-name suggestions, optional extras; schedules; presets."""
import json

import gymnasium as gym
import numpy as np
import pytest

from rl.envs import (MissingDependencyError, check_env_id, is_atari, make_env, make_vector_env, sole_env,
                     validate_spaces)
from rl.presets import PRESETS, resolve_config
from rl.schedules import LinearSchedule


def test_vector_env_uses_next_step_autoreset():
    envs = make_vector_env("CartPole-v1", 2)
    assert envs.num_envs == 2 and envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    assert envs.single_observation_space.shape == (4,)
    envs.close()


def test_sole_env_only_of_a_plain_one_env_sync_vector_env():
    one, two = make_vector_env("CartPole-v1", 1), make_vector_env("CartPole-v1", 2)
    assert sole_env(one) is one.envs[0] and sole_env(two) is None
    same_step = gym.vector.SyncVectorEnv([lambda: make_env("CartPole-v1")],
                                         autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    assert sole_env(same_step) is None
    assert sole_env(gym.wrappers.vector.RecordEpisodeStatistics(one)) is None  # a vector wrapper may act per step
    for envs in (one, two, same_step):
        envs.close()


def test_unknown_env_suggests_close_names():
    with pytest.raises(ValueError, match="unknown environment id 'CartPol-v1'; did you mean 'CartPole-v1'"):
        check_env_id("CartPol-v1")
    with pytest.raises(ValueError, match="did you mean 'CartPole-v1'"):
        make_env("cartpole-v1")
    with pytest.raises(ValueError, match="pprint_registry"):
        check_env_id("Zzzzqqq-v9")


def test_continuous_action_space_is_rejected_up_front():
    with pytest.raises(ValueError, match=r"DQN on Pendulum-v1 needs a Discrete action space, got Box\("):
        make_env("Pendulum-v1")


def test_validate_spaces():
    box = gym.spaces.Box(-1, 1, (3,), np.float32)
    assert validate_spaces(box, gym.spaces.Discrete(4)) == ((3,), np.dtype(np.float32), 4)
    with pytest.raises(ValueError, match="needs a Box observation space"):
        validate_spaces(gym.spaces.Discrete(5), gym.spaces.Discrete(2))
    with pytest.raises(ValueError, match="at least 2 actions"):
        validate_spaces(box, gym.spaces.Discrete(1))


def hide_module(monkeypatch, hidden, *loaded):
    """Make ``import hidden`` fail (as when an optional extra is not installed) and forget ``loaded`` modules."""
    import builtins
    import sys

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == hidden or name.startswith(hidden + "."):
            raise ImportError(f"No module named {hidden!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    for name in list(sys.modules):
        if loaded and name.startswith(loaded):  # imported earlier: drop so the next import runs again
            monkeypatch.delitem(sys.modules, name)


def test_missing_atari_extra_names_the_pip_command(monkeypatch):
    hide_module(monkeypatch, "ale_py")
    with pytest.raises(MissingDependencyError, match=r"pip install \"zerodl\[atari\]\".*ale-py"):
        make_env("ALE/Pong-v5")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_missing_box2d_names_the_pip_command(monkeypatch):
    hide_module(monkeypatch, "Box2D", "Box2D", "gymnasium.envs.box2d")
    with pytest.raises(MissingDependencyError, match=r"install it with: pip install \"zerodl\[box2d\]\""):
        make_env("LunarLander-v3")


def test_is_atari():
    assert is_atari("ALE/Pong-v5") and is_atari("PongNoFrameskip-v4") and not is_atari("CartPole-v1")


def test_linear_schedule():
    s = LinearSchedule(1.0, 0.1, 10)
    assert [s(t) for t in (0, 5, 10, 50)] == [1.0, pytest.approx(0.55), 0.1, 0.1]
    assert LinearSchedule(0.4, 1.0, 0)(0) == 1.0
    with pytest.raises(ValueError, match="duration must be an int >= 0"):
        LinearSchedule(1.0, 0.0, -1)


def test_presets_resolve_with_overrides_and_files(tmp_path):
    config, name = resolve_config("CartPole-v1")
    assert name == "CartPole-v1" and config.train_freq == PRESETS["CartPole-v1"]["train_freq"]
    config, name = resolve_config("ALE/Pong-v5")
    assert name == "atari" and config.network == "nature_cnn" and config.buffer_size == 1_000_000
    config, name = resolve_config("FrozenLake-v1")
    assert name is None and config.env_id == "FrozenLake-v1"
    path = tmp_path / "cfg.toml"
    path.write_text('learning_rate = 0.01\nhidden = [32, 32]\ndouble = false\n')
    config, _ = resolve_config("CartPole-v1", config_file=path, overrides={"learning_rate": 0.02, "seed": None})
    assert config.learning_rate == 0.02 and config.hidden == [32, 32] and config.double is False
    jpath = tmp_path / "cfg.json"
    jpath.write_text(json.dumps({"n_step": 3, "env_id": "Acrobot-v1"}))
    config, name = resolve_config(None, config_file=jpath)  # the file names the env: its preset applies
    assert config.n_step == 3 and config.env_id == "Acrobot-v1" and name == "Acrobot-v1"
    assert resolve_config("CartPole-v1", config_file=jpath)[0].env_id == "CartPole-v1"  # the flag wins
    assert resolve_config(None)[0].env_id == "CartPole-v1"


def test_preset_and_config_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown preset 'cartpole'; did you mean 'CartPole-v1'"):
        resolve_config("CartPole-v1", preset="cartpole")
    with pytest.raises(ValueError, match="unknown setting 'learnig_rate'; did you mean 'learning_rate'"):
        resolve_config("CartPole-v1", overrides={"learnig_rate": 1e-3})
    bad = tmp_path / "bad.toml"
    bad.write_text("gamma = [")
    with pytest.raises(ValueError, match="could not be parsed"):
        resolve_config("CartPole-v1", config_file=bad)
    with pytest.raises(ValueError, match="not found"):
        resolve_config("CartPole-v1", config_file=tmp_path / "missing.json")
    with pytest.raises(ValueError, match="DQNConfig: gamma must be a number in"):
        resolve_config("CartPole-v1", overrides={"gamma": 1.5})
    with pytest.raises(ValueError, match="DQNConfig: batch_size must be an int >= 1"):
        resolve_config("CartPole-v1", overrides={"batch_size": 0})
