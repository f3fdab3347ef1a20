// What users may put into PocketBase through its API (issue 20), for the *.pb.js hooks beside
// this file: a meeting id that is a Fathom recording id, and the operator's limits, read from
// PocketBase's environment (README, "Users"):
//
//   USER_MAX_ACTIVE_TRANSFERS  queue rows one account may have pending or processing (200)
//   USER_LOG_MAX_BYTES         bytes of msg + metadata in one log record a user writes (4096)
//   USER_LOGS_PER_MINUTE       log records one account may write a minute (30)
//   REQUIRE_VERIFIED_USERS     only accounts with a verified e-mail may save keys and queue (false)
//
// A malformed value falls back to its default here and is reported by `settings().errors`,
// which `fathom2loom bootstrap` reads (GET /api/fathom2loom/hooks) and stops on.

const DEFAULTS = {
  USER_MAX_ACTIVE_TRANSFERS: 200,
  USER_LOG_MAX_BYTES: 4096,
  USER_LOGS_PER_MINUTE: 30,
};
const MAX = 1000000;
const FLAGS = { "": false, false: false, "0": false, no: false, true: true, "1": true, yes: true };

function settings() {
  const errors = [];
  const limits = {};
  for (const name of Object.keys(DEFAULTS)) {
    const raw = ($os.getenv(name) || "").trim();
    const value = /^[0-9]{1,7}$/.test(raw) ? parseInt(raw, 10) : NaN;
    if (raw === "") {
      limits[name] = DEFAULTS[name];
    } else if (value >= 1 && value <= MAX) {
      limits[name] = value;
    } else {
      limits[name] = DEFAULTS[name];
      errors.push(`${name} is invalid: must be a whole number from 1 to ${MAX}`);
    }
  }
  const flag = ($os.getenv("REQUIRE_VERIFIED_USERS") || "").trim().toLowerCase();
  let requireVerified = FLAGS[flag];
  if (requireVerified === undefined) {
    requireVerified = false;
    errors.push("REQUIRE_VERIFIED_USERS is invalid: must be true or false");
  }
  return { limits: limits, requireVerified: requireVerified, errors: errors };
}

// A Fathom recording id as stored: 1 to 18 ASCII digits, no leading zeros; null when the value
// is anything else (other scripts' digits, signs, decimals, blanks inside). The same rule as
// fathom2loom/meeting_ids.py.
function canonicalMeetingId(value) {
  if (typeof value === "number") {
    // A JSON number reaches the hooks as a float64: past 2^53 its digits are not what was sent.
    return Number.isSafeInteger(value) && value >= 0 ? String(value) : null;
  }
  const text = String(value === null || value === undefined ? "" : value).replace(
    /^[ \t\r\n]+|[ \t\r\n]+$/g,
    "",
  );
  if (!/^[0-9]{1,18}$/.test(text)) {
    return null;
  }
  return text.replace(/^0+(?=[0-9])/, "");
}

// The 400 a bad meeting id gets (thrown, so a batch request rolls back), shaped as PocketBase's
// own field errors.
function refuseMeetingId(value) {
  const shown = JSON.stringify(String(value).slice(0, 40));
  let message = `The meeting id ${shown} is not a Fathom recording id (1 to 18 digits 0-9)`;
  if (typeof value === "number" && Math.abs(value) >= 2 ** 53) {
    message =
      `The meeting id came as a JSON number past 2^53 (about ${value}), whose last digits are` +
      ' lost on the way: send it as a string of 1 to 18 digits 0-9 ("1004")';
  } else if (typeof value === "number") {
    message =
      `The meeting id ${value} (a JSON number) is not a Fathom recording id` +
      " (1 to 18 digits 0-9)";
  }
  throw new BadRequestError(message, {
    meeting_id: new ValidationError("validation_not_a_recording_id", message),
  });
}

// A key goes into an HTTP header, where only visible ASCII belongs: a line break, a blank inside
// or letters of another script (a mis-paste) can never work. Throws a 400 naming the field, never
// the key. The same rule as fathom2loom/providers/key_text.py, which never sends such a key.
function requireKeyText(field, value) {
  if (/^[\x21-\x7e]{1,1024}$/.test(value)) {
    return;
  }
  const provider = field === "encrypted_fathom" ? "Fathom" : "Loom";
  const message =
    `The ${provider} key holds characters no API key has (spaces, line breaks, letters outside` +
    ` ASCII) or is over 1024 characters long: copy it again from ${provider}'s settings`;
  throw new BadRequestError(message, {
    [field]: new ValidationError("validation_not_a_key", message),
  });
}

