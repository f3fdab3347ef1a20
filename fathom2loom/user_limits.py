"""The limits on users, as PocketBase's hooks apply them (pb_hooks/limits.js), for the service's
own paths that act for a user: the auto-move catch-up poll queues a user's backlog no faster
than the user could queue it by hand (USER_MAX_ACTIVE_TRANSFERS active rows at a time).

The limits are PocketBase's settings (its environment); the service reads them from the hooks'
report (`GET /api/fathom2loom/hooks`), never keeps a copy of its own that could disagree.
"""

from __future__ import annotations

from fathom2loom.errors import PocketBaseNotFound
from fathom2loom.pocketbase.client import PocketBase

__all__ = ["max_active_transfers"]


def max_active_transfers(pb: PocketBase) -> int | None:
    """USER_MAX_ACTIVE_TRANSFERS as the hooks apply it; None when the hooks set no limit."""
    try:
        report = pb.request("GET", "/api/fathom2loom/hooks")
    except PocketBaseNotFound:
        return None  # Hooks older than the limits, or none loaded.
    limits = report.get("limits") if isinstance(report, dict) else None
    cap = limits.get("USER_MAX_ACTIVE_TRANSFERS") if isinstance(limits, dict) else None
    return cap if isinstance(cap, int) and cap > 0 else None
