"""The dev kit: what develops and demonstrates fathom2loom, never what runs it.

Fathom and Loom stand-ins (`devkit.standins`), local PocketBase, Redis and Celery processes for
tests and benches, `make run`'s whole local stack and the sandbox's demo user. It is not in the
wheel, and nothing in `fathom2loom` or `tasks` imports it; the image carries it only for the
compose sandbox profile.
"""
