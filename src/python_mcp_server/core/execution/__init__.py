"""Execution: the pipeline around running code, output collection, introspection, scripts."""
