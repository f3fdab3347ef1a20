/// <reference path="../pb_data/types.d.ts" />
// Auto-move counts the user's own meetings from the moment they turned it on (issue 16):
// - `auto_move.counts_from`: the date from which the user's new meetings count, kept by the
//   service when it first sees auto-move on: the user's `auto_move_since`, else the moment they
//   turned it on (their `user_meta` change), not the moment the service got round to it. The
//   catch-up poll never queues an older meeting. Users read it on their own row.
// - `auto_move.recorded_by`: the Fathom account (e-mail) whose recordings count, as the service
//   knows it: what the user set, else what Fathom's webhook deliveries say, else the e-mail they
//   sign in with. Fathom lists teammates' shared meetings to a key too; those are not moved.
// - `user_meta.fathom_email`: the user's Fathom e-mail, when it is not the one they sign in with.
//   Users set it on their own record (the update rule leaves new fields to them).
// Rows made before this migration have no `counts_from` and count from when they were made.
// Strict-JSON snapshot of each changed collection, as in 1730000000_initial_schema.js.
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
        {"id": "f2lumautomove", "name": "auto_move", "type": "bool"},
        {"id": "f2lumautosince", "name": "auto_move_since", "type": "date"},
        {"id": "f2lumfathomemail", "name": "fathom_email", "type": "email"},
        {"id": "f2lumcreated", "name": "created", "type": "autodate", "onCreate": true, "onUpdate": false},
        {"id": "f2lumupdated", "name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true}
      ],
      "indexes": [
        "CREATE UNIQUE INDEX `idx_user_meta_user` ON `user_meta` (`user_id`)"
      ]
    },
    {
      "id": "f2l_auto_move",
      "name": "auto_move",
      "type": "base",
      "listRule": "@request.auth.id != \"\" && user_id = @request.auth.id",
      "viewRule": "@request.auth.id != \"\" && user_id = @request.auth.id",
      "createRule": null,
      "updateRule": null,
      "deleteRule": null,
      "fields": [
        {"id": "text3208210256", "name": "id", "type": "text", "system": true, "primaryKey": true, "required": true, "min": 15, "max": 15, "pattern": "^[a-z0-9]+$", "autogeneratePattern": "[a-z0-9]{15}"},
        {"id": "f2lamuserid", "name": "user_id", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1, "cascadeDelete": true, "required": true},
        {"id": "f2lamwebhook", "name": "webhook_id", "type": "text", "max": 128},
        {"id": "f2lamsecret", "name": "encrypted_secret", "type": "text", "max": 4096, "hidden": true},
        {"id": "f2lamurl", "name": "destination_url", "type": "text", "max": 2048},
        {"id": "f2lamfor", "name": "registered_for", "type": "text", "max": 128, "hidden": true},
        {"id": "f2lamstatus", "name": "status", "type": "text", "max": 2000},
        {"id": "f2lamwatermark", "name": "watermark", "type": "date"},
        {"id": "f2lampolled", "name": "polled_at", "type": "date"},
        {"id": "f2lamfrom", "name": "counts_from", "type": "date"},
        {"id": "f2lamrecordedby", "name": "recorded_by", "type": "text", "max": 320},
        {"id": "f2lamcreated", "name": "created", "type": "autodate", "onCreate": true, "onUpdate": false},
        {"id": "f2lamupdated", "name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true}
      ],
      "indexes": [
        "CREATE UNIQUE INDEX `idx_auto_move_user` ON `auto_move` (`user_id`)"
      ]
    }
  ] /* END SNAPSHOT */;

  app.importCollections(snapshot, false);
}, (app) => {
  const autoMove = app.findCollectionByNameOrId("auto_move");
  autoMove.fields.removeByName("counts_from");
  autoMove.fields.removeByName("recorded_by");
  app.save(autoMove);
  const userMeta = app.findCollectionByNameOrId("user_meta");
  userMeta.fields.removeByName("fathom_email");
  app.save(userMeta);
});
