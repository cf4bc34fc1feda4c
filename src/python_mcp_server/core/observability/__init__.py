"""Observability: health monitoring and reports, history, audit."""
