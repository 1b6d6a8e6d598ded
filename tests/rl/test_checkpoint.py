"""Checkpoints: round trip, resume equivalence with an uninterrupted run, mismatched shapes."""
import numpy as np
import pytest

from core.serialization import CheckpointError
from rl.checkpoint import load_dqn_checkpoint, load_policy, resume_run, save_dqn_checkpoint
from rl.dqn import DQN, DQNConfig
from tests.rl.corridor import ENV_ID


def cartpole_config(**kw):
    base = dict(env_id="CartPole-v1", total_steps=2500, hidden=[32, 32], batch_size=32, buffer_size=5000,
                learning_starts=300, train_freq=16, gradient_steps=4, target_update_interval=100,
                exploration_fraction=0.5, eval_every=700, eval_episodes=2, seed=3)
    base.update(kw)
    return DQNConfig(**base)


class StopAtEpisodeEnd:
    """Request a stop at the first episode end after ``step``: the envs' state is then fully known."""

    def __init__(self, step):
        self.step = step

    def on_episode(self, run, step, ret, length):
        if step >= self.step:
            run.stop_requested = True


def weights(run):
    return {k: v.copy() for k, v in run.agent.q.state_dict().items()}


@pytest.mark.parametrize("extra", [{}, dict(prioritized=True, n_step=3, double=True, dueling=True, tau=0.1,
                                            learning_rate_final=1e-4)])
def test_resume_equals_an_uninterrupted_run(tmp_path, extra):
    straight = DQN(cartpole_config(**extra))
    straight.learn()
    straight.close()

    first = DQN(cartpole_config(**extra))
    first.learn(StopAtEpisodeEnd(1200))
    assert 1200 <= first.num_steps < 2500
    path = save_dqn_checkpoint(tmp_path / "last.npz", first, include_replay=True)
    first.close()
    resumed = resume_run(path)
    assert resumed.num_steps == first.num_steps
    resumed.learn()
    resumed.close()

    assert resumed.num_steps == straight.num_steps and resumed.num_episodes == straight.num_episodes
    assert resumed.agent.num_updates == straight.agent.num_updates
    assert resumed.num_evals == straight.num_evals and resumed.best_eval == straight.best_eval
    for name, value in weights(straight).items():
        np.testing.assert_array_equal(weights(resumed)[name], value, err_msg=name)


def test_round_trip_restores_everything(tmp_path):
    run = DQN(cartpole_config(total_steps=800))
    run.learn()
    path = save_dqn_checkpoint(tmp_path / "ckpt.safetensors", run, include_replay=False, extra={"note": "x"})
    ckpt = load_dqn_checkpoint(path)
    assert ckpt["config"] == run.config and ckpt["extra"] == {"note": "x"}
    assert "replay" not in ckpt["run"]
    other = resume_run(path)
    for a, b in ((run.agent.q, other.agent.q), (run.agent.q_target, other.agent.q_target)):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            np.testing.assert_array_equal(x, y, err_msg=name)
    assert other.agent.optimizer.state_dict()["param_groups"] == run.agent.optimizer.state_dict()["param_groups"]
    assert other.agent.rng.bit_generator.state == run.agent.rng.bit_generator.state
    assert (other.num_steps, other.num_episodes, other.best_eval) == (run.num_steps, run.num_episodes, run.best_eval)
    assert len(other.replay) == 0  # replay was not saved: training continues with an empty buffer
    other.config.total_steps = 1000
    other.learn()
    assert other.num_steps == 1000
    run.close()
    other.close()


def test_policy_loading_checks_shapes(tmp_path):
    run = DQN(cartpole_config(total_steps=50))
    run.learn()
    path = save_dqn_checkpoint(tmp_path / "c.npz", run)
    config, agent, env = load_policy(path)
    assert config.env_id == "CartPole-v1" and agent.q.predict(np.zeros((1, 4), np.float32)).shape == (1, 2)
    env.close()
    with pytest.raises(ValueError, match=r"checkpoint does not fit Acrobot-v1: it was trained on observations "
                                         r"\(4,\) with 2 actions, but Acrobot-v1 has observations \(6,\) and 3"):
        load_policy(path, "Acrobot-v1")
    run.close()


def test_bad_checkpoint_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_dqn_checkpoint(tmp_path / "missing.npz")
    from core.serialization import save_checkpoint

    save_checkpoint(tmp_path / "other.npz", extra={"epoch": 1})
    with pytest.raises(CheckpointError, match="not a zerodl DQN checkpoint"):
        load_dqn_checkpoint(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError):
        load_dqn_checkpoint(tmp_path / "junk.npz")


def test_corridor_run_checkpoint_without_replay_resumes(tmp_path):
    config = DQNConfig(env_id=ENV_ID, total_steps=400, hidden=[16], learning_starts=50, train_freq=1, gradient_steps=1,
                       buffer_size=1000, eval_every=0, n_step=2)
    run = DQN(config)
    run.learn()
    path = save_dqn_checkpoint(tmp_path / "c.npz", run, include_replay=True)
    again = resume_run(path, total_steps=600)
    again.learn()
    assert again.num_steps == 600 and len(again.replay) == 600
