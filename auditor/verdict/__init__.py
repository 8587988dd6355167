"""Pass/fail: the quick gates (`--fail-under-ra/-rr`) and `--policy` files."""
