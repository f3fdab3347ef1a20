// Auto-move: the user's switch (`user_meta.auto_move`) and how it stands, as the service
// writes it on the user's `auto_move` record ("On: Fathom sends each new meeting …",
// "Waiting for a working Fathom key …").
import { byId, errorText, pb } from "./client.js";

export function startAutoMove(user) {
  const toggle = byId("auto-move");
  const status = byId("auto-status");
  const error = byId("auto-error");
  let meta = null;
  let service = null;

  function render() {
    toggle.checked = Boolean(meta && meta.auto_move);
    if (!toggle.checked) {
      status.textContent = "Off: you choose which meetings move.";
    } else {
      status.textContent = service && service.status ? service.status : "On: setting it up…";
    }
  }

  const own = pb.filter("user_id = {:u}", { u: user.id });
  async function load() {
    meta = await pb.collection("user_meta").getFirstListItem(own).catch(() => null);
    service = await pb.collection("auto_move").getFirstListItem(own).catch(() => null);
    render();
  }

  const onChange = async () => {
    error.textContent = "";
    const wanted = toggle.checked;
    toggle.disabled = true;
    try {
      meta = meta
        ? await pb.collection("user_meta").update(meta.id, { auto_move: wanted })
        : await pb.collection("user_meta").create({ user_id: user.id, auto_move: wanted });
    } catch (err) {
      error.textContent = errorText(err);
    } finally {
      toggle.disabled = false;
      render();
    }
  };
  toggle.addEventListener("change", onChange);

  const stops = [];
  for (const [collection, apply] of [
    ["user_meta", (event) => (meta = event.action === "delete" ? null : event.record)],
    ["auto_move", (event) => (service = event.action === "delete" ? null : event.record)],
  ]) {
    pb.collection(collection)
      .subscribe("*", (event) => {
        if (event.record.user_id === user.id) {
          apply(event);
          render();
        }
      })
      .then((stop) => stops.push(stop));
  }
  load();

  return () => {
    toggle.removeEventListener("change", onChange);
    stops.forEach((stop) => stop());
    error.textContent = "";
    meta = service = null;
    render();
  };
}
