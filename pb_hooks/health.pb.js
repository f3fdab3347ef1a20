/// <reference path="../pb_data/types.d.ts" />
// For `fathom2loom bootstrap`: the hooks are loaded, and whether they can encrypt users' keys.
routerAdd(
  "GET",
  "/api/fathom2loom/hooks",
  (e) => {
    const f2l = require(`${__hooks}/fathom2loom.js`);
    return e.json(200, { version: 1, encryption: f2l.keyHex() !== "" });
  },
  $apis.requireSuperuserAuth(),
);
