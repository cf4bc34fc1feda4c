"""Safety: the advisory code check and its rule tables."""
