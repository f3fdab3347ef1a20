"""`python -m devkit run`: the whole stack locally (what `make run` runs); `python -m devkit demo`:
the sandbox's demo user, with stand-in keys and its meetings queued (compose's sandbox profile)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fathom2loom.cli import run_handler

__all__ = ["main"]


def _run(args: argparse.Namespace) -> int:
    from devkit.devstack import run_dev_stack

    return run_dev_stack(args.state_dir)


def _demo(_args: argparse.Namespace) -> int:
    from devkit.sandbox import seed_demo_from_settings

    seed_demo_from_settings()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devkit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the whole stack locally (what `make run` runs)")
    run.add_argument("--state-dir", default=".run", help="where local servers keep their files")
    run.set_defaults(handler=_run)
    commands.add_parser(
        "demo", help="sandbox: a demo user with stand-in keys and its meetings queued (idempotent)"
    ).set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_handler("devkit", _parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
