/// <reference path="../pb_data/types.d.ts" />
// Waits and one active row per meeting on `queue`:
// - `next_attempt_at` and `wait_reason`: a transfer that must wait (Fathom rendering, Loom
//   processing, a rate limit, a transient fault) ends its task and says here when it may run again
//   and why; the dispatcher sends it again when it is due.
// - `transfer_state`: the transfer's own counters between runs (JSON, see fathom2loom/queue_rows.py).
// - a unique index on (user_id, meeting_id) over pending and processing rows: a user cannot queue
//   the same meeting twice at once. Active duplicates that already exist are cancelled first (the
//   oldest row, or the one already processing, is kept).
// Users may not write the new fields (create and update rules).
// Strict-JSON snapshot of the whole collection, as in 1730000000_initial_schema.js.
migrate((app) => {
  app.db().newQuery(
    "UPDATE queue SET status = 'cancelled', position = 0," +
    " error_message = 'Cancelled: another transfer of this meeting was already queued'" +
    " WHERE status IN ('pending', 'processing') AND EXISTS (" +
    "  SELECT 1 FROM queue AS other WHERE other.user_id = queue.user_id" +
    "  AND other.meeting_id = queue.meeting_id AND other.id != queue.id" +
    "  AND other.status IN ('pending', 'processing') AND (" +
    "   (other.status = 'processing' AND queue.status = 'pending') OR" +
    "   (other.status = queue.status AND (other.queued_at < queue.queued_at OR" +
    "    (other.queued_at = queue.queued_at AND other.id < queue.id)))))"
  ).execute();

  const snapshot = /* BEGIN SNAPSHOT */ [
    {
      "id": "f2l_queue",
      "name": "queue",
      "type": "base",
      "listRule": "@request.auth.id != \"\" && user_id = @request.auth.id",
      "viewRule": "@request.auth.id != \"\" && user_id = @request.auth.id",
      "createRule": "@request.auth.id != \"\" && @request.body.user_id = @request.auth.id && @request.body.status = \"pending\" && (@request.body.position:isset = false || @request.body.position = 0) && (@request.body.started_at:isset = false || @request.body.started_at = \"\") && (@request.body.completed_at:isset = false || @request.body.completed_at = \"\") && (@request.body.error_message:isset = false || @request.body.error_message = \"\") && @request.body.loom_video_id:isset = false && @request.body.loom_url:isset = false && @request.body.fathom_download_id:isset = false && @request.body.attempts:isset = false && @request.body.bytes_done:isset = false && @request.body.bytes_total:isset = false && @request.body.heartbeat_at:isset = false && @request.body.next_attempt_at:isset = false && @request.body.wait_reason:isset = false && @request.body.transfer_state:isset = false",
      "updateRule": "@request.auth.id != \"\" && user_id = @request.auth.id && @request.body.user_id:changed = false && @request.body.meeting_id:changed = false && @request.body.position:changed = false && @request.body.queued_at:changed = false && @request.body.started_at:changed = false && @request.body.completed_at:changed = false && @request.body.error_message:changed = false && @request.body.loom_video_id:changed = false && @request.body.loom_url:changed = false && @request.body.fathom_download_id:changed = false && @request.body.attempts:changed = false && @request.body.bytes_done:changed = false && @request.body.bytes_total:changed = false && @request.body.heartbeat_at:changed = false && @request.body.next_attempt_at:changed = false && @request.body.wait_reason:changed = false && @request.body.transfer_state:changed = false && ((@request.body.status = \"cancelled\" && (status = \"pending\" || status = \"processing\")) || (@request.body.status = \"pending\" && status = \"failed\"))",
      "deleteRule": "@request.auth.id != \"\" && user_id = @request.auth.id",
      "fields": [
        {"id": "text3208210256", "name": "id", "type": "text", "system": true, "primaryKey": true, "required": true, "min": 15, "max": 15, "pattern": "^[a-z0-9]+$", "autogeneratePattern": "[a-z0-9]{15}"},
        {"id": "f2lquserid", "name": "user_id", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1, "cascadeDelete": true, "required": true},
        {"id": "f2lqmeetingid", "name": "meeting_id", "type": "text", "required": true, "max": 64},
        {"id": "f2lqstatus", "name": "status", "type": "select", "values": ["pending", "processing", "completed", "failed", "cancelled"], "maxSelect": 1, "required": true},
        {"id": "f2lqposition", "name": "position", "type": "number", "onlyInt": true, "min": 0},
        {"id": "f2lqqueuedat", "name": "queued_at", "type": "date"},
        {"id": "f2lqstartedat", "name": "started_at", "type": "date"},
        {"id": "f2lqcompletedat", "name": "completed_at", "type": "date"},
        {"id": "f2lqerror", "name": "error_message", "type": "text", "max": 2000},
        {"id": "f2lqloomid", "name": "loom_video_id", "type": "text", "max": 64},
        {"id": "f2lqloomurl", "name": "loom_url", "type": "url"},
        {"id": "f2lqdownload", "name": "fathom_download_id", "type": "text", "max": 128},
        {"id": "f2lqattempts", "name": "attempts", "type": "number", "onlyInt": true, "min": 0},
        {"id": "f2lqbytesdone", "name": "bytes_done", "type": "number", "onlyInt": true, "min": 0},
        {"id": "f2lqbytestotal", "name": "bytes_total", "type": "number", "onlyInt": true, "min": 0},
        {"id": "f2lqheartbeat", "name": "heartbeat_at", "type": "date"},
        {"id": "f2lqnextat", "name": "next_attempt_at", "type": "date"},
        {"id": "f2lqwaitreason", "name": "wait_reason", "type": "text", "max": 500},
        {"id": "f2lqstate", "name": "transfer_state", "type": "json", "maxSize": 20000},
        {"id": "f2lqcreated", "name": "created", "type": "autodate", "onCreate": true, "onUpdate": false},
        {"id": "f2lqupdated", "name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true}
      ],
      "indexes": [
        "CREATE INDEX `idx_queue_status_position` ON `queue` (`status`, `position`)",
        "CREATE INDEX `idx_queue_status_queued` ON `queue` (`status`, `queued_at`)",
        "CREATE INDEX `idx_queue_user_status` ON `queue` (`user_id`, `status`, `queued_at`)",
        "CREATE INDEX `idx_queue_meeting` ON `queue` (`meeting_id`)",
        "CREATE UNIQUE INDEX `idx_queue_active_meeting` ON `queue` (`user_id`, `meeting_id`) WHERE `status` IN ('pending', 'processing')"
      ]
    }
  ] /* END SNAPSHOT */;

  app.importCollections(snapshot, false);
}, (app) => {
  const queue = app.findCollectionByNameOrId("queue");
  for (const name of ["next_attempt_at", "wait_reason", "transfer_state"]) {
    queue.fields.removeByName(name);
  }
  queue.removeIndex("idx_queue_active_meeting");
  queue.createRule = "@request.auth.id != \"\" && @request.body.user_id = @request.auth.id && @request.body.status = \"pending\" && (@request.body.position:isset = false || @request.body.position = 0) && (@request.body.started_at:isset = false || @request.body.started_at = \"\") && (@request.body.completed_at:isset = false || @request.body.completed_at = \"\") && (@request.body.error_message:isset = false || @request.body.error_message = \"\") && @request.body.loom_video_id:isset = false && @request.body.loom_url:isset = false && @request.body.fathom_download_id:isset = false && @request.body.attempts:isset = false && @request.body.bytes_done:isset = false && @request.body.bytes_total:isset = false && @request.body.heartbeat_at:isset = false";
  queue.updateRule = "@request.auth.id != \"\" && user_id = @request.auth.id && @request.body.user_id:changed = false && @request.body.meeting_id:changed = false && @request.body.position:changed = false && @request.body.queued_at:changed = false && @request.body.started_at:changed = false && @request.body.completed_at:changed = false && @request.body.error_message:changed = false && @request.body.loom_video_id:changed = false && @request.body.loom_url:changed = false && @request.body.fathom_download_id:changed = false && @request.body.attempts:changed = false && @request.body.bytes_done:changed = false && @request.body.bytes_total:changed = false && @request.body.heartbeat_at:changed = false && ((@request.body.status = \"cancelled\" && (status = \"pending\" || status = \"processing\")) || (@request.body.status = \"pending\" && status = \"failed\"))";
  app.save(queue);
});
