// What every page of the web client shares: API calls, building elements without parsing
// user text as HTML, times in the viewer's zone, and a WebSocket that reconnects by itself.

/** An API error: the status and the `{"error": {"code", "message"}}` body. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the API with the session cookie; resolves to the JSON body (null for 204). */
export async function api(method, path, { json, form } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = new URLSearchParams(form);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "network", "The server cannot be reached. Check your connection and try again.");
  }
  if (response.status === 204) return null;
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(
      response.status,
      body?.error?.code ?? `http_${response.status}`,
      body?.error?.message ?? `The request failed (${response.status}).`,
    );
  }
  return body;
}

/**
 * Builds an element. String children become text nodes, so user text is never parsed as
 * HTML. Props: `class`, `text`, `dataset`, `on<event>` handlers, anything else an attribute.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

/** Web and mail addresses in text: `http(s)://…`, `www.…` and `mailto:…`, at a word's start. */
const addressPattern = /\b(?:https?:\/\/|www\.|mailto:)[^\s<>"]+/gi;
/** Punctuation that ends a sentence rather than an address ("see https://example.com."). */
const trailingPunctuation = /[.,;:!?'"\])}]+$/;

/** The link an address found in text stands for, or null when it should stay text. */
function linkTarget(address) {
  const href = /^www\./i.test(address) ? `https://${address}` : address;
  let url;
  try {
    url = new URL(href);
  } catch {
    return null;
  }
  if (url.protocol === "mailto:") return /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(url.pathname) ? url.href : null;
  return (url.protocol === "http:" || url.protocol === "https:") && url.hostname ? url.href : null;
}

/**
 * Text with its web and mail addresses as links, for `el()`'s children: strings stay text, and
 * each link is an `<a>` built as a DOM node (never from HTML) that opens in a new tab without
 * giving it this page (`rel="noopener noreferrer"`). Only http, https and mailto addresses
 * become links; `javascript:` and any other scheme stay text.
 */
export function linkify(text) {
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(addressPattern)) {
    let address = match[0];
    // A closing bracket belongs to the address only when it opened one: "(see https://x.y/a_(b))".
    let trailing = address.match(trailingPunctuation)?.[0] ?? "";
    while (trailing.startsWith(")") && address.slice(0, -trailing.length).split("(").length >
      address.slice(0, -trailing.length).split(")").length) {
      trailing = trailing.slice(1);
    }
    address = address.slice(0, address.length - trailing.length);
    const href = linkTarget(address);
    if (!href) continue;
    parts.push(text.slice(last, match.index));
    parts.push(el("a", { href, rel: "noopener noreferrer", target: "_blank", text: address }));
    last = match.index + address.length;
  }
  parts.push(text.slice(last));
  return parts.filter((part) => part !== "");
}

/** Shows or hides a form's error line. */
export function showError(node, message) {
  node.textContent = message ?? "";
  node.hidden = !message;
}

let limitsRequest = null;

/** The input limits the server enforces (`GET /limits`), asked once per page. */
export function inputLimits() {
  limitsRequest ??= api("GET", "/limits");
  return limitsRequest;
}

const graphemes = typeof Intl.Segmenter === "function" ? new Intl.Segmenter(undefined, { granularity: "grapheme" }) : null;

/** Characters as a person sees them, and as the server counts them: an emoji with its modifiers is one. */
export function characterCount(text) {
  if (!graphemes) return [...text].length;
  let count = 0;
  for (const _ of graphemes.segment(text)) count += 1;
  return count;
}

/** Shows a field's own message (the element `<id>-error` below it), or hides it. */
export function showFieldError(input, message) {
  showError(document.getElementById(`${input.id}-error`), message);
  if (message) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

/**
 * Checks fields before a form is sent. `rules` pairs each input with a function that names
 * what is wrong with a value, or returns null. Shows each problem next to its field, focuses
 * the first, and re-checks a marked field as it is corrected. True when every field passes.
 */
export function checkFields(rules) {
  let first = null;
  for (const [input, rule] of rules) {
    const problem = rule(input.value);
    showFieldError(input, problem);
    first ??= problem ? input : null;
    if (problem && !input.dataset.recheck) {
      input.dataset.recheck = "true";
      input.addEventListener("input", () => {
        if (input.hasAttribute("aria-invalid")) showFieldError(input, rule(input.value));
      });
    }
  }
  first?.focus();
  return first === null;
}

/** Bytes of `text` in UTF-8, as the server counts a password's length. */
export function utf8Bytes(text) {
  return new TextEncoder().encode(text).length;
}

/** What is wrong with a new password under the server's `limits` (`GET /limits`), or null. */
export function passwordProblem(password, limits) {
  if (characterCount(password) < limits.min_password_length) {
    return `Too short: a password needs at least ${limits.min_password_length} characters.`;
  }
  if (utf8Bytes(password) > limits.max_password_bytes) {
    return `Too long: at most ${limits.max_password_bytes} bytes (fewer characters outside English letters).`;
  }
  return null;
}

/** Hides a form's error line and its fields' messages. */
export function clearErrors(form) {
  for (const node of form.querySelectorAll(".form-error, .field-error")) showError(node, null);
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

/** "14:05" today, "25 Nov, 14:05" on other days, in the viewer's time zone. */
export function shortTime(iso) {
  const date = new Date(iso);
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  if (date.toDateString() === new Date().toDateString()) return time;
  return `${date.toLocaleDateString([], { day: "numeric", month: "short" })}, ${time}`;
}

/** "14:05", in the viewer's time zone: a message's time under its day's separator. */
export function clockTime(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/**
 * The label of a day in a conversation, in the viewer's time zone: "Today", "Yesterday", the
 * weekday within the last week, else the date in the viewer's locale (with the year when not this one).
 */
export function dayLabel(iso, now = new Date()) {
  const day = new Date(iso);
  const midnight = (date) => new Date(date.getFullYear(), date.getMonth(), date.getDate());
  const daysAgo = Math.round((midnight(now) - midnight(day)) / 86_400_000);
  if (daysAgo === 0) return "Today";
  if (daysAgo === 1) return "Yesterday";
  if (daysAgo > 1 && daysAgo < 7) return day.toLocaleDateString([], { weekday: "long" });
  const year = day.getFullYear() === now.getFullYear() ? undefined : "numeric";
  return day.toLocaleDateString([], { day: "numeric", month: "long", year });
}

/** The full local date and time, for tooltips and `<time>` titles. */
export function longTime(iso) {
  return new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "medium" });
}

/** A fresh `client_id`: 32 random hex digits (works on plain-HTTP origins too). */
export function newClientId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/**
 * Goes to the log-in page after the server stopped taking this page's session (a restart
 * without a configured secret, a log-out elsewhere, a password change), which then says so.
 */
export function sessionEnded() {
  location.assign("/?session=ended");
}

/** Logs out and returns to the log-in page. */
export async function logOut() {
  await api("POST", "/auth/logout").catch(() => {});
  location.assign("/");
}

/**
 * A WebSocket to `/ws` that reconnects with exponential backoff and jitter. `onFrame` gets
 * every parsed frame (`ready` first after each connect); `onState` gets "connecting",
 * "online", "waiting" (with the delay in ms) or "stopped". A close for an ended session
 * (1008), or a refused handshake without a session, sends the browser to the log-in page
 * (`sessionEnded`); a `ready` with a new database generation reloads the page.
 */
export class LiveConnection {
  constructor(path, { onFrame, onState }) {
    this.path = path;
    this.onFrame = onFrame;
    this.onState = onState;
    this.attempts = 0;
    this.socket = null;
    this.timer = null;
    this.stopped = false;
    addEventListener("online", () => this.reconnectNow());
    // The browser knows it lost the network: say so now rather than when TCP gives up.
    addEventListener("offline", () => this.socket?.close());
  }

  get isOpen() {
    return this.socket?.readyState === WebSocket.OPEN && this.ready;
  }

  start() {
    if (this.stopped) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}${this.path}`);
    this.socket = socket;
    this.ready = false;
    this.onState("connecting");
    socket.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame.type === "ready") {
        // A new generation: the database was restored from a backup, and what the page shows
        // may name seqs that now belong to other messages. Reading everything again is a
        // reload (unsent messages wait in sessionStorage). docs/protocol.md, "After a restore".
        if (this.generation && frame.generation !== this.generation) return location.reload();
        this.generation = frame.generation;
        this.ready = true;
        this.attempts = 0;
        this.onState("online");
      }
      this.onFrame(frame);
    });
    socket.addEventListener("close", (event) => this.closed(socket, event));
  }

  /** Sends a frame; false when the connection is not ready (the caller keeps it for later). */
  send(frame) {
    if (!this.isOpen) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  /**
   * The page is replacing its session: a password change ends every session, this page's
   * socket included (1008), and answers with a new cookie. That close is then expected, and
   * the connection comes back once `renewal` (the request) has settled. Null: the change failed.
   */
  renewSession(renewal) {
    this.renewal = renewal;
  }

  /** Closes for good (the user left the chat, or was removed from it). */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.socket?.close(1000);
    this.onState("stopped");
  }

  reconnectNow() {
    if (this.stopped || this.socket?.readyState !== WebSocket.CLOSED) return;
    clearTimeout(this.timer);
    this.start();
  }

  async closed(socket, event) {
    if (socket !== this.socket || this.stopped) return;
    const wasReady = this.ready;
    this.ready = false;
    if (event.code === 1008) {
      const renewal = this.renewal;
      this.renewal = null;
      if (!renewal) return sessionEnded();
      await renewal.catch(() => {});
      return this.start();
    }
    if (!wasReady) {
      // The handshake may have been refused because the session ended (the browser does not
      // show the HTTP status): ask the API, which answers 401 then.
      try {
        await api("GET", "/users/me");
      } catch (error) {
        if (error.status === 401) return sessionEnded();
      }
    }
    const delay = Math.min(30_000, 500 * 2 ** this.attempts) * (0.5 + Math.random() / 2);
    this.attempts += 1;
    this.onState("waiting", delay);
    this.timer = setTimeout(() => this.start(), delay);
  }
}

/** Shows a LiveConnection state in a status element. */
export function renderConnectionState(node, state, delay) {
  const labels = { connecting: "Connecting…", online: "Live", stopped: "Disconnected", left: "Not a member" };
  node.dataset.state = state;
  node.textContent = state === "waiting" ? "Offline, reconnecting…" : labels[state];
  node.title = state === "waiting" ? `Next attempt in ${Math.ceil(delay / 1000)} s` : "";
}
