"""A module whose import fails, with SystemExit, the nastiest way
(tests/test_subint_pool.c: a failed preload ends neither the process nor
the pool's thread)."""
raise SystemExit(3)
