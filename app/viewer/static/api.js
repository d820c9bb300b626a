// JSON calls to the API with the tab's bearer token, and the token itself (sessionStorage).

const TOKEN_KEY = "agentstream_token";

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// fetch() a JSON endpoint; resolves to the parsed body, rejects with ApiError.
export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (error) {
    throw new ApiError(0, "unreachable", `the server did not answer (${error.message})`);
  }
  let found = null;
  try {
    found = await response.json();
  } catch {
    found = null;
  }
  if (!response.ok) {
    const error = (found && found.error) || {};
    throw new ApiError(
      response.status,
      error.code || `http_${response.status}`,
      error.message || response.statusText || `HTTP ${response.status}`,
    );
  }
  return found;
}

// What to tell a person about an error; 401 and 403 point at the token field.
export function describe(error, what) {
  if (!(error instanceof ApiError)) return `${what}: ${error}`;
  if (error.status === 401) {
    return `${what}: not signed in (401 ${error.code}). ${error.message}. ` +
      "Enter a valid access token at the top of the page.";
  }
  if (error.status === 403) {
    return `${what}: this token is not allowed to do that (403 ${error.code}). ${error.message}.`;
  }
  return `${what}: ${error.message} (${error.status ? error.status + " " : ""}${error.code})`;
}

export function sessionPath(sessionId) {
  return `/v1/sessions/${encodeURIComponent(sessionId)}`;
}
