// Validation and helpers for pb_hooks/bulk.pb.js. Raw SQL checks nothing, so every value is
// checked first as its collection field would check it (ids, selects, dates, relations, ranges,
// sizes), by SQLite itself over the JSON list: one query, at native speed, stopping at the first
// bad record (json_each walks the list in order) and naming it and its field.
//
// The limits are read from the collections themselves, as the migrations made them (a select's
// values, a text's max, a JSON field's maxSize, a number's min and max): a migration that changes
// a field changes what these routes take, with nothing here to keep in step.

// A whole-number bound for positions when the field sets no max of its own: the dispatcher never
// writes one that large, so a larger one is a bug or an attack, not a place in line.
const POSITION_MAX = 1000000000;
const ID_REASON = "must be 15 characters a-z and 0-9";

function field(collection, name) {
  const found = $app.findCollectionByNameOrId(collection).fields.getByName(name);
  if (!found) {
    throw new Error(`the ${collection} collection has no field ${name}: apply the migrations`);
  }
  return found;
}

// A text value for SQL, quoted (the values come from our own schema, quoted all the same).
const quoted = (text) => `'${String(text).replace(/'/g, "''")}'`;

// Each list is walked once into JSONB (binary JSON: reading a field is a short walk, not a parse
// of the record's text), materialized so that SQLite does not redo it for every reference.
const RECORDS = (path) =>
  "WITH r AS MATERIALIZED (SELECT CAST(key AS INTEGER) AS idx, type AS t," +
  " CASE WHEN type IN ('object', 'array') THEN jsonb(value) END AS v" +
  ` FROM json_each({:body}, '${path}'))`;

const ID_BAD = (path) =>
  `(json_type(v, '${path}') IS NOT 'text' OR length(v ->> '${path}') != 15` +
  ` OR (v ->> '${path}') GLOB '*[^a-z0-9]*')`;

// A date as PocketBase writes it, to the letter: YYYY-MM-DD HH:MM:SS (or a T), optional fraction
// of 1 to 9 digits, Z, nothing after; and a real moment (30 February or 24:00 come back from
// julianday as another text, so they are refused).
const TS_BAD = (path) =>
  `(json_type(v, '${path}') IS NOT 'text' OR NOT (v ->> '${path}') GLOB` +
  " '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9][ T][0-2][0-9]:[0-5][0-9]:[0-5][0-9]*Z'" +
  ` OR NOT (substr(v ->> '${path}', 20) = 'Z' OR (substr(v ->> '${path}', 20, 1) = '.'` +
  ` AND length(v ->> '${path}') BETWEEN 22 AND 30 AND substr(v ->> '${path}', -1) = 'Z'` +
  ` AND NOT substr(v ->> '${path}', 21, length(v ->> '${path}') - 21) GLOB '*[^0-9]*'))` +
  ` OR strftime('%Y-%m-%d %H:%M:%S', julianday(substr(v ->> '${path}', 1, 19))) IS NOT` +
  ` replace(substr(v ->> '${path}', 1, 19), 'T', ' '))`;

const TEXT_BAD = (path, max) =>
  `(json_type(v, '${path}') NOT IN ('text', 'null') OR` +
  ` length(coalesce(v ->> '${path}', '')) > ${max})`;

// PocketBase's own defaults when a field sets no limit (core.TextField, core.JSONField).
const TEXT_DEFAULT_MAX = 5000;
const JSON_DEFAULT_MAX = 1 << 20;

// The positions check: each item an [id, position] pair, the position a whole number within the
// queue's `position` field.
function positionsCheck() {
  const position = field("queue", "position");
  const min = position.min === null ? 0 : position.min;
  const max = position.max === null ? POSITION_MAX : Math.min(position.max, POSITION_MAX);
  return {
    sql:
      RECORDS("$.positions") +
      " SELECT idx, CASE" +
      " WHEN t != 'array' OR json_array_length(v) != 2 THEN 'positions'" +
      ` WHEN ${ID_BAD("$[0]")} THEN 'id'` +
      ` WHEN json_type(v, '$[1]') IS NOT 'integer' OR NOT (v ->> '$[1]') BETWEEN ${min} AND ${max}` +
      " THEN 'position'" +
      " END AS bad FROM r WHERE bad IS NOT NULL LIMIT 1",
    reasons: {
      positions: "must be an [id, position] pair",
      id: ID_REASON,
      position: `must be a whole number from ${min} to ${max}`,
    },
  };
}

