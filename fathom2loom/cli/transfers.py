"""`fathom2loom users|meetings|enqueue|status|cancel|retry`: transfers, by hand or by script."""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import sys
from datetime import UTC, datetime
from typing import Any

from fathom2loom.cli.common import fathom_for, load, print_json, print_table, user
from fathom2loom.errors import ConfigError
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.providers.factory import Providers
from fathom2loom.queue_rows import QueueRow, Status
from fathom2loom.queue_store import QueueStore
from fathom2loom.user_queue import enqueue, meeting_states

__all__ = ["register"]

Examples = argparse.RawDescriptionHelpFormatter


def _since(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _users_add(args: argparse.Namespace) -> int:
    password = os.environ.get("FATHOM2LOOM_USER_PASSWORD") or ""
    if not password and sys.stdin.isatty():
        password = getpass.getpass("password (empty: generate one): ")
    generated = not password
    password = password or secrets.token_urlsafe(12)
    with PocketBase.from_settings(load()) as pb:
        made = pb.create(
            "users",
            {"email": args.email, "password": password, "passwordConfirm": password},
        )
        pb.create("user_meta", {"user_id": made["id"], "active": True})
    print(made["id"])
    if generated:
        print(f"password: {password}", file=sys.stderr)
    return 0


def _meetings(args: argparse.Namespace) -> int:
    settings = load()
    with PocketBase.from_settings(settings) as pb:
        providers = Providers.from_settings(settings, _redis(settings))
        try:
            owner = user(pb, args.user)
            fathom = fathom_for(settings, pb, owner["id"], providers)
            states = list(
                meeting_states(
                    QueueStore(pb), fathom, owner["id"], limit=args.limit, since=args.since
                )
            )
        finally:
            providers.close()
    if args.json:
        print_json(
            [
                {
                    "recording_id": s.meeting.recording_id,
                    "title": s.meeting.title,
                    "created_at": s.meeting.created_at,
                    "state": s.state,
                    "loom_url": s.loom_url,
                }
                for s in states
            ]
        )
        return 0
    print_table(
        ["recording", "created", "state", "title"],
        [
            (
                s.meeting.recording_id,
                f"{s.meeting.created_at:%Y-%m-%d %H:%M}",
                s.state,
                s.meeting.title[:60],
            )
            for s in states
        ],
    )
    return 0


def _enqueue(args: argparse.Namespace) -> int:
    if bool(args.meeting_ids) == bool(args.since):
        raise ConfigError("enqueue needs MEETING_ID... or --since DATE (one of the two)")
    settings = load()
    with PocketBase.from_settings(settings) as pb:
        owner = user(pb, args.user)
        if args.meeting_ids:
            report = enqueue(QueueStore(pb), owner["id"], args.meeting_ids)
        else:
            providers = Providers.from_settings(settings, _redis(settings))
            try:
                fathom = fathom_for(settings, pb, owner["id"], providers)
                found = list(fathom.meetings(created_after=args.since))
            finally:
                providers.close()
            report = enqueue(QueueStore(pb), owner["id"], found, skip_moved=True)
    print(f"queued {len(report.queued)}: {' '.join(report.queued) or '-'}")
    if report.already_queued:
        print(f"already queued: {' '.join(report.already_queued)}")
    if report.already_moved:
        print(f"already moved: {' '.join(report.already_moved)}")
    return 0


def _status_row(row: QueueRow) -> dict[str, Any]:
    total, done = row.bytes_total, row.bytes_done
    return {
        "row": row.id,
        "meeting": row.meeting_id,
        "status": str(row.status),
        "position": row.position,
        "progress": f"{100 * done // total}%" if total else "-",
        "loom_url": row.loom_url,
        "note": row.error_message or row.wait_reason,
    }


def _status(args: argparse.Namespace) -> int:
    with PocketBase.from_settings(load()) as pb:
        owner = user(pb, args.user)["id"] if args.user else None
        rows = [_status_row(r) for r in QueueStore(pb).of_user(owner)][: args.limit]
    if args.json:
        print_json(rows)
        return 0
    print_table(
        ["row", "meeting", "status", "pos", "progress", "loom / note"],
        [
            (
                r["row"],
                r["meeting"],
                r["status"],
                r["position"] or "",
                r["progress"],
                (r["loom_url"] or r["note"])[:80],
            )
            for r in rows
        ],
    )
    return 0


def _cancel(args: argparse.Namespace) -> int:
    with PocketBase.from_settings(load()) as pb:
        queue = QueueStore(pb)
        for row_id in args.rows:
            queue.cancel(row_id)
            print(f"cancelled {row_id}")
    return 0


def _retry(args: argparse.Namespace) -> int:
    if bool(args.rows) == bool(args.failed):
        raise ConfigError("retry needs ROW... or --failed (one of the two)")
    with PocketBase.from_settings(load()) as pb:
        queue = QueueStore(pb)
        if args.failed:
            owner = user(pb, args.user)["id"] if args.user else None
            ids = [r.id for r in queue.of_user(owner) if r.status == Status.FAILED]
        else:
            ids = args.rows
        for row_id in ids:
            queue.retry(row_id)
    print(f"retried {len(ids)}: {' '.join(ids) or '-'}")
    return 0


def _redis(settings: Any) -> Any:
    import redis

    return redis.Redis.from_url(settings.redis_url, socket_timeout=10)


def register(commands: Any) -> None:
    users = commands.add_parser("users", help="users of the service").add_subparsers(
        dest="users_command", required=True
    )
    add = users.add_parser(
        "add",
        help="create a user (password from FATHOM2LOOM_USER_PASSWORD, a prompt, or generated)",
        formatter_class=Examples,
        epilog="example:\n  fathom2loom users add ann@example.com\n"
        "  FATHOM_API_KEY=... LOOM_API_KEY=... fathom2loom keys set ann@example.com",
    )
    add.add_argument("email")
    add.set_defaults(handler=_users_add)

    meetings = commands.add_parser(
        "meetings",
        help="a user's Fathom recordings, newest first: moved / queued / failed / not moved",
        formatter_class=Examples,
        epilog="examples:\n  fathom2loom meetings ann@example.com\n"
        "  fathom2loom meetings ann@example.com --since 2026-11-01 --json",
    )
    meetings.add_argument("user", help="id or e-mail address")
    meetings.add_argument("--since", type=_since, help="only recordings created after this date")
    meetings.add_argument("--limit", type=int, default=30, help="at most this many (30)")
    meetings.add_argument("--json", action="store_true", help="JSON for scripts")
    meetings.set_defaults(handler=_meetings)

    queue = commands.add_parser(
        "enqueue",
        help="queue meetings to move: by recording id, or every recording since a date not yet"
        " moved",
        formatter_class=Examples,
        epilog="examples:\n  fathom2loom enqueue ann@example.com 123456 123457\n"
        "  fathom2loom enqueue ann@example.com --since 2026-11-01",
    )
    queue.add_argument("user", help="id or e-mail address")
    queue.add_argument("meeting_ids", nargs="*", metavar="MEETING_ID")
    queue.add_argument("--since", type=_since, help="every recording created after this date")
    queue.set_defaults(handler=_enqueue)

    status = commands.add_parser(
        "status",
        help="rows with status, position, progress, Loom URL, and the error or the wait",
        formatter_class=Examples,
        epilog="examples:\n  fathom2loom status\n  fathom2loom status ann@example.com --json",
    )
    status.add_argument("user", nargs="?", help="id or e-mail address (default: everybody)")
    status.add_argument("--limit", type=int, default=50, help="newest this many rows (50)")
    status.add_argument("--json", action="store_true", help="JSON for scripts")
    status.set_defaults(handler=_status)

    cancel = commands.add_parser(
        "cancel",
        help="cancel pending or processing rows (a running transfer stops at its next chunk)",
        epilog="example: fathom2loom cancel abc123def456ghi",
    )
    cancel.add_argument("rows", nargs="+", metavar="ROW")
    cancel.set_defaults(handler=_cancel)

    retry = commands.add_parser(
        "retry",
        help="set failed rows back to pending",
        formatter_class=Examples,
        epilog="examples:\n  fathom2loom retry abc123def456ghi\n"
        "  fathom2loom retry --failed ann@example.com",
    )
    retry.add_argument("rows", nargs="*", metavar="ROW")
    retry.add_argument("--failed", action="store_true", help="every failed row (of USER)")
    retry.add_argument("--user", help="with --failed: only this user's rows")
    retry.set_defaults(handler=_retry)
