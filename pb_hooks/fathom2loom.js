// Helpers for fathom2loom's PocketBase hooks (*.pb.js beside this file). PocketBase re-compiles a
// hook's callback in pooled VMs, so top-level names of a hooks file are not visible inside it:
// each callback loads this module with require(`${__hooks}/fathom2loom.js`).

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// PB_ENCRYPTION_KEY (64 hex characters, or base64 / base64url of 32 bytes) as lowercase hex, or
// "" when it is not set or malformed.
function keyHex() {
  const raw = ($os.getenv("PB_ENCRYPTION_KEY") || "").trim();
  if (/^[0-9a-fA-F]{64}$/.test(raw)) {
    return raw.toLowerCase();
  }
  const text = raw.replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
  let bits = 0;
  let value = 0;
  let hex = "";
  for (const char of text) {
    const index = B64.indexOf(char);
    if (index < 0) {
      return "";
    }
    value = (value << 6) | index;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      hex += ((value >> bits) & 0xff).toString(16).padStart(2, "0");
    }
  }
  return hex.length === 64 ? hex : "";
}

// Format f2l2 (docs/api-key-encryption.md): AES-256-GCM through $security.encrypt, under a key
// derived from PB_ENCRYPTION_KEY; the plaintext names its user and field, so a value moved to
// another record or field does not decrypt (the workers check both).
function encrypt(plain, userId, field) {
  const hex = keyHex();
  if (!hex) {
    throw new ApiError(
      503,
      "The server cannot store API keys now: PB_ENCRYPTION_KEY is not set for PocketBase.",
    );
  }
  const aesKey = $security.hs256("fathom2loom f2l2", hex).slice(0, 32);
  const kid = $security.sha256("fathom2loom f2l2 key id:" + hex).slice(0, 8);
  const sealed = $security.encrypt(JSON.stringify({ u: userId, f: field, k: plain }), aesKey);
  return "f2l2." + kid + "." + sealed;
}

function isCiphertext(value) {
  return /^f2l[12]\.[0-9a-f]{8}\./.test(value);
}

// What a user may see of a key: its last four characters.
function hint(plain) {
  return plain.length >= 12 ? "…" + plain.slice(-4) : "…";
}

module.exports = { encrypt, hint, isCiphertext, keyHex };
