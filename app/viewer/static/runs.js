// Runs of the open session: a badge per run from its run.* events, start and cancel.

import { api, describe, sessionPath } from "./api.js";
import { label, statusOf } from "./log.js";

const LIVE = new Set(["queued", "running"]);
const ENDED = new Set(["completed", "failed", "cancelled", "timed_out"]);

export class RunPanel {
  // list: the <ul> of runs; alert(text): show an error
  constructor(list, sessionId, alert) {
    this.list = list;
    this.sessionId = sessionId;
    this.alert = alert;
    this.runs = new Map(); // run_id -> {li, badge, cancel, error, status}
  }

  // A run.* event of this session.
  update(event) {
    const runId = event.data?.run_id;
    if (!runId) return;
    const run = this.#run(runId, event.data.agent);
    const status = statusOf(event.type);
    if (ENDED.has(run.status)) return; // a run has one ending event
    run.status = status;
    run.badge.dataset.status = status;
    run.badge.textContent = label(status);
    run.cancel.hidden = !LIVE.has(status);
    run.cancel.disabled = false;
    run.li.dataset.status = status;
    const error = event.data.error;
    run.error.textContent = error ? `${error.type}: ${error.message}` : "";
  }

  #run(runId, agent) {
    let run = this.runs.get(runId);
    if (run) return run;
    const li = document.createElement("li");
    li.dataset.runId = runId;
    const name = document.createElement("span");
    name.textContent = agent ? `${agent} run` : "run";
    const code = document.createElement("code");
    code.textContent = runId;
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.setAttribute("role", "status");
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "danger";
    cancel.textContent = "Cancel";
    cancel.setAttribute("aria-label", `Cancel run ${runId}`);
    cancel.hidden = true;
    cancel.addEventListener("click", () => this.cancel(runId));
    const error = document.createElement("span");
    error.className = "error small";
    li.append(name, code, badge, cancel, error);
    this.list.prepend(li);
    run = { li, badge, cancel, error, status: "" };
    this.runs.set(runId, run);
    return run;
  }

  async cancel(runId) {
    const run = this.runs.get(runId);
    run.cancel.disabled = true;
    try {
      const found = await api(`/v1/runs/${encodeURIComponent(runId)}/cancel`, { method: "POST" });
      if (LIVE.has(run.status) && found.status === "running") {
        run.status = "cancelling";
        run.badge.dataset.status = "cancelling";
        run.badge.textContent = "cancelling";
      }
    } catch (error) {
      run.cancel.disabled = false;
      this.alert(describe(error, `Could not cancel run ${runId}`));
    }
  }
}

// The start-a-run form: agents from GET /v1/agents, the input as JSON.
export class RunForm {
  constructor(form, sessionId, alert) {
    this.form = form;
    this.sessionId = sessionId;
    this.alert = alert;
    this.agent = form.querySelector("#agent");
    this.input = form.querySelector("#run-input");
    this.inputError = form.querySelector("#run-input-error");
    this.note = form.querySelector("#run-note");
    this.description = form.querySelector("#agent-description");
    this.agents = [];
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.start();
    });
    this.agent.addEventListener("change", () => this.#describe());
  }

  async loadAgents() {
    try {
      this.agents = (await api("/v1/agents")).agents;
    } catch (error) {
      this.agents = [{ name: "echo", description: "" }];
      this.alert(describe(error, "Could not list the agents"));
    }
    this.agent.replaceChildren(
      ...this.agents.map((agent) => {
        const option = document.createElement("option");
        option.value = agent.name;
        option.textContent = agent.name;
        return option;
      }),
    );
    if (this.agents.some((agent) => agent.name === "echo")) this.agent.value = "echo";
    this.#describe();
  }

  #describe() {
    const found = this.agents.find((agent) => agent.name === this.agent.value);
    this.description.textContent = found?.description || "";
  }

  async start() {
    let input;
    try {
      input = JSON.parse(this.input.value);
      if (typeof input !== "object" || input === null || Array.isArray(input)) {
        throw new Error("the input must be a JSON object");
      }
    } catch (error) {
      this.inputError.hidden = false;
      this.inputError.textContent = `Not valid: ${error.message}`;
      this.input.setAttribute("aria-invalid", "true");
      this.input.focus();
      return;
    }
    this.inputError.hidden = true;
    this.input.removeAttribute("aria-invalid");
    const button = this.form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const body = { agent: this.agent.value, input };
      const found = await api(`${sessionPath(this.sessionId)}/runs`, { method: "POST", body });
      this.note.textContent = `Run ${found.run_id} queued.`;
    } catch (error) {
      this.alert(describe(error, "Could not start the run"));
    } finally {
      button.disabled = false;
    }
  }
}
