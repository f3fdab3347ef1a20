/// <reference path="../pb_data/types.d.ts" />
// The web app's routes (pb_public/, issue 21), on PocketBase's own origin:
//
//   GET /api/fathom2loom/policy    anyone: may one sign up here, must e-mails be verified, and the
//                                  limits on an account (pb_hooks/limits.js)
//   GET /api/fathom2loom/meetings  a signed-in user's Fathom meetings, newest first, each with
//                                  where it stands (moved, queued, failed, cancelled, not moved);
//                                  `since` (a date) and `limit` (1-500, default 50)
//
// The meetings need the user's Fathom key, which only the service can decrypt and whose rate
// budget lives in Redis: PocketBase asks the service's HTTP process (FATHOM2LOOM_SERVICE_URL,
// fathom2loom/meetings_api.py) on the user's behalf, with a token derived from PB_ENCRYPTION_KEY.

routerAdd("GET", "/api/fathom2loom/policy", (e) => {
  const limits = require(`${__hooks}/limits.js`).settings();
  let signup = false;
  try {
    signup = $app.findCollectionByNameOrId("users").createRule !== null;
  } catch (_) {}
  return e.json(200, {
    signup: signup,
    require_verified: limits.requireVerified,
    limits: limits.limits,
  });
});

routerAdd(
  "GET",
  "/api/fathom2loom/meetings",
  (e) => {
    const f2l = require(`${__hooks}/fathom2loom.js`);
    const refuse = (status, message) => e.json(status, { status: status, message: message, data: {} });
    const base = ($os.getenv("FATHOM2LOOM_SERVICE_URL") || "").trim().replace(/\/+$/, "");
    const secret = f2l.keyHex();
    if (!base || !secret) {
      return refuse(
        503,
        "Listing meetings is not set up on this server (FATHOM2LOOM_SERVICE_URL and" +
          " PB_ENCRYPTION_KEY in PocketBase's environment): ask the operator",
      );
    }
    const query = [];
    for (const name of ["since", "limit"]) {
      const value = e.request.url.query().get(name);
      if (value) {
        query.push(`${name}=${encodeURIComponent(value.slice(0, 40))}`);
      }
    }
    let answer;
    try {
      answer = $http.send({
        url: `${base}/internal/meetings/${e.auth.id}` + (query.length ? "?" + query.join("&") : ""),
        method: "GET",
        headers: {
          Authorization:
            "Bearer " + $security.hs256("fathom2loom internal api:" + e.auth.id, secret),
        },
        timeout: 60,
      });
    } catch (_) {
      return refuse(503, "The service did not answer: try again in a moment");
    }
    const body = answer.json;
    if (!body || typeof body !== "object") {
      return refuse(502, "The service answered something unreadable: try again in a moment");
    }
    if (answer.statusCode === 401) {
      return refuse(
        503,
        "The service refused PocketBase's token (PB_ENCRYPTION_KEY differs between them): ask" +
          " the operator",
      );
    }
    if (answer.statusCode !== 200) {
      return refuse(answer.statusCode, String(body.message || "The meetings could not be listed"));
    }
    return e.json(200, {
      items: Array.isArray(body.items) ? body.items : [],
      more: body.more === true,
    });
  },
  $apis.requireAuth("users"),
);
