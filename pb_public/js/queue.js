// The user's transfers, live: status, place in line (the dispatcher's `fathom2loom/positions`
// messages), progress, what a waiting transfer waits for, what a failed one says to do, the
// Loom link once it is there; cancel and retry, with the server's refusal shown when refused.
//
// Each row's element is made once and updated in place, so a progress update never takes the
// keyboard focus away from a button; what changes a row's status is said once, in a status line
// a screen reader reads (not the whole list again).
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
    this.items = new Map(); // row id -> its element's parts
    this.titles = new Map(); // meeting id -> title, when the meetings list told us
    this.refusals = new Map(); // row id -> the server's last refusal, shown under it
    this.listeners = [];
    this.stops = [];
  }

  async start() {
    const own = pb.filter("user_id = {:u}", { u: this.user.id });
    const load = async () => {
      const found = await pb.collection("queue").getFullList({ filter: own, sort: "-queued_at" });
      this.rows = new Map(found.map((row) => [row.id, row]));
      this.changed();
    };
    let connections = 0;
    this.stops.push(
      // Realtime does not replay what happened while it was away: after a reconnect, read again.
      await pb.realtime.subscribe("PB_CONNECT", () => {
        connections += 1;
        if (connections > 1) {
          load().catch(() => {});
        }
      }),
    );
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
    await load();
  }

  stop() {
    this.stops.forEach((stop) => stop());
    this.stops = [];
    this.rows.clear();
    this.items.clear();
    this.refusals.clear();
    this.titles.clear();
    byId("queue").replaceChildren();
    byId("queue-news").textContent = "";
    byId("queue-empty").hidden = false;
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
    for (const [id, item] of this.items) {
      if (!this.rows.has(id)) {
        item.li.remove();
        this.items.delete(id);
      }
    }
    rows.forEach((row, index) => {
      let item = this.items.get(row.id);
      if (!item) {
        item = this.make(row);
        this.items.set(row.id, item);
      }
      this.update(item, row);
      if (list.children[index] !== item.li) {
        list.insertBefore(item.li, list.children[index] || null); // Only new or moved rows.
      }
    });
  }

  make(row) {
    const parts = {
      title: el("span", { class: "job-title" }),
      badge: el("span", { class: "badge" }),
      meta: el("p", { class: "job-meta" }),
      position: el("p", { class: "position" }),
      bar: el("progress", { max: 1, value: 0 }),
      percent: el("span", { class: "percent" }),
      wait: el("p", { class: "wait" }),
      error: el("p", { class: "job-error" }),
      note: el("p", { class: "hint" }),
      loom: el("a", { class: "loom-link", target: "_blank", rel: "noopener noreferrer" }, "Open in Loom"),
      cancel: el("button", { type: "button", class: "cancel", onclick: (event) => this.move(event, row.id, "cancelled") }, "Cancel"),
      retry: el("button", { type: "button", class: "retry", onclick: (event) => this.move(event, row.id, "pending") }, "Retry"),
      refusal: el("p", { class: "error", role: "alert" }),
      status: null,
    };
    parts.progress = el("div", { class: "progress" }, parts.bar, parts.percent);
    parts.actions = el("div", { class: "actions" }, parts.cancel, parts.retry);
    parts.li = el(
      "li",
      { "data-row": row.id, "data-meeting": row.meeting_id },
      el("div", { class: "job-head" }, parts.title, parts.badge),
      parts.meta,
      parts.position,
      parts.progress,
      parts.wait,
      parts.error,
      parts.note,
      parts.loom,
      parts.actions,
      parts.refusal,
    );
    return parts;
  }

  update(item, row) {
    const title = this.titles.get(row.meeting_id) || `Meeting ${row.meeting_id}`;
    const total = Number(row.bytes_total) || 0;
    const done = Math.min(Number(row.bytes_done) || 0, total);
    const waiting = row.status === "pending";
    const moving = row.status === "processing";
    const set = (node, text, shown = Boolean(text)) => {
      if (node.textContent !== text) {
        node.textContent = text;
      }
      node.hidden = !shown;
    };
    item.li.className = `job status-${row.status}`;
    set(item.title, title);
    set(item.badge, LABELS[row.status] || row.status);
    item.badge.className = `badge badge-${row.status}`;
    set(item.meta, `Fathom recording ${row.meeting_id}` + (row.queued_at ? ` · queued ${when(row.queued_at)}` : ""));
    set(item.position, row.position > 0 ? `#${row.position} in line` : "In line", waiting);
    item.progress.hidden = !(moving || (row.status === "completed" && total));
    item.bar.setAttribute("max", String(total || 1));
    item.bar.setAttribute("value", String(done));
    item.bar.setAttribute("aria-label", `Progress of ${title}`);
    set(item.percent, total ? `${Math.floor((100 * done) / total)}%` : "starting");
    set(item.wait, moving ? row.wait_reason || "" : "");
    set(item.error, row.status === "failed" ? row.error_message || "" : "");
    set(item.note, row.status === "cancelled" ? row.error_message || "" : "");
    item.loom.hidden = !(row.status === "completed" && row.loom_url);
    if (row.loom_url && item.loom.getAttribute("href") !== row.loom_url) {
      item.loom.setAttribute("href", row.loom_url);
    }
    item.cancel.hidden = !ACTIVE.has(row.status);
    item.cancel.setAttribute("aria-label", `Cancel ${title}`);
    item.retry.hidden = row.status !== "failed";
    item.retry.setAttribute("aria-label", `Retry ${title}`);
    item.actions.hidden = item.cancel.hidden && item.retry.hidden;
    set(item.refusal, this.refusals.get(row.id) || "");
    if (item.status !== null && item.status !== row.status) {
      const what = row.status === "failed" ? `failed: ${row.error_message}` : LABELS[row.status];
      byId("queue-news").textContent = `${title}: ${what}`;
    }
    item.status = row.status;
  }

  async move(event, rowId, status) {
    await busy(event.currentTarget, async () => {
      try {
        const updated = await pb.collection("queue").update(rowId, { status: status });
        this.refusals.delete(rowId);
        this.rows.set(updated.id, updated);
      } catch (err) {
        this.refusals.set(rowId, errorText(err));
      }
      this.changed();
    });
  }
}
