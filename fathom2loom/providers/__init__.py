"""Clients for the two providers: Fathom (published API) and Loom (our adapter contract)."""
