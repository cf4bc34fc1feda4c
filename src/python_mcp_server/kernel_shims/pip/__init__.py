"""``pip`` inside a kernel: ``%pip`` / ``!pip`` install into the session's package folder.

This folder's parent (``kernel_shims``) is on every kernel's ``PYTHONPATH``, so
``python -m pip`` (what IPython's ``%pip`` runs) and the session's ``bin/pip`` reach this
package rather than a real pip. It runs uv, the server's installer, inside the kernel's
own sandbox and limits: ``install`` and ``uninstall`` work on the session's folder
(``--target``), never on the shared environment, which kernels cannot write.
"""
