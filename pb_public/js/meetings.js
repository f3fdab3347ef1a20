// The user's Fathom meetings, newest first, each with where it stands (moved, queued, failed,
// cancelled, not moved): listed by the service (`GET /api/fathom2loom/meetings`, the CLI's
// `meetings`), kept current from the live queue. Pick several and move them, or move
// everything since a date that is not moved or queued yet.
import { busy, byId, el, errorText, pb, when } from "./client.js";

const STATE_OF_ROW = {
  completed: "moved",
  pending: "queued",
  processing: "queued",
  failed: "failed",
  cancelled: "cancelled",
};
const MOVABLE = new Set(["not moved", "failed", "cancelled"]);

export class Meetings {
  constructor(user, queue) {
    this.user = user;
    this.queue = queue;
    this.items = [];
    this.elements = new Map(); // recording id -> its list item's parts, made once
    this.handlers = [];
    queue.onChange(() => this.render());
  }

  start() {
    const listen = (id, kind, handler) => {
      byId(id).addEventListener(kind, handler);
      this.handlers.push([id, kind, handler]);
    };
    listen("load-meetings", "click", (event) => this.load(event.currentTarget));
    listen("meetings-form", "submit", (event) => {
      event.preventDefault();
      const picked = [...byId("meetings").querySelectorAll("input:checked")].map((box) => box.value);
      this.enqueue(this.items.filter((item) => picked.includes(item.recording_id)), byId("move-selected"));
    });
    listen("meetings-form", "change", () => this.renderButton());
    listen("since-form", "submit", (event) => {
      event.preventDefault();
      this.moveSince(byId("since").value, event.submitter || event.currentTarget.querySelector("button"));
    });
  }

  stop() {
    for (const [id, kind, handler] of this.handlers) {
      byId(id).removeEventListener(kind, handler);
    }
    this.handlers = [];
    this.items = [];
    this.elements.clear();
    byId("meetings").replaceChildren();
    byId("meetings-status").textContent = "";
    byId("since-form").reset();
    this.renderButton();
  }

  async fetch(query) {
    const answer = await pb.send("/api/fathom2loom/meetings", { method: "GET", query: query });
    const items = answer.items || [];
    for (const item of items) {
      this.queue.titles.set(item.recording_id, item.title);
    }
    this.queue.render();
    return { items: items, more: Boolean(answer.more) };
  }

  async load(button) {
    const status = byId("meetings-status");
    status.textContent = "Asking Fathom…";
    await busy(button, async () => {
      try {
        const found = await this.fetch({ limit: 50 });
        this.items = found.items;
        status.textContent = this.items.length
          ? `${this.items.length} meetings, newest first${found.more ? " (older ones: move everything since a date)" : ""}.`
          : "Fathom lists no meetings for your key.";
      } catch (err) {
        status.textContent = errorText(err);
      }
      this.render();
    });
  }

  async moveSince(date, button) {
    const status = byId("meetings-status");
    if (!date) {
      status.textContent = "Pick a date first.";
      return;
    }
    status.textContent = `Asking Fathom for everything since ${date}…`;
    await busy(button, async () => {
      try {
        const found = await this.fetch({ since: date, limit: 500 });
        this.items = found.items;
        this.render();
        const todo = found.items.filter((item) => this.stateOf(item) === "not moved");
        if (todo.length === 0) {
          status.textContent = `Nothing since ${date} is left to move${found.more ? " among the newest 500" : ""}.`;
          return;
        }
        await this.enqueue(todo, null);
        if (found.more) {
          status.textContent += " Older meetings since then remain: press Move them again once these are queued.";
        }
      } catch (err) {
        status.textContent = errorText(err);
      }
    });
  }

  async enqueue(items, button) {
    const status = byId("meetings-status");
    const work = async () => {
      let queued = 0;
      const refused = [];
      for (const item of items) {
        try {
          await pb.collection("queue").create({
            user_id: this.user.id,
            meeting_id: item.recording_id,
            status: "pending",
            recorded_at: item.recording_start_time,
          });
          queued += 1;
        } catch (err) {
          refused.push(`${item.title}: ${errorText(err)}`);
          if (err.status === 429 || err.status === 403) {
            break; // The same answer for every other one: the account's limit, or not verified.
          }
        }
      }
      status.textContent = [
        queued ? `Queued ${queued} meeting${queued === 1 ? "" : "s"}.` : "",
        ...refused,
      ]
        .filter(Boolean)
        .join(" ");
    };
    await (button ? busy(button, work) : work());
  }

  stateOf(item) {
    const row = this.queue.rowOf(item.recording_id);
    return row ? STATE_OF_ROW[row.status] || item.state : item.state;
  }

  render() {
    const list = byId("meetings");
    const wanted = new Set(this.items.map((item) => item.recording_id));
    for (const [id, parts] of this.elements) {
      if (!wanted.has(id)) {
        parts.li.remove();
        this.elements.delete(id);
      }
    }
    this.items.forEach((item, index) => {
      let parts = this.elements.get(item.recording_id);
      if (!parts) {
        parts = this.make(item);
        this.elements.set(item.recording_id, parts);
      }
      const state = this.stateOf(item);
      const movable = MOVABLE.has(state);
      parts.box.disabled = !movable;
      if (!movable) {
        parts.box.checked = false;
      }
      parts.li.className = `meeting state-${state.replace(" ", "-")}`;
      parts.badge.className = `badge badge-${state.replace(" ", "-")}`;
      if (parts.badge.textContent !== state) {
        parts.badge.textContent = state;
      }
      if (list.children[index] !== parts.li) {
        list.insertBefore(parts.li, list.children[index] || null);
      }
    });
    this.renderButton();
  }

  make(item) {
    const id = `meeting-${item.recording_id}`;
    const minutes = Math.max(1, Math.round((item.duration_seconds || 0) / 60));
    const box = el("input", { type: "checkbox", id: id, value: item.recording_id });
    const badge = el("span", { class: "badge" });
    const li = el(
      "li",
      { class: "meeting" },
      box,
      el(
        "label",
        { for: id },
        el("span", { class: "meeting-title" }, item.title),
        el("span", { class: "meeting-meta" }, `${when(item.created_at)} · ${minutes} min`),
      ),
      badge,
    );
    return { li: li, box: box, badge: badge };
  }

  renderButton() {
    const button = byId("move-selected");
    const count = byId("meetings").querySelectorAll("input:checked").length;
    button.hidden = this.items.length === 0;
    button.disabled = count === 0;
    button.textContent = count ? `Move selected (${count})` : "Move selected";
  }
}
