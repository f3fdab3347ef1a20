// The user's transfers, live: status, place in line (the dispatcher's `fathom2loom/positions`
// messages), progress, what a waiting transfer waits for, what a failed one says to do, the
// Loom link once it is there; cancel and retry, with the server's refusal shown when refused.
import { busy, byId, el, errorText, pb, when } from "./client.js";

const LABELS = {
  pending: "Waiting",
  processing: "Moving",
  completed: "In Loom",
  failed: "Failed",
  cancelled: "Cancelled",
};
const ACTIVE = new Set(["pending", "processing"]);

export class Queue {
  constructor(user) {
    this.user = user;
    this.rows = new Map(); // row id -> record
    this.titles = new Map(); // meeting id -> title, when the meetings list told us
    this.refusals = new Map(); // row id -> the server's last refusal, shown under it
    this.listeners = [];
    this.stops = [];
  }

  async start() {
    const own = pb.filter("user_id = {:u}", { u: this.user.id });
    this.stops.push(
      await pb.collection("queue").subscribe("*", (event) => {
        if (event.record.user_id !== this.user.id) {
          return;
        }
        if (event.action === "delete") {
          this.rows.delete(event.record.id);
        } else {
          this.rows.set(event.record.id, event.record);
        }
        this.changed();
      }),
    );
    this.stops.push(
      await pb.realtime.subscribe("fathom2loom/positions", (message) => {
        for (const [id, position] of Object.entries((message && message.positions) || {})) {
          const row = this.rows.get(id);
          if (row) {
            this.rows.set(id, { ...row, position: position });
          }
        }
        this.changed();
      }),
    );
    const found = await pb.collection("queue").getFullList({ filter: own, sort: "-queued_at" });
    for (const row of found) {
      this.rows.set(row.id, row);
    }
    this.changed();
  }

  stop() {
    this.stops.forEach((stop) => stop());
    this.stops = [];
    this.rows.clear();
    this.render();
  }

  onChange(listener) {
    this.listeners.push(listener);
  }

  changed() {
    this.render();
    this.listeners.forEach((listener) => listener());
  }

  // Each meeting's most telling row: an active one, else a completed one, else the newest (the
  // same choice as the service's `meetings` listing).
  rowOf(meetingId) {
    const rank = (row) => (ACTIVE.has(row.status) ? 0 : row.status === "completed" ? 1 : 2);
    let chosen = null;
    for (const row of this.sorted()) {
      if (row.meeting_id === meetingId && (chosen === null || rank(row) < rank(chosen))) {
        chosen = row;
      }
    }
    return chosen;
  }

  sorted() {
    return [...this.rows.values()].sort((a, b) =>
      String(b.queued_at || b.created).localeCompare(String(a.queued_at || a.created)),
    );
  }

  render() {
    const list = byId("queue");
    const rows = this.sorted();
    byId("queue-empty").hidden = rows.length > 0;
    list.replaceChildren(...rows.map((row) => this.item(row)));
  }

  item(row) {
    const title = this.titles.get(row.meeting_id) || `Meeting ${row.meeting_id}`;
    const total = Number(row.bytes_total) || 0;
    const done = Math.min(Number(row.bytes_done) || 0, total);
    const percent = total ? Math.floor((100 * done) / total) : 0;
    const waiting = row.status === "pending";
    const moving = row.status === "processing";
    return el(
      "li",
      { class: `job status-${row.status}`, "data-row": row.id, "data-meeting": row.meeting_id },
      el(
        "div",
        { class: "job-head" },
        el("span", { class: "job-title" }, title),
        el("span", { class: `badge badge-${row.status}` }, LABELS[row.status] || row.status),
      ),
      el(
        "p",
        { class: "job-meta" },
        `Fathom recording ${row.meeting_id}`,
        row.queued_at ? ` · queued ${when(row.queued_at)}` : "",
      ),
      waiting && row.position > 0
        ? el("p", { class: "position" }, `#${row.position} in line`)
        : waiting
          ? el("p", { class: "position" }, "In line")
          : null,
      moving || (row.status === "completed" && total)
        ? el(
            "div",
            { class: "progress" },
            el("progress", {
              max: total || 1,
              value: done,
              "aria-label": `Progress of ${title}`,
            }),
            el("span", { class: "percent" }, total ? `${percent}%` : "starting"),
          )
        : null,
      moving && row.wait_reason ? el("p", { class: "wait" }, row.wait_reason) : null,
      row.status === "failed" && row.error_message
        ? el("p", { class: "job-error" }, row.error_message)
        : null,
      row.status === "cancelled" && row.error_message
        ? el("p", { class: "hint" }, row.error_message)
        : null,
      row.status === "completed" && row.loom_url
        ? el(
            "a",
            { class: "loom-link", href: row.loom_url, target: "_blank", rel: "noopener noreferrer" },
            "Open in Loom",
          )
        : null,
      this.actions(row, title),
      this.refusals.has(row.id)
        ? el("p", { class: "error", role: "alert" }, this.refusals.get(row.id))
        : null,
    );
  }

  actions(row, title) {
    const buttons = [];
    if (ACTIVE.has(row.status)) {
      buttons.push(
        el("button", { type: "button", class: "cancel", "aria-label": `Cancel ${title}`, onclick: (event) => this.move(event, row, "cancelled") }, "Cancel"),
      );
    }
    if (row.status === "failed") {
      buttons.push(
        el("button", { type: "button", class: "retry", "aria-label": `Retry ${title}`, onclick: (event) => this.move(event, row, "pending") }, "Retry"),
      );
    }
    return buttons.length ? el("div", { class: "actions" }, buttons) : null;
  }

  async move(event, row, status) {
    await busy(event.currentTarget, async () => {
      try {
        const updated = await pb.collection("queue").update(row.id, { status: status });
        this.refusals.delete(row.id);
        this.rows.set(updated.id, updated);
      } catch (err) {
        this.refusals.set(row.id, errorText(err));
      }
      this.changed();
    });
  }
}
