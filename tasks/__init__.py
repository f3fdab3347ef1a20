"""The Celery side of fathom2loom: the app, the dispatcher, the transfer and the log sink."""
