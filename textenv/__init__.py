"""textenv: a language model's context window as a Gymnasium environment."""
