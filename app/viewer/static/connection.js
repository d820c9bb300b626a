// A session's live stream over EventSource, delivered in order, each event once.
//
// EventSource reconnects by itself after the server ends a stream (stream.reconnect) and sends
// the last id it saw as Last-Event-ID, so the server replays exactly what was missed. When the
// browser gives up (a refused answer: 401, 403, 429, 503), this opens a new EventSource with
// ?last_event_id= after a backoff, unless the token is refused.
//
// EventSource only delivers event types that have a listener. Resume tokens are dense
// positions ("<seq>.<tag>"), so an event of an unknown type shows as a gap before the next one:
// the gap is read from the JSON history, its types get listeners, and delivery goes on in
// order. Unknown types at the end of the session (no known event after them yet) show in the
// sessions list: its `last_event_id` for this session is handed to `hint()`, and when it stays
// ahead of what the stream delivered, the missing positions are read from the history once.
// Nothing reads the history on a timer: an idle open page costs the database nothing.

import { api, ApiError, getToken, sessionPath } from "./api.js";

const CONTROL = ["stream.history_lost", "stream.reconnect"];
const KNOWN = [
  "message", "message.delta", "message.completed",
  "run.queued", "run.started", "run.completed", "run.failed", "run.cancelled", "run.timed_out",
  "tool.call", "tool.result", "status", "error", "log",
];
const PAGE = 1000;
const HINT_GRACE_MS = 1000; // let the stream deliver what the sessions list already shows
const MAX_BACKOFF_MS = 30000;

export function seqOf(token) {
  const seq = Number.parseInt(String(token ?? "").split(".")[0], 10);
  return Number.isFinite(seq) ? seq : null;
}

export class Connection {
  // handlers: onEvent(event), onState(state, detail), onControl(type, data), onAuthError(error)
  constructor(sessionId, handlers) {
    this.sessionId = sessionId;
    this.handlers = handlers;
    this.types = new Set(KNOWN);
    this.lastSeq = 0; // 0: from the start of the retained history
    this.lastToken = null;
    this.queue = [];
    this.filling = false;
    this.fromHistory = new Set(); // positions delivered from the JSON history, not the stream
    this.received = 0;
    this.duplicates = 0;
    this.connections = 0;
    this.failures = 0;
    this.source = null;
    this.stopped = false;
    this.lastArrival = Date.now();
    this.hinted = 0; // the newest position the sessions list showed
    this.hintTimer = null;
    this.unreadable = 0; // a hinted position the history did not have (voided, or expired)
  }

  start() {
    this.stopped = false;
    this.#open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.hintTimer);
    this.hintTimer = null;
    clearTimeout(this.retryTimer);
    if (this.source) this.source.close();
    this.source = null;
  }

  // Reopen now (a new token): resume after the last event delivered.
  restart() {
    if (this.source) this.source.close();
    this.source = null;
    clearTimeout(this.retryTimer);
    this.failures = 0;
    this.start();
  }

  url() {
    const params = new URLSearchParams();
    if (this.lastToken) params.set("last_event_id", this.lastToken);
    const token = getToken();
    if (token) params.set("access_token", token);
    const query = params.toString();
    return `${sessionPath(this.sessionId)}/stream${query ? "?" + query : ""}`;
  }

  #open() {
    if (this.stopped) return;
    this.handlers.onState(this.connections ? "reconnecting" : "connecting");
    const source = new EventSource(this.url());
    this.source = source;
    source.onopen = () => {
      this.lastArrival = Date.now(); // the replay of what was missed starts now
      this.connections += 1;
      this.failures = 0;
      this.handlers.onState("live");
    };
    source.onerror = () => this.#failed(source);
    for (const type of CONTROL) source.addEventListener(type, (e) => this.#control(type, e));
    for (const type of this.types) this.#listen(source, type);
  }

  #listen(source, type) {
    source.addEventListener(type, (e) => this.#frame(e, source));
  }

