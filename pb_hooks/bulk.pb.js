/// <reference path="../pb_data/types.d.ts" />
// Bulk writes inside PocketBase (issue 15), for the service only (superusers).
//
// PocketBase's cost is per request (HTTP, rules, hooks, realtime, one SQLite writer): the batch
// API still runs each write through all of that. These routes validate every value as the
// collection's fields would, then write the whole list with one SQL statement in one transaction:
//
//   POST /api/fathom2loom/bulk/positions  {"positions": [["<queue id>", <position>], ...]}
//   POST /api/fathom2loom/bulk/logs       {"records": [{id, level, msg, ts, user_id, component,
//                                           metadata}, ...]}
//
// A bad value refuses the whole request with a 400 naming its index and field, and nothing is
// written. Log records carry their own ids and are inserted once (a retried batch writes nothing
// twice). Raw SQL raises no record events, so position changes reach the users who follow them as
// one custom realtime message per user, on the topic "fathom2loom/positions":
// {"positions": {"<row id>": <position>, ...}}, their own rows only.

routerAdd(
  "POST",
  "/api/fathom2loom/bulk/positions",
  (e) => {
    const bulk = require(`${__hooks}/bulk.js`);
    const data = bulk.list(e, "positions");
    if (data === null) {
      return e.json(400, bulk.listRefusal("positions"));
    }
    const refused = bulk.refusal(bulk.POSITIONS_CHECK, data);
    if (refused) {
      return e.json(400, refused);
    }
    $app.runInTransaction((txApp) => {
      txApp
        .db()
        .newQuery(
          "UPDATE queue SET position = CAST(json_extract(j.value, '$[1]') AS INTEGER)," +
            " updated = {:now} FROM json_each({:data}) AS j" +
            " WHERE queue.id = json_extract(j.value, '$[0]')",
        )
        .bind({ data: data, now: bulk.now() })
        .execute();
    });
    bulk.announcePositions(data);
    return e.json(200, { written: bulk.count(data) });
  },
  $apis.requireSuperuserAuth(),
  $apis.bodyLimit(64 << 20),
);

routerAdd(
  "POST",
  "/api/fathom2loom/bulk/logs",
  (e) => {
    const bulk = require(`${__hooks}/bulk.js`);
    const data = bulk.list(e, "records");
    if (data === null) {
      return e.json(400, bulk.listRefusal("records"));
    }
    const refused = bulk.refusal(bulk.LOGS_CHECK, data);
    if (refused) {
      return e.json(400, refused);
    }
    $app.runInTransaction((txApp) => {
      txApp
        .db()
        .newQuery(
          "INSERT OR IGNORE INTO logs (id, level, msg, ts, user_id, component, metadata, created)" +
            " SELECT json_extract(value, '$.id'), json_extract(value, '$.level')," +
            " coalesce(json_extract(value, '$.msg'), '')," +
            " replace(json_extract(value, '$.ts'), 'T', ' ')," +
            " coalesce(json_extract(value, '$.user_id'), '')," +
            " coalesce(json_extract(value, '$.component'), '')," +
            " coalesce(json(json_extract(value, '$.metadata')), 'null'), {:now}" +
            " FROM json_each({:data})",
        )
        .bind({ data: data, now: bulk.now() })
        .execute();
    });
    return e.json(200, { written: bulk.count(data) });
  },
  $apis.requireSuperuserAuth(),
  $apis.bodyLimit(64 << 20),
);
