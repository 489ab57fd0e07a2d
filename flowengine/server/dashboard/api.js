// The API client: credentials, errors (401 asks once, 403 names the scope, 429 waits), and the
// live event socket with replay by seq and reconnection with backoff.
const TOKEN = "flowengine.token";
let dialogOpen = null;

export class ApiError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
  // The scope a 403 names ("needs the 'execute' scope"), for the disabled button's label.
  get scope() {
    const found = /needs the '(\w+)' scope/.exec(this.message);
    return found ? found[1] : null;
  }
}

export const token = () => sessionStorage.getItem(TOKEN);

// Callers of the UI: the banner for 429 and the hook that redraws after signing in.
export const hooks = { rateLimited: () => {}, signedIn: () => {} };

function askForToken(failed) {
  if (dialogOpen) return dialogOpen;
  const dialog = document.getElementById("auth");
  const input = dialog.querySelector("input");
  const note = dialog.querySelector(".auth-error");
  note.textContent = failed ? "Those credentials were refused. Try another key or token." : "";
  input.value = "";
  dialogOpen = new Promise((resolve) => {
    const done = (event) => {
      event.preventDefault();
      const value = input.value.trim();
      if (!value) return;
      sessionStorage.setItem(TOKEN, value);
      dialog.close();
      dialog.querySelector("form").removeEventListener("submit", done);
      dialogOpen = null;
      resolve(value);
      hooks.signedIn();
    };
    dialog.querySelector("form").addEventListener("submit", done);
    dialog.showModal();
    input.focus();
  });
  return dialogOpen;
}

export function signOut() {
  sessionStorage.removeItem(TOKEN);
}

// One API call: JSON in, { data, headers } out. A 401 asks for credentials (once per tab: the
// dialog is shared by every caller waiting) and tries again with them.
export async function call(method, path, body) {
  for (;;) {
    const headers = {};
    const current = token();
    if (current) headers.Authorization = `Bearer ${current}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (response.status === 401) {
      // Signed in again while this request was on its way: try with the new credentials.
      if (token() === current) await askForToken(Boolean(current));
      continue;
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = { error: text };
    }
    if (!response.ok) {
      const retryAfter = Number(response.headers.get("Retry-After")) || 0;
      const error = new ApiError(response.status, (data && data.error) || `${response.status} ${response.statusText}`, retryAfter);
      if (response.status === 429) hooks.rateLimited(retryAfter, error.message);
      throw error;
    }
    return { data, headers: response.headers };
  }
}

export const get = async (path) => (await call("GET", path)).data;
export const post = async (path, body) => (await call("POST", path, body ?? {})).data;
export const del = async (path) => (await call("DELETE", path)).data;

// Who is signed in and with what scopes, or null when the server does not say (older servers):
// then actions stay enabled until a 403 disables them.
let session;
let known = null; // the session once it has arrived, for synchronous checks
export function whoAmI() {
  session ||= get("/api/session").then((found) => (known = found)).catch((error) => {
    if (error.status === 404 || error.status === 405) return null;
    session = undefined;
    throw error;
  });
  return session;
}
hooks.forgetSession = () => (session = known = undefined);


export function allows(scope) {
  if (!known || known.auth === "off") return true;
  return (known.scopes || []).includes(scope);
}

// Reconnection delays: 0.5 s doubling to 15 s, each with jitter so that many tabs do not
// reconnect in step after a restart.
export function backoff(attempt) {
  const ceiling = Math.min(15000, 500 * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

// One live subscription. Events are handed over in seq order per execution, each once: replayed
// and live events overlap after a reconnect, and whatever is at or below the last seq seen for
// its execution is dropped. onState gets "connecting", "live", "paused" or "retrying in N s".
export class LiveSocket {
  constructor(params, onEvents, onState = () => {}) {
    this.params = params;
    this.onEvents = onEvents;
    this.onState = onState;
    this.lastSeq = new Map();
    this.attempt = 0;
    this.closed = false;
    this.batch = true; // dropped if the server does not take ?batch=true
    this.opened = 0; // sockets opened so far
    this.onReconnect = null; // called when a socket opens again: fetch what was missed meanwhile
    this.open();
  }

  url() {
    const query = new URLSearchParams(this.params);
    if (this.batch) query.set("batch", "true");
    const current = token();
    if (current) query.set("token", current);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/api/events?${query}`;
  }

  open() {
    if (this.closed) return;
    this.onState("connecting");
    let opened = false;
    const socket = (this.socket = new WebSocket(this.url()));
    socket.onopen = () => {
      opened = true;
      this.onState("live");
      if (this.opened++ > 0 && this.onReconnect) this.onReconnect();
    };
    socket.onmessage = (frame) => {
      this.attempt = 0;
      const parsed = JSON.parse(frame.data);
      const fresh = [];
      for (const event of Array.isArray(parsed) ? parsed : [parsed]) {
        const last = this.lastSeq.get(event.execution_id) || 0;
        if (event.seq <= last) continue;
        this.lastSeq.set(event.execution_id, event.seq);
        fresh.push(event);
      }
      if (fresh.length) this.onEvents(fresh);
    };
    socket.onclose = () => {
      if (this.closed) return;
      // Refused before it opened with batch asked for: an older server (400 on the parameter).
      if (!opened && this.batch) {
        this.batch = false;
        this.open();
        return;
      }
      const delay = backoff(this.attempt++);
      this.onState(`retrying in ${Math.ceil(delay / 1000)} s`);
      this.timer = setTimeout(() => this.open(), delay);
    };
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000);
  }
}
