// Validation and helpers for pb_hooks/bulk.pb.js. Raw SQL checks nothing, so every value is
// checked first as its collection field would check it (ids, selects, dates, relations, ranges,
// sizes), by SQLite itself over the JSON list: one query, at native speed, stopping at the first
// bad record (json_each walks the list in order) and naming it and its field.

const REASONS = {
  positions: "must be an [id, position] pair",
  id: "must be 15 characters a-z and 0-9",
  position: "must be a whole number, 0 or more",
  record: "must be an object",
  level: "must be one of trace, debug, info, warn, error, fatal",
  msg: "must be text of at most 20000 characters",
  ts: "must be a date like 2026-11-25 14:03:05.123Z",
  user_id: "must be empty or an existing user's id",
  component: "must be text of at most 100 characters",
  metadata: "must be at most 200000 bytes of JSON",
};

const ID_BAD = (value) =>
  `(json_type(${value}) IS NOT 'text' OR length(json_extract(${value})) != 15` +
  ` OR json_extract(${value}) GLOB '*[^a-z0-9]*')`;

const POSITIONS_CHECK =
  "SELECT CAST(j.key AS INTEGER) AS idx, CASE" +
  " WHEN json_type(j.value) != 'array' OR json_array_length(j.value) != 2 THEN 'positions'" +
  ` WHEN ${ID_BAD("j.value, '$[0]'")} THEN 'id'` +
  " WHEN json_type(j.value, '$[1]') IS NOT 'integer' OR json_extract(j.value, '$[1]') < 0" +
  " THEN 'position' END AS bad FROM json_each({:data}) AS j" +
  " WHERE bad IS NOT NULL LIMIT 1";

const TEXT_OR_ABSENT = (path, max) =>
  `(json_type(j.value, '${path}') NOT IN ('text', 'null') OR` +
  ` length(coalesce(json_extract(j.value, '${path}'), '')) > ${max})`;

const LOGS_CHECK =
  "SELECT CAST(j.key AS INTEGER) AS idx, CASE" +
  " WHEN json_type(j.value) != 'object' THEN 'record'" +
  ` WHEN ${ID_BAD("j.value, '$.id'")} THEN 'id'` +
  " WHEN json_type(j.value, '$.level') IS NOT 'text' OR json_extract(j.value, '$.level')" +
  " NOT IN ('trace', 'debug', 'info', 'warn', 'error', 'fatal') THEN 'level'" +
  ` WHEN ${TEXT_OR_ABSENT("$.msg", 20000)} THEN 'msg'` +
  " WHEN json_type(j.value, '$.ts') IS NOT 'text' OR NOT json_extract(j.value, '$.ts') GLOB" +
  " '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9][ T][0-2][0-9]:[0-5][0-9]:[0-5][0-9]*Z'" +
  " OR julianday(substr(json_extract(j.value, '$.ts'), 1, 19)) IS NULL THEN 'ts'" +
  ` WHEN ${TEXT_OR_ABSENT("$.user_id", 15)} THEN 'user_id'` +
  " WHEN coalesce(json_extract(j.value, '$.user_id'), '') != '' AND NOT EXISTS" +
  " (SELECT 1 FROM users WHERE users.id = json_extract(j.value, '$.user_id')) THEN 'user_id'" +
  ` WHEN ${TEXT_OR_ABSENT("$.component", 100)} THEN 'component'` +
  " WHEN length(coalesce(json_extract(j.value, '$.metadata'), 'null')) > 200000" +
  " THEN 'metadata' END AS bad FROM json_each({:data}) AS j" +
  " WHERE bad IS NOT NULL LIMIT 1";

// The refusal of the first bad value in `data` (a JSON list), or null when all are good.
function refusal(check, data) {
  const found = new DynamicModel({ idx: 0, bad: "" });
  try {
    $app.db().newQuery(check).bind({ data: data }).one(found);
  } catch (_) {
    return null; // No row: nothing is wrong.
  }
  const reason = REASONS[found.bad] || "is not valid";
  return {
    status: 400,
    message: `Record ${found.idx} was refused (${found.bad}: ${reason}); nothing was written.`,
    data: { index: found.idx, field: found.bad, reason: reason },
  };
}

// The JSON list under `name` in the request body, as text, or null when there is none. The body
// is handed to SQLite as it came: turning thousands of records into JavaScript objects and back
// would cost more than the write.
function list(e, name) {
  const body = toString(e.request.body);
  const found = new DynamicModel({ list: "" });
  try {
    $app
      .db()
      .newQuery(`SELECT json_extract({:body}, '$.${name}') AS list WHERE json_type({:body}, '$.${name}') = 'array'`)
      .bind({ body: body })
      .one(found);
  } catch (_) {
    return null;
  }
  return found.list;
}

function count(data) {
  const found = new DynamicModel({ n: 0 });
  $app.db().newQuery("SELECT json_array_length({:data}) AS n").bind({ data: data }).one(found);
  return found.n;
}

function listRefusal(name) {
  return { status: 400, message: `${name} must be a list.`, data: { index: -1, field: name } };
}

// PocketBase's date text for now.
function now() {
  return new Date().toISOString().replace("T", " ");
}

// Each subscribed user hears the new positions of their own rows; superusers hear all of them.
function announcePositions(data) {
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
        " JOIN json_each({:data}) AS j ON queue.id = json_extract(j.value, '$[0]')",
    )
    .bind({ data: data })
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

module.exports = {
  LOGS_CHECK,
  POSITIONS_CHECK,
  announcePositions,
  count,
  list,
  listRefusal,
  now,
  refusal,
};
