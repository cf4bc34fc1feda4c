"""The outside world: kernel launchers, storage, subprocesses."""
