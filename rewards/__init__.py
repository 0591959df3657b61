"""Rewards for textenv: the protocol, the registry and the built-in reward models."""
