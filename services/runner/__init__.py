"""Running the platform's processes on one machine (tests, the one-machine stack, benchmarks)."""
