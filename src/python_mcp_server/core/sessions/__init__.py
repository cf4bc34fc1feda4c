"""Sessions: the named sessions, their kernels, the pool, snapshots."""
