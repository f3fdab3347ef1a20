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
// and reads the dispatcher's view of the active rows (pending and processing) in one answer,
// built by SQLite: listing 10,000 rows through the records API takes ten pages and about 1 s.
//
//   GET  /api/fathom2loom/bulk/active?fields=id,user_id,...   {"items": [{id, user_id, ...}, ...]}
//                                           (ascending id; the fields the caller names, each a
//                                           field of the queue collection)
//
// A bad value refuses the whole request with a 400 naming its index and field, and nothing is
// written; a body that cannot be read whole (over 64 MiB) is a 413. Positions are written only to
// rows still in line (pending; 0 to processing ones): a row cancelled or ended since the
// dispatcher read it keeps its own. Log records carry their own ids and are inserted once (a
// retried batch writes nothing twice). What each value may be is read from the collections'
// fields (bulk.js), as the migrations made them. Raw SQL raises no record events, so position changes reach the users who follow them as
// one custom realtime message per user, on the topic "fathom2loom/positions":
// {"positions": {"<row id>": <position>, ...}}, their own rows only.

routerAdd(
  "POST",
  "/api/fathom2loom/bulk/positions",
  (e) => {
    const bulk = require(`${__hooks}/bulk.js`);
    return bulk.write(
      e,
      "positions",
      bulk.positionsCheck,
      bulk.POSITIONS_WRITE,
      bulk.announcePositions,
    );
  },
  $apis.requireSuperuserAuth(),
  $apis.bodyLimit(64 << 20), // bulk.js MAX_BODY
);

routerAdd(
  "POST",
  "/api/fathom2loom/bulk/logs",
  (e) => {
    const bulk = require(`${__hooks}/bulk.js`);
    return bulk.write(e, "records", bulk.logsCheck, bulk.LOGS_WRITE, null);
  },
  $apis.requireSuperuserAuth(),
  $apis.bodyLimit(64 << 20), // bulk.js MAX_BODY
);

routerAdd(
  "GET",
  "/api/fathom2loom/bulk/active",
  (e) => {
    const bulk = require(`${__hooks}/bulk.js`);
    const names = (e.request.url.query().get("fields") || "").split(",").filter((n) => n);
    const rows = bulk.activeRows(names);
    if (rows === null) {
      return e.json(400, {
        status: 400,
        message: "?fields= must name fields of the queue collection, separated by commas.",
        data: {},
      });
    }
    e.response.header().set("Content-Type", "application/json");
    return e.string(200, `{"items":${rows}}`);
  },
  $apis.requireSuperuserAuth(),
);