// The log records check, each field as the `logs` collection has it.
function logsCheck() {
  const levels = field("logs", "level").values;
  const msgMax = field("logs", "msg").max || TEXT_DEFAULT_MAX;
  const componentMax = field("logs", "component").max || TEXT_DEFAULT_MAX;
  const metadataMax = field("logs", "metadata").maxSize || JSON_DEFAULT_MAX;
  const users = $app.findCollectionByNameOrId(field("logs", "user_id").collectionId).name;
  return {
    sql:
      RECORDS("$.records") +
      " SELECT idx, CASE" +
      " WHEN t != 'object' THEN 'record'" +
      ` WHEN ${ID_BAD("$.id")} THEN 'id'` +
      " WHEN json_type(v, '$.level') IS NOT 'text' OR (v ->> '$.level')" +
      ` NOT IN (${levels.map(quoted).join(", ")}) THEN 'level'` +
      ` WHEN ${TEXT_BAD("$.msg", msgMax)} THEN 'msg'` +
      ` WHEN ${TS_BAD("$.ts")} THEN 'ts'` +
      ` WHEN ${TEXT_BAD("$.user_id", 15)} THEN 'user_id'` +
      " WHEN coalesce(v ->> '$.user_id', '') != '' AND NOT EXISTS" +
      ` (SELECT 1 FROM \`${users}\` AS u WHERE u.id = v ->> '$.user_id') THEN 'user_id'` +
      ` WHEN ${TEXT_BAD("$.component", componentMax)} THEN 'component'` +
      ` WHEN length(coalesce(v -> '$.metadata', 'null')) > ${metadataMax} THEN 'metadata'` +
      " END AS bad FROM r WHERE bad IS NOT NULL LIMIT 1",
    reasons: {
      record: "must be an object",
      id: ID_REASON,
      level: `must be one of ${levels.join(", ")}`,
      msg: `must be text of at most ${msgMax} characters`,
      ts: "must be a real date like 2026-11-25 14:03:05.123Z",
      user_id: "must be empty or an existing user's id",
      component: `must be text of at most ${componentMax} characters`,
      metadata: `must be at most ${metadataMax} bytes of JSON`,
    },
  };
}

// Only rows still in line are written, checked in the statement itself (one writer: a user's
// cancel lands wholly before or after it): a position for a pending row, 0 for a processing one.
// A row that ended or was cancelled since the dispatcher read it keeps what it has.
const POSITIONS_WRITE =
  RECORDS("$.positions") +
  " UPDATE queue SET position = CAST(r.v ->> '$[1]' AS INTEGER), updated = {:now}" +
  " FROM r WHERE queue.id = r.v ->> '$[0]' AND (queue.status = 'pending'" +
  " OR (queue.status = 'processing' AND (r.v ->> '$[1]') = 0))";

// INSERT OR IGNORE: a record whose id is there already (a retried batch) is left as it is.
const LOGS_WRITE =
  RECORDS("$.records") +
  " INSERT OR IGNORE INTO logs (id, level, msg, ts, user_id, component, metadata, created)" +
  " SELECT v ->> '$.id', v ->> '$.level', coalesce(v ->> '$.msg', '')," +
  " replace(v ->> '$.ts', 'T', ' '), coalesce(v ->> '$.user_id', '')," +
  " coalesce(v ->> '$.component', ''), coalesce(v -> '$.metadata', 'null'), {:now} FROM r";

// The refusal of the first bad value in the list, or null when all are good.
function refusal(check, text) {
  const found = new DynamicModel({ idx: 0, bad: "" });
  try {
    $app.db().newQuery(check.sql).bind({ body: text }).one(found);
  } catch (_) {
    return null; // No row: nothing is wrong.
  }
  const reason = check.reasons[found.bad] || "is not valid";
  return {
    status: 400,
    message: `Record ${found.idx} was refused (${found.bad}: ${reason}); nothing was written.`,
    data: { index: found.idx, field: found.bad, reason: reason },
  };
}

// The routes' body limit (bulk.pb.js): `toString` must be told, or it stops reading at 16 MiB
// without a word (and the JSON it returns is cut off).
const MAX_BODY = 64 << 20;