// What PocketBase would misread in a create or update, refused before it does. PocketBase casts
// a body to the fields' types before any record hook: a JSON number past 2^53 is by then a
// float's digits, an unreadable date is "". So the bodies are read as sent: a records route's
// own, in a middleware (queue.pb.js's routerUse), and each request of a batch, in onBatchRequest
// (where PocketBase has already held the batch body to its size limit).
const RECORDS = /^\/api\/collections\/([^/?]+)\/records(?:\/[^/?]*)?\/?(?:\?.*)?$/;

// "queue" or "user_meta" when `url` is a records route of one (named or by id, in any case, as
// PocketBase finds collections), else null.
function checkedCollection(url) {
  const parts = RECORDS.exec(String(url));
  if (!parts) {
    return null;
  }
  try {
    const name = $app.findCachedCollectionByNameOrId(parts[1]).name;
    return name === "queue" || name === "user_meta" ? name : null;
  } catch (_) {
    return null; // No such collection (PocketBase answers 404), or no migrations applied yet.
  }
}

// `collection`: `checkedCollection` of the request's path, which the middleware has at hand.
function refuseMisreadValues(e, collection) {
  if (collection === null) {
    return;
  }
  let body = null;
  try {
    body = e.requestInfo().body;
  } catch (_) {
    return; // A body PocketBase cannot read: its own handler says so.
  }
  // Form fields are text; PocketBase makes a number of one only when it prints back the same.
  const json = (e.request.header.get("Content-Type") || "").indexOf("json") >= 0;
  refuseMisreadBody(collection, body, json);
}

function refuseMisreadBatch(e) {
  for (const request of e.batch) {
    const collection = request ? checkedCollection(request.url) : null;
    if (collection !== null) {
      refuseMisreadBody(collection, request.body, true);
    }
  }
}

function refuseMisreadBody(collection, body, json) {
  if (body === null || typeof body !== "object") {
    return;
  }
  if (collection === "queue") {
    const sent = body.meeting_id;
    if (json && typeof sent === "number" && canonicalMeetingId(sent) === null) {
      refuseMeetingId(sent); // PocketBase would store the float's digits (…680 for …678).
    }
    return;
  }
  for (const field of $app.findCachedCollectionByNameOrId(collection).fields) {
    const sent = body[field.getName()];
    if (field.type() === "date" && sent !== undefined && sent !== null && sent !== "") {
      refuseUnreadableDate(field.getName(), sent);
    }
  }
}

// PocketBase stores a date it cannot read as "" without a word: `auto_move_since: "banana"` (or
// year 1, or 30 February) would quietly clear the user's date. PocketBase's own parser decides
// (`DateTime` is the date field's type), so what it refuses is exactly what it would drop.
function refuseUnreadableDate(name, sent) {
  let readable = false;
  if (typeof sent === "string") {
    try {
      readable = !new DateTime(sent).isZero();
    } catch (_) {}
  }
  if (!readable) {
    const shown = JSON.stringify(String(sent).slice(0, 40));
    const message =
      `The ${name} given, ${shown}, is not a date PocketBase can read: use a date such as` +
      " 2026-11-01 or 2026-11-01 09:30:00Z";
    throw new BadRequestError(message, {
      [name]: new ValidationError("validation_not_a_date", message),
    });
  }
}

// Throws a 403 when the operator lets only verified accounts do `what` and this one is not.
function requireVerified(e, what) {
  if (settings().requireVerified && !(e.auth && e.auth.verified())) {
    throw new ForbiddenError(
      `Verify your e-mail address first: on this server only verified accounts may ${what}`,
    );
  }
}

// The service's check of a saved key said it cannot work (fathom2loom/key_check.py's verdicts):
// "… rejected the key …", "… refused the key …", "… key cannot be decrypted …".
const BAD_KEY =
  /^(Fathom|Loom) (rejected the key|refused the key|key cannot be used|key cannot be decrypted)/;

