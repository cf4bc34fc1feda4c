"""Packages: environments, the installer, specifier validation, auto-install."""
