"""Building PocketBase filter expressions from values that may come from users.

PocketBase's REST API has no parameter binding. Values are quoted the way the JS SDK's
`pb.filter()` does it (JSON string quoting), so a value can never close its string and add
conditions of its own.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Any

from fathom2loom.errors import FilterTooLong

__all__ = ["FilterTooLong", "pb_filter", "quote"]

MAX_FILTER_CHARS = 3500
_PLACEHOLDER = re.compile(r"\{:(\w+)\}")


def quote(value: Any) -> str:
    """One literal for a filter: strings JSON-quoted, numbers and booleans bare, None as null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, datetime):
        value = value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"
    elif isinstance(value, date):
        value = value.isoformat()
    return json.dumps(str(value), ensure_ascii=False)


def pb_filter(expression: str, **params: Any) -> str:
    """Substitute `{:name}` placeholders with quoted values, e.g. `pb_filter("a = {:a}", a=x)`."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            raise KeyError(f"filter placeholder {{:{name}}} has no value")
        return quote(params[name])

    result = _PLACEHOLDER.sub(substitute, expression)
    if len(result) > MAX_FILTER_CHARS:
        raise FilterTooLong(f"filter is {len(result)} characters; PocketBase allows 3500")
    return result
