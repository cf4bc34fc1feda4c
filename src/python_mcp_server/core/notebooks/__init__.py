"""Notebooks: what a session ran, kept as Jupyter cells, exported and imported as .ipynb."""
