/// <reference path="../pb_data/types.d.ts" />
// A user may write `logs` records (the seed allows it), but only about themselves and marked as
// theirs, so nobody can forge a record that reads like the service's own (issue 14).
onRecordCreateRequest((e) => {
  if (!e.hasSuperuserAuth()) {
    e.record.set("user_id", e.auth.id);
    e.record.set("component", ("user:" + e.record.getString("component")).slice(0, 100));
    let meta = e.record.get("metadata");
    meta = meta ? JSON.parse(toString(meta)) : null;
    if (meta === null || typeof meta !== "object" || Array.isArray(meta)) {
      meta = meta === null ? {} : { value: meta };
    }
    meta.source = "user";
    e.record.set("metadata", meta);
  }
  e.next();
}, "logs");
