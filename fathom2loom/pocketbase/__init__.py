"""PocketBase access: the client, filter quoting and the project's schema."""

from fathom2loom.pocketbase.client import BatchOp, PocketBase, Record
from fathom2loom.pocketbase.filters import pb_filter, quote

__all__ = ["BatchOp", "PocketBase", "Record", "pb_filter", "quote"]
