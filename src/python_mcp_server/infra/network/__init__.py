"""Kernel network access: the egress proxy a sandbox reaches, and what it lets through.

``access.py`` holds the value (mode, allowed domains and ports, pinned addresses);
``addresses.py`` says which IP addresses are public; ``proxy.py`` is the HTTP CONNECT
(and plain HTTP) proxy the server serves on one Unix socket per kernel; ``forwarder.py``
is the tiny TCP-to-Unix forwarder that runs inside the sandbox's own network namespace.
"""
