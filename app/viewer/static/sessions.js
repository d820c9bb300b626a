// Recently active sessions (GET /v1/sessions), refreshed while the page is visible. Each
// refresh hands the open session's newest position (`last_event_id`) to `onLatest`.

import { api, ApiError, describe } from "./api.js";

const REFRESH_MS = 5000;

export class SessionList {
  constructor(list, note, current, onLatest = () => {}) {
    this.list = list;
    this.note = note;
    this.current = current;
    this.onLatest = onLatest;
    this.timer = null;
  }

  start() {
    this.refresh();
    this.timer = setInterval(() => {
      if (!document.hidden) this.refresh();
    }, REFRESH_MS);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }

  async refresh() {
    let page;
    try {
      page = await api("/v1/sessions?limit=50");
    } catch (error) {
      if (error instanceof ApiError && (error.status === 404 || error.status === 405)) {
        this.stop();
        this.list.hidden = true;
        this.note.textContent =
          "This server does not list sessions (GET /v1/sessions is not available). Open one by its id.";
        this.list.closest("nav").dataset.sessions = "unavailable";
        return;
      }
      this.note.textContent = describe(error, "Could not list the sessions");
      return;
    }
    this.list.hidden = false;
    this.list.closest("nav").dataset.sessions = "available";
    const sessions = page.sessions || [];
    this.note.textContent = sessions.length ? "" : "No recent sessions.";
    this.list.replaceChildren(...sessions.map((session) => this.#item(session)));
    const open = sessions.find((session) => session.session_id === this.current);
    if (open && open.last_event_id) this.onLatest(open.last_event_id);
  }

  #item(session) {
    const li = document.createElement("li");
    const link = document.createElement("a");
    link.href = `/?session=${encodeURIComponent(session.session_id)}`;
    link.textContent = session.session_id;
    if (session.session_id === this.current) link.setAttribute("aria-current", "page");
    const when = document.createElement("span");
    when.className = "when";
    const time = document.createElement("time");
    time.dateTime = session.updated_at;
    time.textContent = new Date(session.updated_at).toLocaleString();
    when.append("updated ", time);
    link.append(when);
    li.append(link);
    return li;
  }
}
