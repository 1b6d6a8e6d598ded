"""zerodl rl: DQN on Gymnasium, in NumPy.

``replay`` (ring buffer, n-step), ``prioritized`` (sum-tree PER), ``frame_replay``
(frame-stack memory saving), ``networks`` (MLP, Nature CNN, dueling head),
``schedules``, ``envs`` (factory, validation, Atari/Box2D), ``config`` and
``presets`` (settings), ``agent`` (networks, acting, the TD update) with
``fused_mlp`` (its allocation-free MLP step), ``dqn`` (the training loop), ``evaluation``,
``checkpoint`` and ``video`` (GIFs). Import from the submodules, e.g.
``from rl.dqn import DQN``; importing ``rl`` itself loads nothing heavy.
"""
