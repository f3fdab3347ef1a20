"""The Redis-buffered logging handler and the task that flushes it into `logs` (issue 6)."""
