"""Tests against a real Jupyter Kernel Gateway (kernels started through its REST API)."""
