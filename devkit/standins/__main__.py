"""Run both stand-ins until SIGTERM/SIGINT, for the sandbox and for manual poking.

Prints one JSON line with both base URLs, so a launcher that passed port 0 learns the ports.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from types import FrameType

from devkit.standins.fathom import FathomStandin
from devkit.standins.loom import LoomStandin

FIRST_RECORDING_ID = 1001


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devkit.standins", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument(
        "--public-host", help="the name clients reach this host by (links the stand-ins hand out)"
    )
    parser.add_argument("--fathom-port", type=int, default=0)
    parser.add_argument("--loom-port", type=int, default=0)
    parser.add_argument("--seed-key", help="a Fathom API key to create and give meetings to")
    parser.add_argument(
        "--seed-owner-email", help="the e-mail of --seed-key's owner (who records its meetings)"
    )
    parser.add_argument("--meetings", type=int, default=0, help="meetings for --seed-key")
    parser.add_argument("--size", type=int, default=1_000_000, help="bytes per recording")
    parser.add_argument("--render-seconds", type=float, default=0.0)
    parser.add_argument(
        "--new-meeting-every",
        type=float,
        default=0.0,
        help="end a new meeting for --seed-key this often (seconds), delivered to its webhooks",
    )
    parser.add_argument("--new-meetings", type=int, default=3, help="how many such meetings")
    parser.add_argument(
        "--bandwidth", type=int, default=0, help="bytes/s per file download (0: unlimited)"
    )
    parser.add_argument(
        "--local-share-links",
        action="store_true",
        help="Loom share links to a page of the stand-in's own, not to loom.com",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.meetings or args.new_meeting_every) and not args.seed_key:
        parser.error("--meetings and --new-meeting-every need --seed-key")
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    serve = {"host": args.host, "public_host": args.public_host}
    fathom = FathomStandin(
        port=args.fathom_port,
        render_seconds=args.render_seconds,
        bandwidth=args.bandwidth or None,
        **serve,
    )
    loom = LoomStandin(port=args.loom_port, local_share_links=args.local_share_links, **serve)
    try:
        fathom.start()
        loom.start()
        if args.seed_key:
            fathom.add_key(args.seed_key, owner_email=args.seed_owner_email)
        for index in range(args.meetings):
            fathom.add_meeting(args.seed_key, FIRST_RECORDING_ID + index, size=args.size)
        print(json.dumps({"fathom_url": fathom.url, "loom_url": loom.url}), flush=True)
        next_id = FIRST_RECORDING_ID + args.meetings
        for _ in range(args.new_meetings if args.new_meeting_every > 0 else 0):
            if stopping.wait(args.new_meeting_every):
                break
            fathom.finish_meeting(args.seed_key, next_id, size=args.size)
            next_id += 1
        stopping.wait()
    finally:
        fathom.stop()
        loom.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
