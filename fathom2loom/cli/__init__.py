"""The `fathom2loom` command line: run the service, handle users, keys and transfers.

Every command has `--help` with examples. Inside a `make run` checkout the commands find that
stack's settings by themselves (`.run/cli.env`); elsewhere they read the environment and `.env`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from fathom2loom.cli import keys, service, transfers
from fathom2loom.errors import ConfigError, Fathom2LoomError
from fathom2loom.pocketbase.binary import MissingBinary

__all__ = ["main", "run_handler"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fathom2loom", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (service, keys, transfers):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "passes_through", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.passed_through = rest
    return run_handler("fathom2loom", args)


def run_handler(prog: str, args: argparse.Namespace) -> int:
    """`args.handler(args)`, with what a user can fix said in one line (exit 2 for a setting,
    1 for anything else the service reports) rather than as a traceback."""
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"{prog}: configuration error: {exc}", file=sys.stderr)
        return 2
    except (Fathom2LoomError, MissingBinary) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
