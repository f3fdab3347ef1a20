/// <reference path="../pb_data/types.d.ts" />
// A user may write `logs` records (the seed allows it), but only about themselves and marked as
// theirs, so nobody can forge a record that reads like the service's own (issue 14); and only
// small ones, a few a minute (USER_LOG_MAX_BYTES, USER_LOGS_PER_MINUTE: issue 20).
onRecordCreateRequest((e) => {
  if (e.hasSuperuserAuth()) {
    return e.next();
  }
  const giveBack = require(`${__hooks}/limits.js`).checkUserLog(e);
  e.record.set("user_id", e.auth.id);
  e.record.set("component", ("user:" + e.record.getString("component")).slice(0, 100));
  let meta = e.record.get("metadata");
  meta = meta ? JSON.parse(toString(meta)) : null;
  if (meta === null || typeof meta !== "object" || Array.isArray(meta)) {
    meta = meta === null ? {} : { value: meta };
  }
  meta.source = "user";
  e.record.set("metadata", meta);
  try {
    e.next(); // PocketBase validates and saves here; a record it refuses costs no token.
  } catch (err) {
    if (e.record.isNew()) {
      giveBack(); // (A record saved before the answer failed keeps its cost.)
    }
    throw err;
  }
}, "logs");
