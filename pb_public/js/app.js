// fathom2loom's web app: one page on PocketBase's own origin (no CORS, no build step), using the
// PocketBase JS SDK and its realtime. Signed out: sign in or up. Signed in: keys, auto-move,
// meetings, transfers, each kept live by its own module.
import { policy, showSignUp, wireAuthForms, wireVerification } from "./auth.js";
import { startAutoMove } from "./automove.js";
import { byId, notice, pb } from "./client.js";
import { startKeys } from "./keys.js";
import { Meetings } from "./meetings.js";
import { Queue } from "./queue.js";

let session = null; // what the signed-in view started, to stop at sign-out
let rules = { signup: true, require_verified: false };

function show(signedIn) {
  byId("signed-out").hidden = signedIn;
  byId("signed-in").hidden = !signedIn;
  byId("account").hidden = !signedIn;
}

async function signedIn(user) {
  byId("who").textContent = user.email;
  show(true);
  wireVerification(rules.require_verified);
  const queue = new Queue(user);
  const meetings = new Meetings(user, queue);
  meetings.start();
  session = {
    user: user.id,
    stops: [startKeys(user), startAutoMove(user), () => meetings.stop(), () => queue.stop()],
  };
  try {
    await queue.start();
  } catch (err) {
    notice("Your transfers could not be loaded: reload the page to try again.");
  }
}

function signedOut() {
  if (session) {
    session.stops.forEach((stop) => stop());
    session = null;
  }
  pb.realtime.unsubscribe().catch(() => {});
  notice("");
  byId("sign-in-error").textContent = "";
  byId("sign-up-error").textContent = "";
  show(false);
  showSignUp(rules.signup);
}

async function follow() {
  const user = pb.authStore.isValid ? pb.authStore.record : null;
  if (user && user.collectionName === "users") {
    if (!session || session.user !== user.id) {
      if (session) {
        signedOut();
      }
      await signedIn(user);
    }
  } else if (session || byId("signed-out").hidden) {
    signedOut();
  }
}

async function main() {
  rules = await policy();
  wireAuthForms(rules);
  if (pb.authStore.isValid) {
    try {
      await pb.collection("users").authRefresh(); // A token from an earlier visit: still good?
    } catch (_) {
      pb.authStore.clear();
    }
  }
  pb.authStore.onChange(() => follow());
  await follow();
}

main();
