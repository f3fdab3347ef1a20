/// <reference path="../pb_data/types.d.ts" />
// Initial schema: user_meta, api_keys, queue and logs (see docs/schema.md for the rules' intent).
//
// The collections are a JSON snapshot between the BEGIN/END markers: PocketBase applies it here with
// importCollections, and `fathom2loom bootstrap` applies the very same snapshot through the REST
// import API when it finds a PocketBase started without this directory. Keep it strict JSON.
// Ids are fixed so that applying the snapshot twice changes nothing.
migrate((app) => {
  const snapshot = /* BEGIN SNAPSHOT */ [
    {
      "id": "f2l_user_meta",
      "name": "user_meta",
      "type": "base",
      "listRule": "@request.auth.id != \"\" && user_id = @request.auth.id",
      "viewRule": "@request.auth.id != \"\" && user_id = @request.auth.id",
      "createRule": "@request.auth.id != \"\" && @request.body.user_id = @request.auth.id && (@request.body.premium:isset = false || @request.body.premium = false) && (@request.body.verified:isset = false || @request.body.verified = false) && (@request.body.file_path:isset = false || @request.body.file_path = \"\")",
      "updateRule": "@request.auth.id != \"\" && user_id = @request.auth.id && @request.body.user_id:changed = false && @request.body.premium:changed = false && @request.body.verified:changed = false && @request.body.file_path:changed = false",
      "deleteRule": "@request.auth.id != \"\" && user_id = @request.auth.id",
      "fields": [
        {"id": "text3208210256", "name": "id", "type": "text", "system": true, "primaryKey": true, "required": true, "min": 15, "max": 15, "pattern": "^[a-z0-9]+$", "autogeneratePattern": "[a-z0-9]{15}"},
        {"id": "f2lumuserid", "name": "user_id", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1, "cascadeDelete": true, "required": true},
        {"id": "f2lumfilepath", "name": "file_path", "type": "text", "max": 1024},
        {"id": "f2lumactive", "name": "active", "type": "bool"},
        {"id": "f2lumverified", "name": "verified", "type": "bool"},
        {"id": "f2lumpremium", "name": "premium", "type": "bool"},
        {"id": "f2lumcreated", "name": "created", "type": "autodate", "onCreate": true, "onUpdate": false},
        {"id": "f2lumupdated", "name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true}
      ],
      "indexes": [
        "CREATE UNIQUE INDEX `idx_user_meta_user` ON `user_meta` (`user_id`)"
      ]
    },
    {
      "id": "f2l_api_keys",
      "name": "api_keys",
      "type": "base",
      "listRule": "@request.auth.id != \"\" && user_id = @request.auth.id",
      "viewRule": "@request.auth.id != \"\" && user_id = @request.auth.id",
      "createRule": "@request.auth.id != \"\" && @request.body.user_id = @request.auth.id",
      "updateRule": "@request.auth.id != \"\" && user_id = @request.auth.id && @request.body.user_id:changed = false",
      "deleteRule": "@request.auth.id != \"\" && user_id = @request.auth.id",
      "fields": [
        {"id": "text3208210256", "name": "id", "type": "text", "system": true, "primaryKey": true, "required": true, "min": 15, "max": 15, "pattern": "^[a-z0-9]+$", "autogeneratePattern": "[a-z0-9]{15}"},
        {"id": "f2lakuserid", "name": "user_id", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1, "cascadeDelete": true, "required": true},
        {"id": "f2lakfathom", "name": "encrypted_fathom", "type": "text", "max": 4096},
        {"id": "f2lakloom", "name": "encrypted_loom", "type": "text", "max": 4096},
        {"id": "f2lakcreated", "name": "created", "type": "autodate", "onCreate": true, "onUpdate": false},
        {"id": "f2lakupdated", "name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true}
      ],
      "indexes": [
        "CREATE UNIQUE INDEX `idx_api_keys_user` ON `api_keys` (`user_id`)"
      ]
    },
    {
      "id": "f2l_queue",
      "name": "queue",
      "type": "base",
      "listRule": "@request.auth.id != \"\" && user_id = @request.auth.id",
      "viewRule": "@request.auth.id != \"\" && user_id = @request.auth.id",
      "createRule": "@request.auth.id != \"\" && @request.body.user_id = @request.auth.id && @request.body.status = \"pending\" && (@request.body.position:isset = false || @request.body.position = 0) && (@request.body.started_at:isset = false || @request.body.started_at = \"\") && (@request.body.completed_at:isset = false || @request.body.completed_at = \"\") && (@request.body.error_message:isset = false || @request.body.error_message = \"\")",
      "updateRule": "@request.auth.id != \"\" && user_id = @request.auth.id && @request.body.user_id:changed = false && @request.body.meeting_id:changed = false && @request.body.position:changed = false && @request.body.queued_at:changed = false && @request.body.started_at:changed = false && @request.body.completed_at:changed = false && @request.body.error_message:changed = false && ((@request.body.status = \"cancelled\" && (status = \"pending\" || status = \"processing\")) || (@request.body.status = \"pending\" && status = \"failed\"))",
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
        {"id": "f2lqcreated", "name": "created", "type": "autodate", "onCreate": true, "onUpdate": false},
        {"id": "f2lqupdated", "name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true}
      ],
      "indexes": [
        "CREATE INDEX `idx_queue_status_position` ON `queue` (`status`, `position`)",
        "CREATE INDEX `idx_queue_status_queued` ON `queue` (`status`, `queued_at`)",
        "CREATE INDEX `idx_queue_user_status` ON `queue` (`user_id`, `status`, `queued_at`)",
        "CREATE INDEX `idx_queue_meeting` ON `queue` (`meeting_id`)"
      ]
    },
    {
      "id": "f2l_logs",
      "name": "logs",
      "type": "base",
      "listRule": "@request.auth.id != \"\" && user_id = @request.auth.id",
      "viewRule": "@request.auth.id != \"\" && user_id = @request.auth.id",
      "createRule": "@request.auth.id != \"\" && (@request.body.user_id:isset = false || @request.body.user_id = \"\" || @request.body.user_id = @request.auth.id)",
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
  // Rollback: drop the four collections (children of `users` only, so the order is free).
  for (const name of ["logs", "queue", "api_keys", "user_meta"]) {
    try {
      app.delete(app.findCollectionByNameOrId(name));
    } catch (err) {
      // Already gone: a rollback must be safe to run on a partial schema.
    }
  }
});
