"""Agents for textenv: the LM actor-critic policy for stable-baselines3, PPO and A2C, and comparisons."""
