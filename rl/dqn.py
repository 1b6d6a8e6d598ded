"""Deep Q-Networks (Mnih et al. 2015) with Double DQN, dueling heads, prioritized replay and n-step returns.

The training loop (settings: :class:`rl.config.DQNConfig`; the agent and its
TD update: :class:`rl.agent.DQNAgent`)::

    env.reset -> act (epsilon-greedy) -> env.step -> replay.add
      -> every train_freq steps, gradient_steps times:
           sample -> y = r + gamma^k (1 - terminated) Q_target(s', argmax_a ...) -> Huber(Q(s, a), y)
           -> backward -> clip grad norm -> optimizer step (-> new priorities)
         (uniform replay: the round's batches are drawn together, see DQNAgent.train_uniform)
      -> every target_update_interval steps: target <- online (copy, or Polyak with tau)
      -> every eval_every steps: greedy evaluation on separate env instances

Environment steps are counted as transitions collected: the reset steps of
NEXT_STEP autoreset vector envs are neither stored nor counted.
"""
from __future__ import annotations

import math

import numpy as np

from .agent import DQNAgent
from .config import DQNConfig
from .envs import is_atari, make_env, make_vector_env, sole_env, validate_spaces
from .evaluation import EvalResult, evaluate
from .frame_replay import FrameReplayBuffer
from .prioritized import PrioritizedReplay
from .replay import ReplayBuffer
from .schedules import LinearSchedule

__all__ = ["DQN", "DQNAgent", "DQNConfig", "check_spaces", "make_replay"]


# ----------------------------------------------------------------------------- training loop
def _crossed(before: int, after: int, every: int) -> int:
    """How many multiples of ``every`` lie in ``(before, after]``."""
    return after // every - before // every


def make_replay(config: DQNConfig, obs_shape, obs_dtype, rng):
    """The replay buffer the config asks for (frame-stack memory saving, PER, n-step)."""
    frames = config.frame_replay
    if frames is None:
        frames = len(obs_shape) == 3 and np.dtype(obs_dtype) == np.uint8
    cls = FrameReplayBuffer if frames else ReplayBuffer
    buffer = cls(config.buffer_size, obs_shape, obs_dtype, num_envs=config.num_envs, n_step=config.n_step,
                 gamma=config.gamma, rng=rng)
    if config.prioritized:
        return PrioritizedReplay(buffer, alpha=config.per_alpha, eps=config.per_eps, rng=rng)
    return buffer


