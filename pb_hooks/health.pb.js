/// <reference path="../pb_data/types.d.ts" />
// For `fathom2loom bootstrap`: the hooks are loaded, whether they can encrypt users' keys, and
// the limits on users they apply (pb_hooks/limits.js), with any malformed setting named.
routerAdd(
  "GET",
  "/api/fathom2loom/hooks",
  (e) => {
    const f2l = require(`${__hooks}/fathom2loom.js`);
    const limits = require(`${__hooks}/limits.js`).settings();
    return e.json(200, {
      version: 2,
      encryption: f2l.keyHex() !== "",
      limits: limits.limits,
      require_verified: limits.requireVerified,
      errors: limits.errors,
    });
  },
  $apis.requireSuperuserAuth(),
);
