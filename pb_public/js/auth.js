// Signing up, in and out, and the e-mail verification the operator may ask for
// (REQUIRE_VERIFIED_USERS): what `/api/fathom2loom/policy` says this server allows.
import { busy, byId, errorText, pb } from "./client.js";

export async function policy() {
  try {
    return await pb.send("/api/fathom2loom/policy", { method: "GET" });
  } catch (_) {
    return { signup: true, require_verified: false, limits: {} };
  }
}

export function showSignUp(allowed) {
  byId("sign-up").hidden = !allowed;
  byId("sign-up-closed").hidden = allowed;
}

export function wireAuthForms(rules) {
  const signIn = byId("sign-in-form");
  signIn.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = byId("sign-in-error");
    error.textContent = "";
    await busy(signIn.querySelector("button"), async () => {
      try {
        await pb
          .collection("users")
          .authWithPassword(signIn.email.value.trim(), signIn.password.value);
        signIn.reset();
      } catch (err) {
        error.textContent =
          err.status === 400 ? "That e-mail and password do not match an account." : errorText(err);
      }
    });
  });

  const signUp = byId("sign-up-form");
  signUp.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = byId("sign-up-error");
    error.textContent = "";
    if (signUp.password.value !== signUp.confirm.value) {
      error.textContent = "The two passwords differ.";
      return;
    }
    const email = signUp.email.value.trim();
    await busy(signUp.querySelector("button"), async () => {
      try {
        await pb.collection("users").create({
          email: email,
          password: signUp.password.value,
          passwordConfirm: signUp.confirm.value,
        });
      } catch (err) {
        error.textContent =
          err.status === 403
            ? "Accounts on this server are made by its operator: ask them for one."
            : errorText(err);
        return;
      }
      if (rules.require_verified) {
        sentTo = await askForTheLink(email);
      }
      try {
        await pb.collection("users").authWithPassword(email, signUp.password.value);
        signUp.reset();
      } catch (err) {
        error.textContent = errorText(err);
      }
    });
  });

  byId("sign-out").addEventListener("click", () => pb.authStore.clear());
}

let sentTo = ""; // where the link went when this page signed the account up

// PocketBase e-mails the link (its mail settings); the answer says whether it could.
async function askForTheLink(email) {
  try {
    await pb.collection("users").requestVerification(email);
    return email;
  } catch (_) {
    return "";
  }
}

// The verification banner: shown to an unverified account where verification is required.
export function wireVerification(requireVerified) {
  const banner = byId("verify");
  const status = byId("verify-status");
  const record = pb.authStore.record;
  banner.hidden = !(requireVerified && record && !record.verified);
  status.textContent = "";
  if (banner.hidden) {
    return;
  }
  byId("verify-email").textContent = record.email;
  byId("verify-sent").hidden = sentTo !== record.email;
  byId("verify-resend").onclick = async (event) => {
    await busy(event.currentTarget, async () => {
      if (await askForTheLink(record.email)) {
        status.textContent = `A new link is on its way to ${record.email}.`;
      } else {
        status.textContent =
          "The link could not be sent: ask the operator to verify your account.";
      }
    });
  };
  byId("verify-check").onclick = async (event) => {
    await busy(event.currentTarget, async () => {
      try {
        await pb.collection("users").authRefresh();
        if (pb.authStore.record && pb.authStore.record.verified) {
          banner.hidden = true;
        } else {
          status.textContent = "Not verified yet: open the link in the e-mail first.";
        }
      } catch (err) {
        status.textContent = errorText(err);
      }
    });
  };
}
