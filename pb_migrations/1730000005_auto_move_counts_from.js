/// <reference path="../pb_data/types.d.ts" />
// Auto-move counts from the moment the user turned it on (issue 16):
// - `auto_move.counts_from`: the date from which the user's new meetings count, kept by the
//   service when it first sees auto-move on: the user's `auto_move_since`, else the moment they
//   turned it on (their `user_meta` change), not the moment the service got round to it. The
//   catch-up poll never queues an older meeting. Users read it on their own row.
// Rows made before this migration have none and count from when they were made, as before.
// Strict-JSON snapshot of the whole collection, as in 1730000000_initial_schema.js.
migrate((app) => {
  const snapshot = /* BEGIN SNAPSHOT */ [
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
  app.save(autoMove);
});
