/// <reference path="../pb_data/types.d.ts" />
// Meetings that move by themselves (issue 16):
// - `user_meta.auto_move` turns it on for the user, `auto_move_since` is the date from which new
//   meetings count (empty: from when it was turned on). Users set both on their own record.
// - `auto_move`: one row per user who turned it on, kept by the service: the Fathom webhook it
//   registered (`webhook_id`, its secret encrypted like the API keys, hidden from users), the key
//   and URL it was registered for (hidden), the catch-up poll's `watermark`, and a `status` the
//   user can read. Users may read their own row; only the service writes.
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
  app.delete(app.findCollectionByNameOrId("auto_move"));
  const userMeta = app.findCollectionByNameOrId("user_meta");
  userMeta.fields.removeByName("auto_move");
  userMeta.fields.removeByName("auto_move_since");
  app.save(userMeta);
});
