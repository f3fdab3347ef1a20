/// <reference path="../pb_data/types.d.ts" />
// The users' own path (issue 14):
// - `queue.recorded_at`: when the recording started, if the row's creator knows it (the CLI's
//   `enqueue --since` does); the transfer then finds the meeting's title and notes with one narrow
//   Fathom query. Users may set it when they queue a meeting, never change it.
// - `api_keys`: a masked hint of each key (`fathom_hint`, `loom_hint`) and the result of trying it
//   against its provider (`fathom_check`, `loom_check`, `checked_for`); written by the service
//   (pb_hooks/api_keys.pb.js and the key check), never by users.
// - `logs`: a user's record is attributed to that user (no anonymous records from users).
// Strict-JSON snapshot of each changed collection, as in 1730000000_initial_schema.js.
migrate((app) => {
  const snapshot = /* BEGIN SNAPSHOT */ [
    {
      "id": "f2l_queue",
      "name": "queue",
      "type": "base",
      "listRule": "@request.auth.id != \"\" && user_id = @request.auth.id",
      "viewRule": "@request.auth.id != \"\" && user_id = @request.auth.id",
      "createRule": "@request.auth.id != \"\" && @request.body.user_id = @request.auth.id && @request.body.status = \"pending\" && (@request.body.position:isset = false || @request.body.position = 0) && (@request.body.started_at:isset = false || @request.body.started_at = \"\") && (@request.body.completed_at:isset = false || @request.body.completed_at = \"\") && (@request.body.error_message:isset = false || @request.body.error_message = \"\") && @request.body.loom_video_id:isset = false && @request.body.loom_url:isset = false && @request.body.fathom_download_id:isset = false && @request.body.attempts:isset = false && @request.body.bytes_done:isset = false && @request.body.bytes_total:isset = false && @request.body.heartbeat_at:isset = false && @request.body.next_attempt_at:isset = false && @request.body.wait_reason:isset = false && @request.body.transfer_state:isset = false",
      "updateRule": "@request.auth.id != \"\" && user_id = @request.auth.id && @request.body.user_id:changed = false && @request.body.meeting_id:changed = false && @request.body.position:changed = false && @request.body.queued_at:changed = false && @request.body.started_at:changed = false && @request.body.completed_at:changed = false && @request.body.error_message:changed = false && @request.body.loom_video_id:changed = false && @request.body.loom_url:changed = false && @request.body.fathom_download_id:changed = false && @request.body.attempts:changed = false && @request.body.bytes_done:changed = false && @request.body.bytes_total:changed = false && @request.body.heartbeat_at:changed = false && @request.body.next_attempt_at:changed = false && @request.body.wait_reason:changed = false && @request.body.transfer_state:changed = false && @request.body.recorded_at:changed = false && ((@request.body.status = \"cancelled\" && (status = \"pending\" || status = \"processing\")) || (@request.body.status = \"pending\" && status = \"failed\"))",
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
        {"id": "f2lqrecordedat", "name": "recorded_at", "type": "date"},
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
    },
    {
      "id": "f2l_api_keys",
      "name": "api_keys",
      "type": "base",
      "listRule": "@request.auth.id != \"\" && user_id = @request.auth.id",
      "viewRule": "@request.auth.id != \"\" && user_id = @request.auth.id",
      "createRule": "@request.auth.id != \"\" && @request.body.user_id = @request.auth.id && @request.body.fathom_hint:isset = false && @request.body.loom_hint:isset = false && @request.body.fathom_check:isset = false && @request.body.loom_check:isset = false && @request.body.checked_for:isset = false",
      "updateRule": "@request.auth.id != \"\" && user_id = @request.auth.id && @request.body.user_id:changed = false && @request.body.fathom_hint:changed = false && @request.body.loom_hint:changed = false && @request.body.fathom_check:changed = false && @request.body.loom_check:changed = false && @request.body.checked_for:changed = false",
      "deleteRule": "@request.auth.id != \"\" && user_id = @request.auth.id",
      "fields": [
        {"id": "text3208210256", "name": "id", "type": "text", "system": true, "primaryKey": true, "required": true, "min": 15, "max": 15, "pattern": "^[a-z0-9]+$", "autogeneratePattern": "[a-z0-9]{15}"},
        {"id": "f2lakuserid", "name": "user_id", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1, "cascadeDelete": true, "required": true},
        {"id": "f2lakfathom", "name": "encrypted_fathom", "type": "text", "max": 4096},
        {"id": "f2lakloom", "name": "encrypted_loom", "type": "text", "max": 4096},
        {"id": "f2lakfhint", "name": "fathom_hint", "type": "text", "max": 32},
        {"id": "f2laklhint", "name": "loom_hint", "type": "text", "max": 32},
        {"id": "f2lakfcheck", "name": "fathom_check", "type": "text", "max": 500},
        {"id": "f2laklcheck", "name": "loom_check", "type": "text", "max": 500},
        {"id": "f2lakchecked", "name": "checked_for", "type": "text", "max": 64},
        {"id": "f2lakcreated", "name": "created", "type": "autodate", "onCreate": true, "onUpdate": false},
        {"id": "f2lakupdated", "name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true}
      ],
      "indexes": [
        "CREATE UNIQUE INDEX `idx_api_keys_user` ON `api_keys` (`user_id`)"
      ]
    },
    {
      "id": "f2l_logs",
      "name": "logs",
      "type": "base",
      "listRule": "@request.auth.id != \"\" && user_id = @request.auth.id",
      "viewRule": "@request.auth.id != \"\" && user_id = @request.auth.id",
      "createRule": "@request.auth.id != \"\" && @request.body.user_id = @request.auth.id",
      "updateRule": null,
      "deleteRule": null,
      "fields": [
        {"id": "text3208210256", "name": "id", "type": "text", "system": true, "primaryKey": true, "required": true, "min": 15, "max": 15, "pattern": "^[a-z0-9]+$", "autogeneratePattern": "[a-z0-9]{15}"},
        {"id": "f2llevel", "name": "level", "type": "select", "values": ["trace", "debug", "info", "warn", "error", "fatal"], "maxSelect": 1, "required": true},
        {"id": "f2lmsg", "name": "msg", "type": "text", "max": 20000},
        {"id": "f2lts", "name": "ts", "type": "date", "required": true},
        {"id": "f2lluserid", "name": "user_id", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1, "cascadeDelete": true},
        {"id": "f2lcomponent", "name": "component", "type": "text", "max": 100},
        {"id": "f2lmetadata", "name": "metadata", "type": "json", "maxSize": 200000},
        {"id": "f2llcreated", "name": "created", "type": "autodate", "onCreate": true, "onUpdate": false}
      ],
      "indexes": [
        "CREATE INDEX `idx_logs_ts` ON `logs` (`ts`)",
        "CREATE INDEX `idx_logs_level_ts` ON `logs` (`level`, `ts`)",
        "CREATE INDEX `idx_logs_user_ts` ON `logs` (`user_id`, `ts`)"
      ]
    }
  ] /* END SNAPSHOT */;

  app.importCollections(snapshot, false);
}, (app) => {
  const rules = {"queue": ["@request.auth.id != \"\" && @request.body.user_id = @request.auth.id && @request.body.status = \"pending\" && (@request.body.position:isset = false || @request.body.position = 0) && (@request.body.started_at:isset = false || @request.body.started_at = \"\") && (@request.body.completed_at:isset = false || @request.body.completed_at = \"\") && (@request.body.error_message:isset = false || @request.body.error_message = \"\") && @request.body.loom_video_id:isset = false && @request.body.loom_url:isset = false && @request.body.fathom_download_id:isset = false && @request.body.attempts:isset = false && @request.body.bytes_done:isset = false && @request.body.bytes_total:isset = false && @request.body.heartbeat_at:isset = false && @request.body.next_attempt_at:isset = false && @request.body.wait_reason:isset = false && @request.body.transfer_state:isset = false", "@request.auth.id != \"\" && user_id = @request.auth.id && @request.body.user_id:changed = false && @request.body.meeting_id:changed = false && @request.body.position:changed = false && @request.body.queued_at:changed = false && @request.body.started_at:changed = false && @request.body.completed_at:changed = false && @request.body.error_message:changed = false && @request.body.loom_video_id:changed = false && @request.body.loom_url:changed = false && @request.body.fathom_download_id:changed = false && @request.body.attempts:changed = false && @request.body.bytes_done:changed = false && @request.body.bytes_total:changed = false && @request.body.heartbeat_at:changed = false && @request.body.next_attempt_at:changed = false && @request.body.wait_reason:changed = false && @request.body.transfer_state:changed = false && ((@request.body.status = \"cancelled\" && (status = \"pending\" || status = \"processing\")) || (@request.body.status = \"pending\" && status = \"failed\"))"], "api_keys": ["@request.auth.id != \"\" && @request.body.user_id = @request.auth.id", "@request.auth.id != \"\" && user_id = @request.auth.id && @request.body.user_id:changed = false"], "logs": ["@request.auth.id != \"\" && (@request.body.user_id:isset = false || @request.body.user_id = \"\" || @request.body.user_id = @request.auth.id)", null]};
  const removed = {
    queue: ["recorded_at"],
    api_keys: ["fathom_hint", "loom_hint", "fathom_check", "loom_check", "checked_for"],
    logs: [],
  };
  for (const name of Object.keys(removed)) {
    const collection = app.findCollectionByNameOrId(name);
    for (const field of removed[name]) {
      collection.fields.removeByName(field);
    }
    collection.createRule = rules[name][0];
    collection.updateRule = rules[name][1];
    app.save(collection);
  }
});
