"""The `fathom2loom` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from fathom2loom.errors import Fathom2LoomError
from fathom2loom.settings import ConfigError, load_settings

__all__ = ["main"]


def _bootstrap(_args: argparse.Namespace) -> int:
    from fathom2loom.bootstrap import bootstrap

    print(bootstrap(load_settings()))
    return 0


def _dev(args: argparse.Namespace) -> int:
    from fathom2loom.devstack import run_dev_stack

    return run_dev_stack(args.state_dir)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fathom2loom", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "bootstrap", help="prepare PocketBase: superuser, collections, defaults (idempotent)"
    ).set_defaults(handler=_bootstrap)
    dev = commands.add_parser("dev", help="run the whole stack locally (what `make run` runs)")
    dev.add_argument("--state-dir", default=".run", help="where local servers keep their files")
    dev.set_defaults(handler=_dev)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"fathom2loom: configuration error: {exc}", file=sys.stderr)
        return 2
    except Fathom2LoomError as exc:
        print(f"fathom2loom: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
