// The event log: rows for events, one growing bubble per message, rendered once per frame.
//
// Events are queued as they arrive and drawn in one requestAnimationFrame callback: a
// fragment of new rows, each touched bubble's text set once, then the oldest rows removed
// beyond MAX_ROWS (a message still streaming is kept). A row's data is formatted only when
// it is opened.

const MAX_ROWS = 500;

export function clock(timestamp) {
  const time = String(timestamp || "").split("T")[1] || "";
  return time.replace("Z", "").slice(0, 12);
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function brief(data) {
  const text = JSON.stringify(data ?? {});
  return text.length > 120 ? text.slice(0, 119) + "…" : text;
}

export class EventLog {
  // list: the <ol>; options: follow (checkbox), trimmed (<p>), counts (<span>)
  constructor(list, { follow, trimmed, counts }) {
    this.list = list;
    this.follow = follow;
    this.trimmed = trimmed;
    this.counts = counts;
    this.pending = [];
    this.scheduled = false;
    this.bubbles = new Map(); // message_id -> {li, text, textNode, state, deltas, complete}
    this.data = new WeakMap(); // row -> event data, formatted on open
    this.shown = 0;
    this.removed = 0;
    list.addEventListener("toggle", (e) => this.#opened(e.target), true);
  }

  push(event) {
    this.pending.push(event);
    if (!this.scheduled) {
      this.scheduled = true;
      requestAnimationFrame(() => this.#frame());
    }
  }

  note(type, data, timestamp) {
    this.push({ type, data, timestamp: timestamp || new Date().toISOString(), control: true });
  }

  #frame() {
    this.scheduled = false;
    const events = this.pending;
    this.pending = [];
    const fragment = document.createDocumentFragment();
    const touched = new Set();
    for (const event of events) {
      if (event.type === "message.delta" || event.type === "message.completed") {
        const bubble = this.#bubble(event, fragment);
        if (event.type === "message.delta") {
          bubble.text += String(event.data?.delta ?? "");
          bubble.deltas += 1;
        } else {
          // The completed content is the whole message, unless it was cut to fit an event.
          if (!event.data?.truncated) bubble.text = String(event.data?.content ?? bubble.text);
          bubble.complete = true;
          // A run that ended early (cancelled, failed, timed out) closes its message as it was.
          bubble.incomplete = event.data?.incomplete ? String(event.data?.reason || "ended") : "";
        }
        touched.add(bubble);
      } else {
        fragment.append(this.#row(event));
      }
    }
    const stick = this.#nearBottom();
    this.list.append(fragment);
    for (const bubble of touched) this.#paint(bubble);
    this.shown += events.filter((event) => !event.control).length; // stored events only
    this.#trim();
    this.counts.textContent = `${this.shown} event${this.shown === 1 ? "" : "s"}`;
    if (this.follow.checked && stick) this.list.scrollTop = this.list.scrollHeight;
  }

  #nearBottom() {
    const list = this.list;
    return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  }

  #bubble(event, fragment) {
    const id = String(event.data?.message_id ?? "");
    let bubble = this.bubbles.get(id);
    if (!bubble || !bubble.li) {
      const li = element("li", "bubble");
      li.dataset.messageId = id;
      li.dataset.type = "message";
      const meta = element("div", "meta");
      meta.append(element("time", "", clock(event.timestamp)));
      const role = element("span", "role", event.data?.role || "assistant");
      const code = element("code", "", id);
      const state = element("span", "state");
      const count = element("span", "count");
      meta.append(role, code, state, count);
      const text = element("p", "text");
      li.append(meta, text);
      fragment.append(li);
      bubble = Object.assign(bubble || { text: "", deltas: 0, complete: false }, {
        li, textNode: text, state, count, role,
      });
      this.bubbles.set(id, bubble);
    }
    if (event.data?.role) bubble.role.textContent = event.data.role;
    return bubble;
  }

  #paint(bubble) {
    bubble.textNode.textContent = bubble.text;
    bubble.li.dataset.complete = bubble.incomplete ? "incomplete" : String(bubble.complete);
    bubble.state.textContent = bubble.incomplete
      ? `incomplete (${bubble.incomplete})`
      : bubble.complete ? "complete" : "streaming";
    bubble.count.textContent = `${bubble.deltas} delta${bubble.deltas === 1 ? "" : "s"}`;
  }

  #row(event) {
    const li = element("li", event.control ? "control" : "");
    li.dataset.type = event.type;
    if (event.id) li.dataset.id = event.id;
    const details = element("details");
    const summary = element("summary");
    const time = element("time", "", clock(event.timestamp));
    if (event.timestamp) time.dateTime = event.timestamp;
    summary.append(time, element("span", "type", event.type));
    if (event.type.startsWith("run.")) {
      const status = statusOf(event.type);
      const badge = element("span", "badge", label(status));
      badge.dataset.status = status;
      summary.append(badge);
    }
    summary.append(element("span", "brief", brief(event.data)));
    details.append(summary, element("pre"));
    li.append(details);
    this.data.set(details, event.control ? event.data : event);
    return li;
  }

  #opened(target) {
    if (!(target instanceof HTMLDetailsElement) || !target.open) return;
    const pre = target.querySelector("pre");
    if (pre && !pre.textContent) pre.textContent = JSON.stringify(this.data.get(target), null, 2);
  }

  #trim() {
    // The oldest rows go first; a message still streaming stays where it is.
    let extra = this.list.childElementCount - MAX_ROWS;
    let row = this.list.firstElementChild;
    while (extra > 0 && row) {
      const next = row.nextElementSibling;
      const id = row.dataset.messageId;
      const bubble = id === undefined ? null : this.bubbles.get(id);
      if (!bubble || bubble.complete) {
        if (bubble) this.bubbles.delete(id);
        row.remove();
        this.removed += 1;
        extra -= 1;
      }
      row = next;
    }
    if (this.removed) {
      this.trimmed.hidden = false;
      this.trimmed.textContent =
        `${this.removed} older row${this.removed === 1 ? "" : "s"} not shown (the log keeps the last ${MAX_ROWS}).`;
    }
  }
}

const STATUS = {
  "run.queued": "queued",
  "run.started": "running",
  "run.completed": "completed",
  "run.failed": "failed",
  "run.cancelled": "cancelled",
  "run.timed_out": "timed_out",
};

export function statusOf(type) {
  return STATUS[type] || type.replace(/^run\./, "");
}

export function label(status) {
  return status.replace("_", " ");
}
