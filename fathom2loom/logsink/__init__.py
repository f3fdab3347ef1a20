"""The log sink: every process logs into Redis; a flusher moves the records into `logs` in batches.

handler.py  the `logging.Handler` every process installs (never waits on PocketBase)
records.py  a `LogRecord` as a `logs` row: level, msg, ts, user_id, component, metadata
buffer.py   the Redis lists: bounded, oldest low-severity records dropped first
flush.py    at-least-once, duplicate-free delivery through PocketBase's batch API
"""
