"""Kernel launchers (where and how a kernel runs) and the channels to talk to it."""
