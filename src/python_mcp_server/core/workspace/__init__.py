"""Workspace: the path resolver and every file operation under it."""