class DQN:
    """A DQN training run: environments, agent, replay, schedules and counters.

    Args:
        config: a :class:`DQNConfig` (validated).
        envs: optional pre-built vector env (NEXT_STEP autoreset); default
            ``make_vector_env(config.env_id, config.num_envs)``.

    ``learn()`` runs until ``config.total_steps`` transitions (or until
    ``stop_requested`` is set, e.g. by a Ctrl-C handler) and can be called again
    after :meth:`load_state_dict` to resume. Library code: no printing; pass a
    ``callback`` with any of ``on_episode(run, step, ret, length)``,
    ``on_eval(run, step, result, improved)`` and ``on_progress(run)`` (every step).
    """

    def __init__(self, config: DQNConfig, envs=None):
        self.config = config.validate()
        c = config
        self.envs = envs if envs is not None else make_vector_env(
            c.env_id, c.num_envs, frame_stack=c.frame_stack, clip_rewards=c.clip_rewards)
        if self.envs.num_envs != c.num_envs:
            raise ValueError(f"DQN: envs has {self.envs.num_envs} sub-envs but config.num_envs is {c.num_envs}")
        self.obs_shape, self.obs_dtype, self.num_actions = validate_spaces(
            self.envs.single_observation_space, self.envs.single_action_space, where=f"DQN on {c.env_id}")
        self._direct_env = sole_env(self.envs)  # stepped directly: `learn` resets it at every episode end
        seeds = np.random.SeedSequence(c.seed).spawn(3)  # agent, replay, evaluation episodes
        self.agent = DQNAgent(c, self.obs_shape, self.num_actions, rng=np.random.default_rng(seeds[0]))
        self.replay = make_replay(c, self.obs_shape, self.obs_dtype, np.random.default_rng(seeds[1]))
        self.epsilon = LinearSchedule(c.exploration_initial_eps, c.exploration_final_eps,
                                      int(c.exploration_fraction * c.total_steps))
        self.beta = LinearSchedule(c.per_beta, 1.0, c.total_steps)
        self.lr = LinearSchedule(c.learning_rate, c.learning_rate if c.learning_rate_final is None
                                 else c.learning_rate_final, c.total_steps)
        self.eval_seed = int(seeds[2].generate_state(1)[0] % (2**31))
        self.num_steps = 0
        self.num_episodes = 0
        self.num_evals = 0
        self.best_eval = -math.inf
        self.threshold_step = None     # first step whose evaluation reached the env's reward threshold
        self.last_eval: EvalResult | None = None
        self.stop_requested = False
        self._eval_env = None
        self._obs = None
        self._needs_reset = None
        self._ep_return = np.zeros(c.num_envs, dtype=np.float64)
        self._ep_length = np.zeros(c.num_envs, dtype=np.int64)
        self._env_rng_states = None    # restored into the envs before their next reset (resume)
        self.recent_returns: list[float] = []

    @property
    def reward_threshold(self):
        spec = getattr(self.envs, "spec", None) or getattr(self.envs.envs[0], "spec", None)
        return None if spec is None else spec.reward_threshold

    # ------------------------------------------------------------------ loop
    def _reset(self):
        if self._env_rng_states is not None:  # resume: continue each env's own random stream
            for env, state in zip(self.envs.envs, self._env_rng_states):
                env.unwrapped.np_random.bit_generator.state = state
            self._env_rng_states = None
            obs, _ = self.envs.reset()
        elif self.num_steps == 0 and self.num_episodes == 0:
            obs, _ = self.envs.reset(seed=self.config.seed)
        else:
            obs, _ = self.envs.reset()
        self._ep_return[:] = 0
        self._ep_length[:] = 0
        return obs

    def learn(self, callback=None) -> "DQN":
        """Collect transitions and train until ``config.total_steps`` or ``stop_requested``."""
        c = self.config
        on_episode = getattr(callback, "on_episode", None)
        on_progress = getattr(callback, "on_progress", None)
        needs_reset = np.ones(c.num_envs, dtype=bool) if self._obs is None else self._needs_reset
        obs = self._obs
        n_envs = c.num_envs
        # np.count_nonzero rather than .all()/.any() on these (num_envs,) bool arrays: a C fast
        # path, a few microseconds per step less than a ufunc reduction (CartPole steps take ~10)
        while self.num_steps < c.total_steps and not self.stop_requested:
            if np.count_nonzero(needs_reset) == n_envs:  # every env just ended (always so with one
                obs = self._reset()  # env): reset instead of an autoreset step, a wasted transition
                needs_reset[:] = False
            actions = self.agent.act(obs, self.epsilon(self.num_steps))
            next_obs, rewards, terminated, truncated = self._step_envs(actions)
            valid = ~needs_reset
            self.replay.add(obs, actions, rewards, next_obs, terminated, truncated, valid)
            self._ep_return += rewards
            self._ep_length += 1
            ended = (terminated | truncated) & valid
            before = self.num_steps
            num_valid = int(np.count_nonzero(valid))
            self.num_steps += num_valid
            if np.count_nonzero(ended):
                for i in np.flatnonzero(ended):
                    self.num_episodes += 1
                    ret, length = float(self._ep_return[i]), int(self._ep_length[i])
                    self.recent_returns.append(ret)
                    del self.recent_returns[:-100]
                    if on_episode is not None:
                        on_episode(self, self.num_steps, ret, length)
                self._ep_return[ended] = 0.0
                self._ep_length[ended] = 0
            if num_valid != n_envs:
                self._ep_return[~valid] = 0.0
                self._ep_length[~valid] = 0
            needs_reset = ended
            obs = next_obs
            self._train(before)
            if c.eval_every and _crossed(before, self.num_steps, c.eval_every):
                self.run_evaluation(callback)
            if on_progress is not None:
                on_progress(self)
        self._obs, self._needs_reset = obs, needs_reset
        self.stop_requested = False  # honoured once; a later learn() continues
        return self

    def _step_envs(self, actions):
        """``envs.step(actions)[:4]``; a one-env SyncVectorEnv's env is stepped directly (same arrays)."""
        env = self._direct_env
        if env is None:
            return self.envs.step(actions)[:4]
        obs, reward, terminated, truncated, _ = env.step(actions[0])
        return (np.array(obs, dtype=self.obs_dtype)[None], np.array([reward], dtype=np.float64),
                np.array([terminated], dtype=bool), np.array([truncated], dtype=bool))

    def _train(self, before: int) -> None:
        c = self.config
        if self.num_steps > c.learning_starts:
            rounds = _crossed(max(before, c.learning_starts), self.num_steps, c.train_freq)
            if rounds:
                self.agent.set_learning_rate(self.lr(self.num_steps))
            if isinstance(self.replay, PrioritizedReplay):  # priorities change after every step
                for _ in range(rounds * c.gradient_steps):
                    batch = self.replay.sample(c.batch_size, beta=self.beta(self.num_steps))
                    _, td = self.agent.train_step(batch)
                    self.replay.update_priorities(batch.indices, td)
            elif rounds:
                self.agent.train_uniform(self.replay, c.batch_size, rounds * c.gradient_steps)
        if _crossed(before, self.num_steps, c.target_update_interval):
            self.agent.update_target(c.tau)

    # ------------------------------------------------------------ evaluation
    def run_evaluation(self, callback=None) -> EvalResult:
        """Evaluate the online network (``eval_epsilon``-greedy) on a separate env; track the best."""
        c = self.config
        if self._eval_env is None:
            self._eval_env = make_env(c.env_id, frame_stack=c.frame_stack, clip_rewards=False,
                                      atari=is_atari(c.env_id))
        result = evaluate(self.agent.greedy_actions, self._eval_env, episodes=c.eval_episodes, epsilon=c.eval_epsilon,
                          seed=self.eval_seed + 1000 * self.num_evals)
        self.num_evals += 1
        self.last_eval = result
        improved = result.mean > self.best_eval
        self.best_eval = max(self.best_eval, result.mean)
        threshold = self.reward_threshold
        if self.threshold_step is None and threshold is not None and result.mean >= threshold:
            self.threshold_step = self.num_steps
        on_eval = getattr(callback, "on_eval", None)
        if on_eval is not None:
            on_eval(self, self.num_steps, result, improved)
        return result

    def close(self) -> None:
        self.envs.close()
        if self._eval_env is not None:
            self._eval_env.close()

    # ----------------------------------------------------------------- state
    def state_dict(self, include_replay: bool = False) -> dict:
        """Everything needed to resume: agent, counters, RNG states (envs too), optionally replay."""
        env_rngs = [env.unwrapped.np_random.bit_generator.state for env in self.envs.envs]
        state = {
            "agent": self.agent.state_dict(),
            "counters": {"num_steps": self.num_steps, "num_episodes": self.num_episodes,
                         "num_evals": self.num_evals, "best_eval": float(self.best_eval),
                         "threshold_step": self.threshold_step},
            "env_rngs": env_rngs,
            "recent_returns": [float(r) for r in self.recent_returns],
            "spaces": {"obs_shape": list(self.obs_shape), "obs_dtype": str(self.obs_dtype),
                       "num_actions": self.num_actions},
        }
        if include_replay:
            state["replay"] = self.replay.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`; the envs restart with fresh episodes on the next ``learn``."""
        check_spaces(state["spaces"], self.obs_shape, self.num_actions, self.config.env_id)
        self.agent.load_state_dict(state["agent"])
        counters = state["counters"]
        self.num_steps = int(counters["num_steps"])
        self.num_episodes = int(counters["num_episodes"])
        self.num_evals = int(counters["num_evals"])
        self.best_eval = float(counters["best_eval"])
        self.threshold_step = counters["threshold_step"]
        self.recent_returns = list(state.get("recent_returns", []))
        if len(state["env_rngs"]) == self.config.num_envs:
            self._env_rng_states = list(state["env_rngs"])
        if "replay" in state:
            self.replay.load_state_dict(state["replay"])
            # The env episodes in flight are lost: end them in the replay, like a time limit.
            target = getattr(self.replay, "buffer", self.replay)
            target.end_episodes()
        self._obs = None


def check_spaces(saved: dict, obs_shape, num_actions: int, env_id: str) -> None:
    """Raise ``ValueError`` when a checkpoint's observation/action shapes differ from the env's."""
    saved_shape, saved_actions = tuple(saved["obs_shape"]), int(saved["num_actions"])
    if saved_shape != tuple(obs_shape) or saved_actions != int(num_actions):
        raise ValueError(
            f"checkpoint does not fit {env_id}: it was trained on observations {saved_shape} with "
            f"{saved_actions} actions, but {env_id} has observations {tuple(obs_shape)} and {num_actions} actions")

