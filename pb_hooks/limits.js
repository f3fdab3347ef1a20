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
    message = `The meeting id ${value} (a JSON number) is not a Fathom recording id (1 to 18 digits 0-9)`;
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
  throw new BadRequestError(message, { [field]: new ValidationError("validation_not_a_key", message) });
}

// A meeting id sent as a JSON number past 2^53 (123456789012345678) is a float64 here, and by the
// time the record hooks see it, the text of that float (…680): a recording nobody has. Only a
// middleware (queue.pb.js's routerUse) sees the number as sent: this refuses one, for every
// caller, in a record create or in a batch request's creates.
function refuseInexactMeetingIds(e) {
  const path = e.request.url.path;
  const creates =
    /^\/api\/collections\/[^/]+\/records\/?$/.test(path) ? [{ url: path, body: e.requestInfo().body }]
    : path === "/api/batch" ? e.requestInfo().body.requests
    : null;
  if (!Array.isArray(creates)) {
    return;
  }
  const queue = $app.findCollectionByNameOrId("queue");
  for (const request of creates) {
    const parts = /^\/api\/collections\/([^/?]+)\/records\/?(\?.*)?$/.exec(String(request && request.url));
    const body = request && request.body;
    if (!parts || (parts[1] !== "queue" && parts[1] !== queue.id) || !body) {
      continue;
    }
    const sent = body.meeting_id;
    if (typeof sent === "number" && canonicalMeetingId(sent) === null) {
      refuseMeetingId(sent);
    }
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
const BAD_KEY = /^(Fathom|Loom) (rejected the key|refused the key|key cannot be used|key cannot be decrypted)/;

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
// account in PocketBase's shared memory store, taken under its lock).
function checkUserLog(e) {
  const limits = settings().limits;
  const metadata = e.record.get("metadata");
  const size = utf8Length(e.record.getString("msg")) + (metadata ? utf8Length(toString(metadata)) : 0);
  if (size > limits.USER_LOG_MAX_BYTES) {
    throw new BadRequestError(
      `A log record may hold at most ${limits.USER_LOG_MAX_BYTES} bytes of msg and metadata` +
        ` (USER_LOG_MAX_BYTES); this one has ${size}: shorten it`,
    );
  }
  const perMinute = limits.USER_LOGS_PER_MINUTE;
  const now = Date.now();
  let allowed = false;
  $app.store().setFunc("fathom2loom:user-logs:" + e.auth.id, (old) => {
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
}

module.exports = {
  admitUsersRow,
  canonicalMeetingId,
  checkUserLog,
  refuseInexactMeetingIds,
  refuseMeetingId,
  requireKeyText,
  requireVerified,
  requireWorkingKeys,
  settings,
  withinActiveCap,
};
