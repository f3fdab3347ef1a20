"""New Fathom meetings that move by themselves, for the users who turn it on.

A user sets `user_meta.auto_move` (and optionally `auto_move_since`, the date from which meetings
count). Three paths then lead a new meeting into the queue, each harmless to repeat (a meeting is
queued at most once, whatever happened to its row since):

- `registration`: the service registers a Fathom webhook for the user's own recordings, pointing
  at this deployment's receiver, and keeps it matching the user's key and the public URL;
- `receiver`: the HTTP endpoint Fathom delivers to, which checks the Standard Webhooks signature,
  refuses stale and replayed deliveries, and queues the meeting;
- `catch_up`: a poll of each user's meetings created since a watermark, within the part of the
  user's Fathom rate budget that transfers leave, which finds what a webhook missed.

`store` holds the state all three share (the `auto_move` collection), `enqueue` the one way in.
"""
