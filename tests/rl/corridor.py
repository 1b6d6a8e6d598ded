"""A tiny deterministic env for fast learning tests (after SB3's IdentityEnv).

The agent starts in cell 0 of a corridor of ``length`` cells and observes its
position one-hot; action 1 moves right, 0 moves left (walls at the ends).
Reaching the last cell pays +1 and terminates; every other step costs 0.01.
The registered id has a 20-step time limit, so the best return is
``1 - 0.01 * (length - 2)`` and a policy that never reaches the goal gets -0.2.
"""
import gymnasium as gym
import numpy as np

ENV_ID = "zerodl-test/Corridor-v0"


class Corridor(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, length: int = 6, render_mode=None):
        self.length = length
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(0.0, 1.0, (length,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.pos = 0

    def _obs(self):
        obs = np.zeros(self.length, np.float32)
        obs[self.pos] = 1.0
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = 0
        return self._obs(), {}

    def step(self, action):
        self.pos = min(self.pos + 1, self.length - 1) if int(action) == 1 else max(self.pos - 1, 0)
        done = self.pos == self.length - 1
        return self._obs(), (1.0 if done else -0.01), done, False, {}

    def render(self):
        frame = np.zeros((8, 8 * self.length, 3), np.uint8)
        frame[:, 8 * self.pos:8 * self.pos + 8] = 255
        return frame


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=Corridor, max_episode_steps=20, reward_threshold=0.9)
