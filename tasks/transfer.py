"""The worker task that moves one queue row's recording from Fathom to Loom (issue 4)."""
