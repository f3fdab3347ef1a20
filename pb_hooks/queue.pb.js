/// <reference path="../pb_data/types.d.ts" />
// The queue, as users change it through the API (issues 14 and 20).

// Refusals that say what happened. PocketBase checks a collection's rules before any record
// hook and answers a refused update with a bare 404; this middleware runs first and, for the
// moves a user may try on their own rows, says why they cannot be made.
//
// It also refuses, in the queue and user_meta, values PocketBase would read as something else (a
// meeting id past 2^53, an unreadable date): only a middleware sees them as sent. One middleware
// for both, as each costs ~0.3-0.5 ms on every request.
routerUse((e) => {
  const method = e.request.method;
  if (method !== "PATCH" && method !== "POST") {
    return e.next();
  }
  const limits = require(`${__hooks}/limits.js`);
  const collection = limits.checkedCollection(e.request.url.path);
  limits.refuseMisreadValues(e, collection);
  if (collection !== "queue") {
    return e.next();
  }
  if (!e.auth || e.auth.isSuperuser()) {
    return e.next();
  }
  const body = e.requestInfo().body;
  const refuse = (message) => e.json(400, { status: 400, message: message, data: {} });
  const activeRow = (meeting) => {
    try {
      const found = $app.findRecordsByFilter(
        "queue",
        "user_id = {:user} && meeting_id = {:meeting} && (status = 'pending' || status = 'processing')",
        "",
        1,
        0,
        { user: e.auth.id, meeting: meeting },
      );
      return found.length > 0 ? found[0] : null;
    } catch (_) {
      return null;
    }
  };
  if (method === "POST") {
    const meeting = limits.canonicalMeetingId(body.meeting_id);
    if (meeting === null) {
      return e.next(); // Missing or no recording id: the record hook below says which.
    }
    const active = activeRow(meeting);
    if (active) {
      return refuse(`Meeting ${meeting} is already queued (row ${active.id}): wait for it or cancel it`);
    }
    return e.next();
  }
  let row = null;
  try {
    row = $app.findRecordById("queue", e.request.pathValue("id"));
  } catch (_) {}
  if (!row || row.getString("user_id") !== e.auth.id) {
    return e.next(); // Not theirs: PocketBase's 404 says no more than it should.
  }
  const now = row.getString("status");
  const wanted = body.status;
  if (wanted === "cancelled" && now !== "pending" && now !== "processing") {
    return refuse(`This transfer is ${now}: only a pending or processing one can be cancelled`);
  }
  if (wanted === "pending" && now !== "failed") {
    return refuse(`This transfer is ${now}: only a failed one can be retried`);
  }
  if (wanted === "pending") {
    const active = activeRow(row.getString("meeting_id"));
    if (active) {
      return refuse(`This meeting is queued again already (row ${active.id}): follow that one`);
    }
  }
  if (wanted !== undefined && wanted !== "cancelled" && wanted !== "pending") {
    return refuse(`A transfer's status can only be set to cancelled or pending, not ${wanted}`);
  }
  return e.next();
});

// The same for each request of a batch, read here: after PocketBase held the batch body to its size
// limit, before any of its requests runs.
onBatchRequest((e) => {
  require(`${__hooks}/limits.js`).refuseMisreadBatch(e);
  e.next();
});

// Every new row, whoever makes it and however (records API, batch): its meeting id is a Fathom
// recording id, stored canonical (one spelling per recording, so the one-active-row index holds).
// A user's row also gets the server's time as `queued_at` (it sets the order of the line), may
// need a verified account, needs both keys saved and not known to fail, and counts against the
// user's cap of active rows.
onRecordCreateRequest((e) => {
  const limits = require(`${__hooks}/limits.js`);
  const given = e.record.getString("meeting_id");
  if (given !== "") {
    // (An empty one is left to PocketBase's own check, which names every missing field.)
    const meeting = limits.canonicalMeetingId(given);
    if (meeting === null) {
      limits.refuseMeetingId(given);
    }
    e.record.set("meeting_id", meeting);
  }
  if (e.hasSuperuserAuth()) {
    return e.next();
  }
  limits.admitUsersRow(e);
}, "queue");

// A user's retry (failed → pending) makes an active row again: the same cap and account rule,
// and the server's time as `queued_at` (a row retried goes to the back of the line, not ahead of
// everything queued since it first was).
onRecordUpdateRequest((e) => {
  if (e.hasSuperuserAuth() || e.record.getString("status") !== "pending") {
    return e.next();
  }
  if (e.record.original().getString("status") === "pending") {
    return e.next();
  }
  const limits = require(`${__hooks}/limits.js`);
  limits.admitUsersRow(e);
}, "queue");

// A cancelled row leaves the line at once (position 0), not at the dispatcher's next sync.
// A model hook, not a request hook: on PocketBase 0.40 a request hook costs ~1.7 ms for every
// record of a batch request, a model hook next to nothing (bench/sync_queue.py's baseline).
onRecordUpdate((e) => {
  if (e.record.getString("status") === "cancelled") {
    e.record.set("position", 0);
  }
  e.next();
}, "queue");
