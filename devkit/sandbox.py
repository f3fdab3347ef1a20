"""Sandbox mode (`make run`, compose's sandbox profile): a demo user whose five meetings move from
the Fathom stand-in to the Loom stand-in, so a new operator sees the whole pipeline work without
any real key; auto-move is on for them, so new meetings the stand-in ends later arrive and move by
themselves."""

from __future__ import annotations

from fathom2loom.api_keys import store_keys
from fathom2loom.cli.common import load
from fathom2loom.keybox import KeyBox
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.pocketbase.filters import pb_filter
from fathom2loom.queue_store import QueueStore
from fathom2loom.settings import Settings

__all__ = [
    "DEMO_EMAIL",
    "DEMO_PASSWORD",
    "SANDBOX_FATHOM_KEY",
    "SANDBOX_LOOM_KEY",
    "queue_status",
    "seed_demo",
    "seed_demo_from_settings",
]

DEMO_EMAIL = "demo@fathom2loom.local"
DEMO_PASSWORD = "demo-password-123"  # a sandbox's stand-in user, nothing real behind it
SANDBOX_FATHOM_KEY = "sandbox-fathom-key"
SANDBOX_LOOM_KEY = "sandbox-loom-key"
DEMO_MEETINGS = [str(n) for n in range(1001, 1006)]


def seed_demo(pb: PocketBase, settings: Settings, fathom_key: str, loom_key: str) -> str:
    """Create the demo user with encrypted stand-in keys and queue its meetings (once)."""
    user = pb.first("users", filter=pb_filter("email = {:e}", e=DEMO_EMAIL))
    if user is None:
        user = pb.create(
            "users",
            {
                "email": DEMO_EMAIL,
                "password": DEMO_PASSWORD,
                "passwordConfirm": DEMO_PASSWORD,
                "verified": True,
            },
        )
    box = KeyBox(settings.encryption_key, settings.previous_encryption_keys)
    store_keys(pb, box, user["id"], fathom=fathom_key, loom=loom_key)
    meta = pb.first("user_meta", filter=pb_filter("user_id = {:u}", u=user["id"]))
    if meta is None:  # Auto-move on: the stand-in's new meetings arrive by themselves.
        pb.create("user_meta", {"user_id": user["id"], "auto_move": True})
    queue = QueueStore(pb)
    queued = {row.meeting_id for row in queue.of_user(user["id"])}
    for meeting in DEMO_MEETINGS:
        if meeting not in queued:
            queue.add(user["id"], meeting)
    return str(user["id"])


def queue_status(pb: PocketBase, user_id: str) -> str:
    """A small table of a user's rows: meeting, status, position, progress."""
    lines = [f"{'meeting':>8} {'status':<11} {'pos':>4} {'progress':>9}  loom / what it waits for"]
    for row in sorted(QueueStore(pb).of_user(user_id), key=lambda r: r.meeting_id):
        total, done = row.bytes_total, row.bytes_done
        progress = f"{100 * done / total:.0f}%" if total else "-"
        detail = row.loom_url or row.error_message or row.wait_reason
        lines.append(
            f"{row.meeting_id:>8} {row.status:<11} {row.position:>4} {progress:>9}  {detail}"
        )
    return "\n".join(lines)


def seed_demo_from_settings() -> None:
    """`python -m devkit demo`: the demo user on the PocketBase the environment names."""
    settings = load()
    with PocketBase.from_settings(settings) as pb:
        seed_demo(pb, settings, SANDBOX_FATHOM_KEY, SANDBOX_LOOM_KEY)
    print(f"{DEMO_EMAIL} has stand-in keys and the sandbox meetings queued")