// The request body as text when it holds a JSON list under `name`; null when it does not; throws
// a 413 when it cannot be read whole (over the limit, a broken upload). The body goes to SQLite
// as it came: turning thousands of records into JavaScript objects and back would cost more
// than the write.
function body(e, name) {
  let text;
  try {
    text = toString(e.request.body, MAX_BODY + 1);
  } catch (err) {
    throw new ApiError(413, `The body could not be read whole (at most ${MAX_BODY} bytes): send fewer records per request`);
  }
  if (text.length > MAX_BODY) {
    throw new ApiError(413, `The body is over ${MAX_BODY} bytes: send fewer records per request`);
  }
  const found = new DynamicModel({ ok: false });
  try {
    $app
      .db()
      .newQuery(`SELECT 1 AS ok WHERE json_type({:body}, '$.${name}') = 'array'`)
      .bind({ body: text })
      .one(found);
  } catch (_) {
    return null; // Not JSON, or no list there.
  }
  return text;
}

// A bulk write: the list under `name` checked (400 naming the first bad record, nothing
// written), then written by one statement in one transaction; `after(text)` runs once it is in.
// `check()` builds the check from the collection's fields as they are now.
function write(e, name, check, statement, after) {
  const text = body(e, name);
  if (text === null) {
    return e.json(400, {
      status: 400,
      message: `The body must be {"${name}": [...]}.`,
      data: { index: -1, field: name, reason: "must be a list" },
    });
  }
  const refused = refusal(check(), text);
  if (refused) {
    return e.json(400, refused);
  }
  let written = 0;
  $app.runInTransaction((txApp) => {
    written = txApp.db().newQuery(statement).bind({ body: text, now: now() }).execute().rowsAffected();
  });
  if (after) {
    after(text);
  }
  return e.json(200, { written: written });
}

// PocketBase's date text for now.
function now() {
  return new Date().toISOString().replace("T", " ");
}

// Each subscribed user hears the new positions of their own rows; superusers hear all of them.
function announcePositions(text) {
  const clients = $app.subscriptionsBroker().clients();
  const listening = [];
  for (const id in clients) {
    if (clients[id].hasSubscription("fathom2loom/positions")) {
      listening.push(clients[id]);
    }
  }
  if (listening.length === 0) {
    return;
  }
  const rows = arrayOf(new DynamicModel({ id: "", user_id: "", position: 0 }));
  $app
    .db()
    .newQuery(
      "SELECT queue.id AS id, queue.user_id AS user_id, queue.position AS position FROM queue" +
        " JOIN json_each({:body}, '$.positions') AS j ON queue.id = j.value ->> '$[0]'",
    )
    .bind({ body: text })
    .all(rows);
  const all = {};
  const byUser = {};
  for (const row of rows) {
    all[row.id] = row.position;
    (byUser[row.user_id] = byUser[row.user_id] || {})[row.id] = row.position;
  }
  for (const client of listening) {
    const auth = client.get("auth");
    const mine = !auth ? null : auth.isSuperuser() ? all : byUser[auth.id];
    if (mine) {
      const message = JSON.stringify({ positions: mine });
      client.send(new SubscriptionMessage({ name: "fathom2loom/positions", data: message }));
    }
  }
}

// The active queue rows as a JSON list, with the fields the caller names (the dispatcher's,
// `queue_rows.DISPATCH_FIELDS`): each must be a field of the queue collection; null when one is
// not (the route answers 400).
function activeRows(names) {
  const queue = $app.findCollectionByNameOrId("queue");
  if (names.length === 0 || names.some((name) => !queue.fields.getByName(name))) {
    return null;
  }
  const pairs = names.map((name) => `${quoted(name)}, \`${name}\``).join(", ");
  const found = new DynamicModel({ rows: "" });
  $app
    .db()
    .newQuery(
      `SELECT coalesce(json_group_array(json_object(${pairs})), '[]') AS rows` +
        " FROM (SELECT * FROM queue WHERE status IN ('pending', 'processing') ORDER BY id)",
    )
    .one(found);
  return found.rows;
}

module.exports = {
  MAX_BODY,
  LOGS_WRITE,
  POSITIONS_WRITE,
  logsCheck,
  positionsCheck,
  activeRows,
  announcePositions,
  write,
};
