// The user's Fathom and Loom keys: pasted, saved (PocketBase's hook encrypts them before they
// are stored), never shown again. What the page shows is the hint (`…abcd`) and the service's
// check of each key, live: "checking…", "Fathom key accepted (…)", "Fathom rejected the key
// (401): …".
import { busy, byId, errorText, pb } from "./client.js";

const FIELDS = [
  { input: "fathom-key", state: "fathom-state", value: "encrypted_fathom", hint: "fathom_hint", check: "fathom_check" },
  { input: "loom-key", state: "loom-state", value: "encrypted_loom", hint: "loom_hint", check: "loom_check" },
];

function verdict(check) {
  if (!check || check.startsWith("checking") || check.startsWith("not checked yet")) {
    return "pending";
  }
  return / accepted /.test(check) ? "ok" : "bad";
}

export function startKeys(user) {
  let record = null;

  function render() {
    for (const field of FIELDS) {
      const line = byId(field.state);
      const hint = record ? record[field.hint] : "";
      const check = record ? record[field.check] : "";
      line.dataset.verdict = hint || check ? verdict(check) : "none";
      if (!record || (!hint && !check)) {
        line.textContent = "Not saved yet";
      } else {
        line.textContent = [hint ? `Saved ${hint}` : "Saved", check || "checking…"].join(" · ");
      }
    }
  }

  async function load() {
    try {
      record = await pb.collection("api_keys").getFirstListItem(pb.filter("user_id = {:u}", { u: user.id }));
    } catch (err) {
      record = null;
    }
    render();
  }

  const form = byId("keys-form");
  const onSubmit = async (event) => {
    event.preventDefault();
    const error = byId("keys-error");
    error.textContent = "";
    const body = {};
    for (const field of FIELDS) {
      const value = byId(field.input).value.trim();
      if (value) {
        body[field.value] = value;
      }
    }
    if (Object.keys(body).length === 0) {
      error.textContent = "Paste a key first.";
      return;
    }
    await busy(form.querySelector("button[type=submit]"), async () => {
      try {
        record = record
          ? await pb.collection("api_keys").update(record.id, body)
          : await pb.collection("api_keys").create({ user_id: user.id, ...body });
        for (const field of FIELDS) {
          byId(field.input).value = ""; // The key leaves the page once it is saved.
        }
        render();
      } catch (err) {
        error.textContent = errorText(err);
      }
    });
  };
  form.addEventListener("submit", onSubmit);

  let unsubscribe = null;
  pb.collection("api_keys")
    .subscribe("*", (event) => {
      if (event.record.user_id !== user.id) {
        return;
      }
      record = event.action === "delete" ? null : event.record;
      render();
    })
    .then((stop) => (unsubscribe = stop));
  load();

  return () => {
    form.removeEventListener("submit", onSubmit);
    if (unsubscribe) {
      unsubscribe();
    }
    form.reset(); // Nothing typed for one account may be saved into the next one's.
    byId("keys-error").textContent = "";
    record = null;
    render();
  };
}
