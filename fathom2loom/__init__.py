"""fathom2loom: moves meeting recordings from Fathom to Loom; PocketBase holds the truth."""

__all__ = ["__version__"]

__version__ = "0.1.0"
