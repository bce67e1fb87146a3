"""Imported by the fork server ahead of time (tests/test_forkserver.c)."""
LOADED = True