// Throws a 400 unless the user has both keys saved and neither is known not to work: a row that
// can only fail would take a worker's turn for nothing.
function requireWorkingKeys(e) {
  let keys = null;
  try {
    keys = e.app.findFirstRecordByFilter("api_keys", "user_id = {:user}", { user: e.auth.id });
  } catch (_) {}
  if (!keys || !keys.getString("encrypted_fathom") || !keys.getString("encrypted_loom")) {
    throw new BadRequestError("Save your Fathom and Loom keys before you queue transfers");
  }
  for (const field of ["fathom_check", "loom_check"]) {
    const check = keys.getString(field);
    if (BAD_KEY.test(check)) {
      throw new BadRequestError(`Your saved key cannot be used (${check})`);
    }
  }
}

// Runs `next` (the write) in one transaction with the count of the user's active rows, so that
// concurrent requests cannot pass the cap together; throws a 429 when the write would exceed it.
function withinActiveCap(e, userId, next) {
  const cap = settings().limits.USER_MAX_ACTIVE_TRANSFERS;
  e.app.runInTransaction((txApp) => {
    const found = new DynamicModel({ n: 0 });
    txApp
      .db()
      .newQuery(
        "SELECT count(*) AS n FROM queue WHERE user_id = {:user}" +
          " AND status IN ('pending', 'processing')",
      )
      .bind({ user: userId })
      .one(found);
    if (found.n >= cap) {
      throw new TooManyRequestsError(
        `You have ${found.n} transfers queued or running, the most one account may have` +
          " (USER_MAX_ACTIVE_TRANSFERS): queue more once some have finished",
      );
    }
    e.app = txApp; // The write joins this transaction.
    next();
  });
}

// A row a user makes active, new or retried: a verified account where that is asked for, keys
// that can work, the server's time as its place in line, and room under the user's cap.
function admitUsersRow(e) {
  requireVerified(e, "queue transfers");
  requireWorkingKeys(e);
  e.record.set("queued_at", new Date().toISOString().replace("T", " "));
  withinActiveCap(e, e.auth.id, () => e.next());
}

// UTF-8 bytes of a string.
function utf8Length(text) {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) {
      bytes += 1;
    } else if (code < 0x800) {
      bytes += 2;
    } else if (code >= 0xd800 && code < 0xdc00) {
      bytes += 4;
      i++;
    } else {
      bytes += 3;
    }
  }
  return bytes;
}

// One log record of the user's own: within the size, and within the rate (a token bucket per
// account in PocketBase's shared memory store, taken under its lock). Returns a function that
// gives the token back, for a record PocketBase then refuses (a bad level, say): only records
// written count against the rate.
function checkUserLog(e) {
  const limits = settings().limits;
  const raw = e.record.get("metadata");
  const metadata = raw ? toString(raw) : "";
  const metaBytes = metadata === "null" ? 0 : utf8Length(metadata); // (an unset JSON field)
  const size = utf8Length(e.record.getString("msg")) + metaBytes;
  if (size > limits.USER_LOG_MAX_BYTES) {
    throw new BadRequestError(
      `A log record may hold at most ${limits.USER_LOG_MAX_BYTES} bytes of msg and metadata` +
        ` (USER_LOG_MAX_BYTES); this one has ${size}: shorten it`,
    );
  }
  const perMinute = limits.USER_LOGS_PER_MINUTE;
  const bucket = "fathom2loom:user-logs:" + e.auth.id;
  const now = Date.now();
  let allowed = false;
  $app.store().setFunc(bucket, (old) => {
    const tokens = old
      ? Math.min(perMinute, old.tokens + ((now - old.at) * perMinute) / 60000)
      : perMinute;
    allowed = tokens >= 1;
    return { tokens: allowed ? tokens - 1 : tokens, at: now };
  });
  if (!allowed) {
    throw new TooManyRequestsError(
      `At most ${perMinute} log records a minute per account (USER_LOGS_PER_MINUTE):` +
        " wait a moment, then write again",
    );
  }
  return () => {
    $app.store().setFunc(bucket, (old) =>
      old ? { tokens: Math.min(perMinute, old.tokens + 1), at: old.at } : old,
    );
  };
}

module.exports = {
  admitUsersRow,
  checkedCollection,
  canonicalMeetingId,
  checkUserLog,
  refuseMeetingId,
  refuseMisreadBatch,
  refuseMisreadValues,
  requireKeyText,
  requireVerified,
  requireWorkingKeys,
  settings,
  withinActiveCap,
};
