"""The dispatcher: mirrors pending PocketBase queue rows into Celery transfer tasks.

Its beat task, fairness, positions and rescue land with issue 5; the module exists now so that the
app's `include` list is the final one.
"""
