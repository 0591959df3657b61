"""Shared infrastructure of textenv, agents and rewards: the bottom layer; it imports none of them."""
