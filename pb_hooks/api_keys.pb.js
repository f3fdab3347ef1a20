/// <reference path="../pb_data/types.d.ts" />
// Users' keys are encrypted before PocketBase stores them, and never shown back (issue 14).
//
// A user saves their own api_keys record through the ordinary API with the plain keys in
// `encrypted_fathom` / `encrypted_loom`; this hook replaces each with a ciphertext the workers
// decrypt (format f2l2, pb_hooks/fathom2loom.js), keeps a masked hint, and clears the last check
// so the service tries the new key at once. Superusers (the operator's `fathom2loom keys set`)
// may store ciphertexts they made themselves (f2l1); anything else they send is encrypted too.
// Reading the record back as a user shows the hints and the checks, never the values.
// With REQUIRE_VERIFIED_USERS on, only accounts with a verified e-mail may save keys (issue 20).

onRecordCreateRequest((e) => {
  const f2l = require(`${__hooks}/fathom2loom.js`);
  const limits = require(`${__hooks}/limits.js`);
  if (!e.hasSuperuserAuth()) {
    limits.requireVerified(e, "save API keys");
  }
  const sent = e.requestInfo().body;
  for (const [field, hintField, checkField] of [
    ["encrypted_fathom", "fathom_hint", "fathom_check"],
    ["encrypted_loom", "loom_hint", "loom_check"],
  ]) {
    const value = e.record.getString(field).trim();
    if (sent[field] === undefined || !value) {
      continue;
    }
    if (e.hasSuperuserAuth() && f2l.isCiphertext(value)) {
      e.record.set(hintField, "");
    } else {
      limits.requireKeyText(field, value);
      e.record.set(field, f2l.encrypt(value, e.record.getString("user_id"), field));
      e.record.set(hintField, f2l.hint(value));
    }
    e.record.set(checkField, "checking…");
    e.record.set("checked_for", "");
  }
  e.next();
}, "api_keys");

onRecordUpdateRequest((e) => {
  const f2l = require(`${__hooks}/fathom2loom.js`);
  const limits = require(`${__hooks}/limits.js`);
  if (!e.hasSuperuserAuth()) {
    limits.requireVerified(e, "save API keys");
  }
  const sent = e.requestInfo().body;
  for (const [field, hintField, checkField] of [
    ["encrypted_fathom", "fathom_hint", "fathom_check"],
    ["encrypted_loom", "loom_hint", "loom_check"],
  ]) {
    if (sent[field] === undefined) {
      continue;
    }
    const value = e.record.getString(field).trim();
    if (!value) {
      e.record.set(hintField, "");
      e.record.set(checkField, "");
    } else if (e.hasSuperuserAuth() && f2l.isCiphertext(value)) {
      e.record.set(checkField, "checking…");
    } else {
      limits.requireKeyText(field, value);
      e.record.set(field, f2l.encrypt(value, e.record.getString("user_id"), field));
      e.record.set(hintField, f2l.hint(value));
      e.record.set(checkField, "checking…");
    }
    e.record.set("checked_for", "");
  }
  e.next();
}, "api_keys");

// Users never read the ciphertexts back (lists, views, write responses, realtime events).
onRecordEnrich((e) => {
  const auth = e.requestInfo.auth;
  if (!auth || !auth.isSuperuser()) {
    e.record.hide("encrypted_fathom", "encrypted_loom", "checked_for");
  }
  e.next();
}, "api_keys");