  #learn(type) {
    if (this.types.has(type) || CONTROL.includes(type)) return;
    this.types.add(type);
    if (this.source) this.#listen(this.source, type);
  }

  #control(type, e) {
    let data = {};
    try {
      data = JSON.parse(e.data);
    } catch {
      data = {};
    }
    if (type === "stream.history_lost") {
      // The server goes on after `resumed_after` (null: from the start of what it keeps).
      this.lastToken = data.resumed_after || null;
      this.lastSeq = seqOf(data.resumed_after) ?? 0;
    } else {
      this.handlers.onState("reconnecting", data.reason || "");
    }
    this.handlers.onControl(type, data);
  }

  #frame(e, source) {
    if (source !== this.source) return;
    this.lastArrival = Date.now();
    let event;
    try {
      event = JSON.parse(e.data);
    } catch {
      return;
    }
    const token = e.lastEventId || event.id;
    this.#accept({ seq: seqOf(token), token, event, live: true });
  }

  #accept(item) {
    if (this.filling) {
      this.queue.push(item);
      return;
    }
    if (item.seq === null || item.seq === this.lastSeq + 1) {
      this.#deliver(item);
    } else if (item.seq <= this.lastSeq) {
      this.#skip(item);
    } else {
      this.queue.push(item);
      this.#fill();
    }
  }

  #skip(item) {
    // The same position again: from the stream it is a real duplicate; after a history read
    // it is the stream catching up with what that read already delivered.
    if (item.live && !this.fromHistory.has(item.seq)) this.duplicates += 1;
  }

  #deliver(item) {
    if (item.seq !== null) {
      this.lastSeq = item.seq;
      this.lastToken = item.token;
      if (!item.live) this.fromHistory.add(item.seq);
    }
    this.received += 1;
    this.handlers.onEvent(item.event);
  }

  // Read the positions missing before the queue's head from the history, then drain the queue.
  async #fill() {
    this.filling = true;
    try {
      while (this.queue.length && !this.stopped) {
        const head = this.queue[0];
        if (head.seq === null || head.seq === this.lastSeq + 1) {
          this.#deliver(this.queue.shift());
        } else if (head.seq <= this.lastSeq) {
          this.#skip(this.queue.shift());
        } else {
          await this.#readGap(head.seq);
        }
      }
    } finally {
      this.filling = false;
      this.#pruneHistoryMarks();
    }
  }

  // Deliver the stored events before position `before` from the history. With `settle`
  // (a later event is waiting), positions the history does not have are skipped. False when
  // the history could not be read.
  async #readGap(before, { settle = true } = {}) {
    const limit = Math.min(PAGE, before - this.lastSeq - 1);
    let page;
    try {
      page = await this.#history(limit);
    } catch (error) {
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
        this.handlers.onAuthError(error);
      }
      if (settle) this.lastSeq = before - 1; // shown with a gap rather than stuck
      return false;
    }
    const start = this.lastSeq;
    for (const event of page.events) {
      const seq = seqOf(event.id);
      if (seq === null || seq >= before) break;
      if (seq <= this.lastSeq) continue;
      this.#learn(event.type);
      this.#deliver({ seq, token: event.id, event, live: false });
    }
    if (!settle) return true;
    if (this.lastSeq === start || page.events.length < limit || page.next === null) {
      // What is still missing is not stored: voided positions, or expired history.
      this.lastSeq = Math.max(this.lastSeq, before - 1);
    }
    return true;
  }

  #history(limit) {
    const params = new URLSearchParams({ limit: String(limit) });
    if (this.lastToken) params.set("after", this.lastToken);
    return api(`${sessionPath(this.sessionId)}/events?${params}`);
  }

  // The session's newest position as another source saw it (the sessions list's
  // last_event_id). The stream normally delivers it within moments; if it has not after a
  // grace period without arrivals, its type has no listener: read it from the history.
  hint(token) {
    const seq = seqOf(token);
    if (seq === null || seq <= this.lastSeq || this.stopped) return;
    this.hinted = Math.max(this.hinted, seq);
    this.#checkHint();
  }

  #checkHint() {
    if (this.hintTimer !== null) return;
    this.hintTimer = setTimeout(() => {
      this.hintTimer = null;
      this.#catchUpToHint();
    }, HINT_GRACE_MS);
  }

  async #catchUpToHint() {
    if (this.stopped || this.hinted <= this.lastSeq || this.hinted <= this.unreadable) return;
    const quiet = Date.now() - this.lastArrival >= HINT_GRACE_MS;
    const open = this.source && this.source.readyState === EventSource.OPEN;
    if (this.filling || !quiet || !open) {
      this.#checkHint(); // events are still arriving, or the stream is away: look again later
      return;
    }
    const target = this.hinted;
    this.filling = true;
    try {
      while (this.lastSeq < target && !this.stopped) {
        const before = this.lastSeq;
        if (!(await this.#readGap(target + 1, { settle: false }))) break; // asked again later
        if (this.lastSeq === before) {
          this.unreadable = target; // not stored (voided or expired): do not ask again
          break;
        }
      }
    } finally {
      this.filling = false;
    }
    if (this.queue.length) this.#fill();
  }

  #pruneHistoryMarks() {
    if (this.fromHistory.size < 5000) return;
    for (const seq of this.fromHistory) if (seq < this.lastSeq - 2000) this.fromHistory.delete(seq);
  }

  async #failed(source) {
    if (source !== this.source || this.stopped) return;
    if (source.readyState === EventSource.CONNECTING) {
      this.handlers.onState("reconnecting"); // the browser retries by itself
      return;
    }
    // The browser gave up: the server refused the stream. Is it the token?
    source.close();
    this.source = null;
    try {
      await api(`${sessionPath(this.sessionId)}/events?limit=1`);
    } catch (error) {
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
        this.handlers.onState("error", `${error.status} ${error.code}`);
        this.handlers.onAuthError(error);
        return;
      }
    }
    this.failures += 1;
    const delay = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.min(this.failures - 1, 5));
    this.handlers.onState("reconnecting", `retrying in ${Math.round(delay / 1000)}s`);
    this.retryTimer = setTimeout(() => this.#open(), delay);
  }
}
