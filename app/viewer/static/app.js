// The viewer page: wires the token, the sessions list and the open session together.

import { describe, getToken, setToken } from "./api.js";
import { Connection } from "./connection.js";
import { EventLog } from "./log.js";
import { RunForm, RunPanel } from "./runs.js";
import { SessionList } from "./sessions.js";

const SESSION_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const $ = (selector) => document.querySelector(selector);

function showAlert(text) {
  const alert = $("#alert");
  alert.textContent = text;
  alert.hidden = !text;
}

const STATES = {
  idle: "not connected",
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting",
  error: "stream refused",
};

function showState(state, detail) {
  const pill = $("#connection");
  pill.dataset.state = state;
  pill.textContent = STATES[state] + (detail ? ` (${detail})` : "");
}

// Unfold the token field and put the cursor there (after a 401 or 403).
function askForToken() {
  const auth = $("#auth");
  if (!auth.open) {
    auth.open = true;
    $("#token").focus();
  }
}

function openSession(sessionId) {
  document.title = `${sessionId} · agentstream viewer`;
  $("#empty").hidden = true;
  $("#session").hidden = false;
  $("#session-id").textContent = sessionId;
  $("#open-session").value = sessionId;
  const list = $("#events");
  const log = new EventLog(list, {
    follow: $("#follow"),
    trimmed: $("#trimmed"),
    counts: $("#counts"),
  });
  const runs = new RunPanel($("#runs"), sessionId, showAlert);
  const form = new RunForm($("#run-form"), sessionId, showAlert);
  form.loadAgents();
  const connection = new Connection(sessionId, {
    onEvent(event) {
      log.push(event);
      if (event.type.startsWith("run.")) runs.update(event);
      list.dataset.received = String(connection.received);
      list.dataset.duplicates = String(connection.duplicates);
    },
    onState(state, detail) {
      showState(state, detail);
      list.dataset.connections = String(connection.connections);
      if (state === "live") showAlert("");
    },
    onControl(type, data) {
      log.note(type, data);
      if (type === "stream.history_lost") {
        const lost = $("#history-lost");
        lost.hidden = false;
        lost.textContent = `History lost: ${data.message || "older events are gone"}` +
          ` (${data.reason || "expired"}); the stream goes on from ` +
          `${data.resumed_after ? "after " + data.resumed_after : "the oldest retained event"}.`;
      }
    },
    onAuthError(error) {
      showAlert(describe(error, "The stream was refused"));
      askForToken();
    },
  });
  connection.start();
  return { connection, form };
}

function main() {
  const sessionId = new URLSearchParams(location.search).get("session");
  let opened = null;
  if (sessionId !== null) {
    if (SESSION_ID.test(sessionId)) opened = openSession(sessionId);
    else showAlert("A session id is 1-128 characters from A-Z, a-z, 0-9 and . _ : -");
  }
  // The list's newest position of the open session reveals events of types the stream does
  // not deliver (see connection.js).
  const sessions = new SessionList($("#sessions"), $("#sessions-note"), sessionId, (latest) => {
    if (opened) opened.connection.hint(latest);
  });
  sessions.start();

  const tokenInput = $("#token");
  tokenInput.value = getToken();
  if (!getToken()) $("#auth").open = false;
  $("#token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    setToken(tokenInput.value.trim());
    showAlert("");
    sessions.refresh();
    if (opened) {
      opened.connection.restart();
      opened.form.loadAgents();
    }
  });
  $("#token-clear").addEventListener("click", () => {
    tokenInput.value = "";
    setToken("");
    if (opened) opened.connection.restart();
  });
}

main();
