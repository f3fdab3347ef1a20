"""The error tree drawn in `fathom2loom/errors.py` is the tree there is: every error class of the
package, under its real parent, and nothing drawn that does not exist. No server needed."""

from __future__ import annotations

import importlib
import pkgutil
import re

import fathom2loom
from fathom2loom import errors
from fathom2loom.errors import Fathom2LoomError

_NODE = re.compile(r"^(?P<indent>[│├└─ ]*)(?P<name>[A-Z]\w+)\s")


def drawn_parents() -> dict[str, str | None]:
    """Each class the docstring draws, with the class it is drawn under."""
    parents: dict[str, str | None] = {}
    path: list[str] = []
    lines = (errors.__doc__ or "").splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("Fathom2LoomError"))
    for line in lines[start:]:
        found = _NODE.match(line)
        if not found:
            break  # The drawing ends at the first line that is not a node of it.
        depth = len(found["indent"]) // 4
        path[depth:] = [found["name"]]
        parents[found["name"]] = path[depth - 1] if depth else None
    return parents


def real_parents() -> dict[str, str | None]:
    """Each error class of the package (every module imported), with its parent in the tree."""
    for module in pkgutil.walk_packages(fathom2loom.__path__, "fathom2loom."):
        if not module.name.endswith("__main__"):  # (a program: it would run)
            importlib.import_module(module.name)
    parents: dict[str, str | None] = {Fathom2LoomError.__name__: None}
    todo = [Fathom2LoomError]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("fathom2loom."):
                tree_bases = [b for b in sub.__bases__ if issubclass(b, Fathom2LoomError)]
                parents[sub.__name__] = tree_bases[0].__name__
                todo.append(sub)
    return parents


def test_the_drawing_is_the_tree() -> None:
    drawn, real = drawn_parents(), real_parents()
    assert len(drawn) > 30  # The drawing was read at all
    assert drawn == real


def test_every_error_a_caller_meets_is_exported_from_errors() -> None:
    assert set(real_parents()) <= set(errors.__all__)
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), Fathom2LoomError), name
