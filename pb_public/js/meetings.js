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
    byId("meetings-status").textContent = "";
    this.render();
  }

  async fetch(query) {
    const answer = await pb.send("/api/fathom2loom/meetings", { method: "GET", query: query });
    const items = answer.items || [];
    for (const item of items) {
      this.queue.titles.set(item.recording_id, item.title);
    }
    this.queue.render();
    return items;
  }

  async load(button) {
    const status = byId("meetings-status");
    status.textContent = "Asking Fathom…";
    await busy(button, async () => {
      try {
        this.items = await this.fetch({ limit: 50 });
        status.textContent = this.items.length
          ? `${this.items.length} meetings, newest first.`
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
        this.items = found;
        this.render();
        const todo = found.filter((item) => this.stateOf(item) === "not moved");
        if (todo.length === 0) {
          status.textContent = `Nothing since ${date} is left to move.`;
          return;
        }
        await this.enqueue(todo, null);
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
    const checked = new Set([...list.querySelectorAll("input:checked")].map((box) => box.value));
    list.replaceChildren(
      ...this.items.map((item) => {
        const state = this.stateOf(item);
        const id = `meeting-${item.recording_id}`;
        const minutes = Math.max(1, Math.round((item.duration_seconds || 0) / 60));
        return el(
          "li",
          { class: `meeting state-${state.replace(" ", "-")}` },
          el("input", {
            type: "checkbox",
            id: id,
            value: item.recording_id,
            disabled: !MOVABLE.has(state),
            checked: MOVABLE.has(state) && checked.has(item.recording_id),
          }),
          el(
            "label",
            { for: id },
            el("span", { class: "meeting-title" }, item.title),
            el("span", { class: "meeting-meta" }, `${when(item.created_at)} · ${minutes} min`),
          ),
          el("span", { class: `badge badge-${state.replace(" ", "-")}` }, state),
        );
      }),
    );
    this.renderButton();
  }

  renderButton() {
    const button = byId("move-selected");
    const count = byId("meetings").querySelectorAll("input:checked").length;
    button.hidden = this.items.length === 0;
    button.disabled = count === 0;
    button.textContent = count ? `Move selected (${count})` : "Move selected";
  }
}
