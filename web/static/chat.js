// One chat: history with paging, live messages in seq order, sending with pending/sent/read
// states, replies, edits and deletions, read markers, typing, presence and (for the creator)
// membership.
import {
  api, el, showError, longTime, newClientId, LiveConnection, renderConnectionState, sessionEnded,
  characterCount, inputLimits, linkify, clockTime, dayLabel,
} from "./common.js";

const chatId = Number(location.pathname.split("/").pop());
const pageSize = 50;
const pendingKey = `pending:${chatId}`;

const view = {
  scroller: document.getElementById("messages"),
  list: document.getElementById("message-list"),
  historyStatus: document.getElementById("history-status"),
  typing: document.getElementById("typing"),
  banner: document.getElementById("chat-banner"),
  composer: document.getElementById("composer"),
  text: document.getElementById("composer-text"),
  count: document.getElementById("composer-count"),
  composerError: document.getElementById("composer-error"),
  members: document.getElementById("member-list"),
  addMember: document.getElementById("add-member"),
  search: document.getElementById("member-search"),
  results: document.getElementById("member-results"),
  memberError: document.getElementById("member-error"),
  membersNote: document.getElementById("members-note"),
  leave: document.getElementById("leave-chat"),
  leaveButton: document.getElementById("leave-button"),
  leaveError: document.getElementById("leave-error"),
  replyBar: document.getElementById("reply-bar"),
  replyQuote: document.getElementById("reply-quote"),
  replyCancel: document.getElementById("reply-cancel"),
  jumpLatest: document.getElementById("jump-latest"),
};

const state = {
  me: null,
  chat: null,
  /** The server's input limits (`GET /limits`). */
  limits: null,
  /** user id -> { name, readSeq, online } for current members. */
  members: new Map(),
  /** user id -> name, former members included, for senders of old messages. */
  names: new Map(),
  /** seq -> { message, node } for every message shown. */
  messages: new Map(),
  /** message id -> seq, for replies. */
  seqOf: new Map(),
  /** The chat's edits and deletions are known up to this update_seq (`resume`'s `after_update`). */
  lastUpdate: 0,
  /** The message the composer answers: its id, or null. */
  replyTo: null,
  /** client_id -> { text, replyTo, node, failed } for sends without an ack yet, in the order typed. */
  pending: new Map(),
  /** The one send on the wire (its client_id), and the timer of a retry the server asked for. */
  sending: { clientId: null, retryTimer: null },
  lowestSeq: null,
  highestSeq: 0,
  reachedStart: false,
  loadingOlder: false,
  /**
   * The page shows older messages around one a search found (`#seq=N`), not the chat's end:
   * newer ones load as the reader scrolls down, and live ones wait until the end is reached.
   */
  detached: false,
  loadingNewer: false,
  historyError: null,
  catchingUp: false,
  /** My read marker as last sent or heard. */
  readSeq: 0,
  removed: false,
  /** I asked to leave: my own `member_removed` says I left, not that I was removed. */
  leaving: false,
  /** Ids of the membership events fetched, and those waiting for the message they follow: after_seq -> events. */
  knownEvents: new Set(),
  waitingEvents: new Map(),
  /** user id -> timer hiding their typing notice. */
  typing: new Map(),
  lastTypingSent: 0,
};

const connection = new LiveConnection(`/ws?chat_id=${chatId}`, {
  onFrame: handleFrame,
  onState: (connectionState, delay) =>
    renderConnectionState(document.getElementById("connection"), connectionState, delay),
});

// ---- Rendering messages ---------------------------------------------------------------

function senderName(id) {
  if (id === state.me.id) return "You";
  return state.names.get(id) ?? "Former member";
}

/** Read per the server's rule: every member other than the sender has read up to it. */
function isRead(message) {
  if (message.is_read) return true;
  const others = [...state.members].filter(([id]) => id !== message.sender_id);
  return others.length > 0 && others.every(([, member]) => member.readSeq >= message.seq);
}

function ticks(status) {
  const labels = { pending: ["", "Sending"], sent: ["✓", "Sent"], read: ["✓✓", "Read"], failed: ["!", "Not sent"] };
  const [symbol, label] = labels[status];
  return el("span", { class: `ticks ${status}`, title: label, "aria-label": label, text: symbol });
}

function messageNode({ text, senderId, timestamp, status, replyTo = null }) {
  const mine = senderId === state.me.id;
  return el(
    "li",
    { class: `message ${mine ? "mine" : "theirs"}`, dataset: { status, sender: senderId } },
    el(
      "div",
      { class: "bubble", tabindex: "-1" },
      mine ? null : el("span", { class: "sender", dir: "auto", text: senderName(senderId) }),
      replyTo === null ? null : quoteButton(replyTo),
      el("p", { class: "text", dir: "auto" }, ...linkify(text)),
      el(
        "span",
        { class: "meta" },
        timestamp ? el("time", { datetime: timestamp, title: longTime(timestamp), text: clockTime(timestamp) }) : null,
        mine ? ticks(status) : null,
      ),
    ),
  );
}

/** The message with this id, when it is shown. */
function shownMessage(id) {
  return state.messages.get(state.seqOf.get(id));
}

/** "Arina: the start of her message", for a quote and the reply bar. */
function quoteText(id) {
  const original = shownMessage(id)?.message;
  if (!original) return "An earlier message";
  const text = original.deleted ? "Message deleted" : original.text.slice(0, 120);
  return `${senderName(original.sender_id)}: ${text}`;
}

/** The quote of the message a reply answers: a button that shows the original. */
function quoteButton(id) {
  const button = el("button", { type: "button", class: "quote", dir: "auto", dataset: { replyTo: id }, text: quoteText(id) });
  button.addEventListener("click", () => showOriginal(id));
  return button;
}

/** Scrolls to the message `id` (loading older pages until it shows) and highlights it. */
async function showOriginal(id) {
  while (!shownMessage(id) && !state.reachedStart) {
    const before = state.lowestSeq;
    await loadOlder();
    if (state.lowestSeq === before) break;
  }
  const shown = shownMessage(id);
  if (shown) highlight(shown.node);
}

/** Scrolls a message into the middle of the view, marks it for a moment and focuses it. */
function highlight(node) {
  node.scrollIntoView({ block: "center" });
  node.classList.add("highlight");
  node.querySelector(".bubble").focus({ preventScroll: true });
  setTimeout(() => node.classList.remove("highlight"), 2000);
}

/**
 * Shows a stored message's current state: its text, or "Message deleted" for a tombstone, the
 * "(edited)" marker, and the actions the user may take on it (reply; edit and delete their own;
 * the creator of a group deletes any).
 */
function renderStored(node, message) {
  const text = node.querySelector(".text");
  text.replaceChildren(...(message.deleted ? ["Message deleted"] : linkify(message.text)));
  text.classList.toggle("deleted", message.deleted);
  node.querySelector(".edited")?.remove();
  if (message.edited_at && !message.deleted) {
    node.querySelector(".meta").prepend(
      el("span", { class: "edited", title: `Edited ${longTime(message.edited_at)}`, text: "(edited)" }));
  }
  node.querySelector(".actions")?.remove();
  if (message.deleted || state.removed) return;
  const mine = message.sender_id === state.me.id;
  const moderator = state.chat.chat_type === "GROUP" && state.chat.creator_id === state.me.id;
  const action = (label, name, handler) => {
    const button = el("button", { type: "button", class: "link", "aria-label": `${label} ${name}`, text: label });
    button.addEventListener("click", () => handler(button));
    return button;
  };
  const name = `the message of ${senderName(message.sender_id)} at ${clockTime(message.timestamp)}`;
  node.querySelector(".bubble").append(el(
    "span",
    { class: "actions" },
    action("Reply", name, () => startReply(message.id)),
    mine ? action("Edit", name, () => startEdit(message.seq)) : null,
    mine || moderator
      ? action("Delete", name, (button) => confirmInPlace(button, "Delete this message?", {
        yesLabel: "Yes, delete this message", noLabel: "Keep this message",
        onYes: (confirmation) => deleteMessage(message.id, confirmation, button),
      }))
      : null,
  ));
}

/** Keeps the newer of two copies of a message (by update_seq): an edit or deletion arrived. */
function applyUpdate(message) {
  if (message.chat_id !== chatId) return;
  state.lastUpdate = Math.max(state.lastUpdate, message.update_seq);
  const shown = state.messages.get(message.seq);
  if (!shown || shown.message.update_seq >= message.update_seq) return;
  shown.message = message;
  if (!shown.node.querySelector(".edit-form")) renderStored(shown.node, message);
  for (const quote of view.list.querySelectorAll(`.quote[data-reply-to="${message.id}"]`)) quote.textContent = quoteText(message.id);
  if (state.replyTo === message.id) renderReplyBar();
}

function setStatus(node, status) {
  if (node.dataset.status === status) return;
  node.dataset.status = status;
  node.querySelector(".ticks")?.replaceWith(ticks(status));
}

function nearBottom() {
  const { scrollHeight, scrollTop, clientHeight } = view.scroller;
  return scrollHeight - scrollTop - clientHeight < 120;
}

function scrollToBottom() {
  view.scroller.scrollTop = view.scroller.scrollHeight;
}

/** Adds a stored message in its seq place (a no-op for a seq already shown). */
function addMessage(message, node = null) {
  if (state.messages.has(message.seq)) {
    node?.remove();
    return false;
  }
  const status = message.sender_id === state.me.id ? (isRead(message) ? "read" : "sent") : "received";
  if (node) {
    setStatus(node, status);
    const time = el("time", { datetime: message.timestamp, title: longTime(message.timestamp), text: clockTime(message.timestamp) });
    node.querySelector(".meta").prepend(time);
  } else {
    node = messageNode({
      text: message.text, senderId: message.sender_id, timestamp: message.timestamp, status, replyTo: message.reply_to,
    });
  }
  node.dataset.seq = message.seq;
  state.messages.set(message.seq, { message, node });
  state.seqOf.set(message.id, message.seq);
  renderStored(node, message);
  for (const quote of view.list.querySelectorAll(`.quote[data-reply-to="${message.id}"]`)) quote.textContent = quoteText(message.id);
  view.list.insertBefore(node, insertionPoint(message.seq));
  markDay(node);
  markDay(nextMessage(node));
  markRuns(node);
  markRuns(node.nextElementSibling);
  state.lowestSeq = Math.min(state.lowestSeq ?? message.seq, message.seq);
  state.highestSeq = Math.max(state.highestSeq, message.seq);
  if (message.sender_id === state.me.id) labelReaders(node, message);
  else readObserver.observe(node);
  placeWaitingEvents(message.seq);
  return true;
}

/** Marks a message that follows one from the same sender on the same day, which then shows no name. */
function markRuns(node) {
  if (!node?.classList.contains("message")) return;
  node.classList.toggle(
    "continued",
    node.previousElementSibling?.dataset.sender === node.dataset.sender && !node.querySelector(".day-separator"),
  );
}

function storedMessage(node) {
  return state.messages.get(Number(node.dataset.seq))?.message;
}

function nextMessage(node) {
  let next = node.nextElementSibling;
  while (next && !next.dataset.seq) next = next.nextElementSibling;
  return next;
}

function previousMessage(node) {
  let previous = node.previousElementSibling;
  while (previous && !previous.dataset.seq) previous = previous.previousElementSibling;
  return previous;
}

/** Puts a day's label ("Today", "Yesterday", a date) above the first message shown of each day. */
function markDay(node) {
  const message = node && storedMessage(node);
  if (!message) return;
  const previous = previousMessage(node);
  const sameDay = previous && new Date(storedMessage(previous).timestamp).toDateString() ===
    new Date(message.timestamp).toDateString();
  const separator = node.querySelector(".day-separator");
  if (sameDay) {
    separator?.remove();
  } else if (separator) {
    separator.textContent = dayLabel(message.timestamp);
  } else {
    node.prepend(el("span", { class: "day-separator", role: "separator", text: dayLabel(message.timestamp) }));
  }
}

/** The node a message with `seq` goes before: stored messages in seq order, then pending sends. */
function insertionPoint(seq) {
  if (state.lowestSeq === null || seq > state.highestSeq) return firstPendingNode();
  if (seq < state.lowestSeq) return view.list.firstChild;
  let next = seq + 1;
  while (!state.messages.has(next)) next += 1;
  const node = state.messages.get(next).node;
  return node.previousSibling?.classList.contains("unread-divider") ? node.previousSibling : node;
}

function firstPendingNode() {
  for (const pending of state.pending.values()) if (pending.node.isConnected) return pending.node;
  return null;
}

/** In a group, who has read a message of mine and who has not yet, from the members' read markers. */
function readBy(message) {
  const others = [...state.members].filter(([id]) => id !== message.sender_id).map(([, member]) => member);
  const read = others.filter((member) => member.readSeq >= message.seq).map((member) => member.name);
  const unread = others.filter((member) => member.readSeq < message.seq).map((member) => member.name);
  if (!read.length) return "Sent; nobody has read it yet";
  return unread.length ? `Read by ${read.join(", ")}; not yet by ${unread.join(", ")}` : `Read by ${read.join(", ")}`;
}

/** A message of mine in a group says on its ticks who has read it. */
function labelReaders(node, message) {
  const ticks = node.querySelector(".ticks");
  if (state.chat.chat_type !== "GROUP" || !ticks) return;
  ticks.title = readBy(message);
  ticks.setAttribute("aria-label", ticks.title);
}

function refreshTicks() {
  for (const { message, node } of state.messages.values()) {
    if (message.sender_id !== state.me.id) continue;
    if (node.dataset.status === "sent" && isRead(message)) setStatus(node, "read");
    labelReaders(node, message);
  }
}

// ---- History --------------------------------------------------------------------------

async function loadLatest() {
  const unread = state.chat.last_seq - state.readSeq;
  const limit = Math.min(500, Math.max(pageSize, unread + 10));
  const page = await api("GET", `/history/${chatId}?before_seq=${state.chat.last_seq + 1}&limit=${limit}`);
  const firstUnread = page.find((message) => message.seq > state.readSeq && message.sender_id !== state.me.id);
  for (const message of page) addMessage(message);
  state.reachedStart = page.length === 0 || page[0].seq === 1;
  await loadMembershipEvents(state.reachedStart ? 0 : page[0].seq);
  renderHistoryStatus();
  if (firstUnread) {
    const node = state.messages.get(firstUnread.seq).node;
    view.list.insertBefore(el("li", { class: "unread-divider", role: "separator", text: "Unread messages" }), node);
    node.previousSibling.scrollIntoView({ block: "start" });
  } else {
    scrollToBottom();
  }
  await fillScreen();
}

/** `#seq=N` in the address: the message a search result opens the chat at, if it exists. */
function requestedSeq() {
  const match = /^#seq=(\d+)$/.exec(location.hash);
  const seq = match ? Number(match[1]) : null;
  return seq !== null && seq >= 1 && seq <= state.chat.last_seq ? seq : null;
}

/** Opens the chat at message `seq`: a page of history around it, the message highlighted. */
async function loadAround(seq) {
  const after = Math.max(0, seq - Math.floor(pageSize / 2) - 1);
  const page = await api("GET", `/history/${chatId}?after_seq=${after}&limit=${pageSize}`);
  for (const message of page) addMessage(message);
  state.reachedStart = after === 0;
  state.detached = state.highestSeq < state.chat.last_seq;
  await loadMembershipEvents(state.reachedStart ? 0 : after + 1, state.detached ? state.highestSeq : null);
  renderHistoryStatus();
  renderDetached();
  const shown = state.messages.get(seq);
  if (shown) highlight(shown.node);
  await fillScreen();
}

/** While detached: loads the page after the newest shown message; at the chat's end, goes live. */
async function loadNewer() {
  if (!state.detached || state.loadingNewer) return;
  state.loadingNewer = true;
  try {
    const from = state.highestSeq;
    const page = await api("GET", `/history/${chatId}?after_seq=${from}&limit=${pageSize}`);
    for (const message of page) addMessage(message);
    if (page.length < pageSize) {
      // The end: live delivery resumes from here, with what changed meanwhile.
      state.detached = false;
      await loadMembershipEvents(from + 1);
      catchUp(state.highestSeq, 0);
    } else {
      await loadMembershipEvents(from + 1, state.highestSeq);
    }
  } catch (error) {
    view.historyStatus.textContent = `Could not load newer messages: ${error.message}`;
  } finally {
    state.loadingNewer = false;
    renderDetached();
  }
}

function renderDetached() {
  view.jumpLatest.hidden = !state.detached;
}

/** Leaves the older messages for the chat's end: the page opens afresh without `#seq=`. */
function jumpToLatest() {
  location.replace(location.pathname);
}

view.jumpLatest.addEventListener("click", jumpToLatest);

/** Loads the page before the oldest shown message, keeping what is on screen in place. */
async function loadOlder() {
  if (state.loadingOlder || state.reachedStart || state.lowestSeq === null) return;
  // The bubble, not its row: the row's day label goes when older messages of that day arrive.
  const anchor = state.messages.get(state.lowestSeq).node.querySelector(".bubble");
  const anchorTop = anchor.getBoundingClientRect().top;
  state.loadingOlder = true;
  state.historyError = null;
  renderHistoryStatus();
  try {
    const before = state.lowestSeq;
    const page = await api("GET", `/history/${chatId}?before_seq=${before}&limit=${pageSize}`);
    for (const message of page.reverse()) addMessage(message);
    state.reachedStart = page.length < pageSize || state.lowestSeq === 1;
    await loadMembershipEvents(state.reachedStart ? 0 : state.lowestSeq, before - 1);
  } catch (error) {
    state.historyError = `Could not load older messages (${error.message}). Scroll up to try again.`;
  } finally {
    state.loadingOlder = false;
    renderHistoryStatus();
    view.scroller.scrollTop += anchor.getBoundingClientRect().top - anchorTop;
  }
}

/** Loads older pages until the list can scroll (so scrolling up can ask for more). */
async function fillScreen() {
  while (!state.reachedStart && view.scroller.scrollHeight <= view.scroller.clientHeight) {
    const before = state.lowestSeq;
    await loadOlder();
    if (state.lowestSeq === before) break;
  }
}

function renderHistoryStatus() {
  if (state.historyError) view.historyStatus.textContent = state.historyError;
  else if (state.loadingOlder) view.historyStatus.textContent = "Loading older messages…";
  else if (state.reachedStart) view.historyStatus.textContent = state.messages.size ? "This is the start of the chat." : "No messages yet. Say hello!";
  else view.historyStatus.textContent = "";
}

/** After a reconnect: fetch what was missed (too much for `resume`) from history, then resume. */
async function catchUp(lastSeq, resumeLimit) {
  if (state.catchingUp) return;
  state.catchingUp = true;
  try {
    while (lastSeq - state.highestSeq > resumeLimit) {
      const page = await api("GET", `/history/${chatId}?after_seq=${state.highestSeq}&limit=1000`);
      if (page.length === 0) break;
      const follow = nearBottom();
      for (const message of page) addMessage(message);
      if (follow) scrollToBottom();
    }
    connection.send({ type: "resume", chat_id: chatId, after_seq: state.highestSeq, after_update: state.lastUpdate });
  } catch (error) {
    view.historyStatus.textContent = `Could not catch up: ${error.message}`;
  } finally {
    state.catchingUp = false;
  }
}

// ---- Membership lines ----------------------------------------------------------------

/**
 * Fetches who added or removed whom after messages `fromSeq` through `toSeq` and shows each
 * as a line after the message it follows. A failure leaves those lines out until a reload;
 * the messages are unaffected.
 */
async function loadMembershipEvents(fromSeq, toSeq = null) {
  const range = `from_seq=${fromSeq}${toSeq === null ? "" : `&to_seq=${toSeq}`}`;
  let events;
  try {
    events = await api("GET", `/chats/${chatId}/membership-events?${range}&limit=500`);
  } catch {
    return;
  }
  for (const event of events) {
    if (state.knownEvents.has(event.id)) continue;
    state.knownEvents.add(event.id);
    state.waitingEvents.set(event.after_seq, [...(state.waitingEvents.get(event.after_seq) ?? []), event]);
    placeWaitingEvents(event.after_seq);
  }
}

/** Shows the events that follow message `seq` once it is on screen (0: once the start is). */
function placeWaitingEvents(seq) {
  const events = state.waitingEvents.get(seq);
  const anchor = seq === 0 ? null : state.messages.get(seq)?.node;
  if (!events || (seq === 0 ? !state.reachedStart : !anchor)) return;
  state.waitingEvents.delete(seq);
  // After the message and the lines already after it, so a message's lines keep their order.
  let next = anchor ? anchor.nextElementSibling : view.list.firstElementChild;
  while (next?.classList.contains("membership-line")) next = next.nextElementSibling;
  for (const event of events) {
    const line = el("li", { class: "membership-line", role: "note", text: membershipText(event) });
    line.title = longTime(event.timestamp);
    view.list.insertBefore(line, next);
  }
  markRuns(next);
}

/**
 * "Sergey removed Arina", "You added Arina", "Sergey added you", "Arina was removed", "Arina left"
 * (a removal whose actor is the member).
 */
function membershipText(event) {
  const verb = event.type === "member_added" ? "added" : "removed";
  const mine = event.user_id === state.me.id;
  if (event.actor_id === undefined) return mine ? `You were ${verb}` : `${event.user_name} was ${verb}`;
  if (event.type === "member_removed" && event.actor_id === event.user_id) return mine ? "You left" : `${event.user_name} left`;
  const actor = event.actor_id === state.me.id ? "You" : event.actor_name;
  return `${actor} ${verb} ${mine ? "you" : event.user_name}`;
}

// ---- Reading --------------------------------------------------------------------------

const visible = new Set();
const readObserver = new IntersectionObserver(
  (entries) => {
    for (const entry of entries) {
      const seq = Number(entry.target.dataset.seq);
      if (entry.isIntersecting) visible.add(seq);
      else visible.delete(seq);
    }
    markRead();
  },
  { root: view.scroller, threshold: 0.5 },
);

/** Sends `read` up to the newest message on screen, only while the tab is seen and focused. */
function markRead() {
  if (document.visibilityState !== "visible" || !document.hasFocus() || visible.size === 0) return;
  const newest = Math.max(...visible);
  if (newest > state.readSeq && connection.send({ type: "read", chat_id: chatId, seq: newest })) {
    state.readSeq = newest;
  }
}

addEventListener("focus", markRead);
document.addEventListener("visibilitychange", markRead);

// ---- Sending --------------------------------------------------------------------------

function savePending() {
  const kept = [...state.pending].filter(([, pending]) => !pending.failed)
    .map(([clientId, { text, replyTo }]) => ({ clientId, text, replyTo }));
  if (kept.length) sessionStorage.setItem(pendingKey, JSON.stringify(kept));
  else sessionStorage.removeItem(pendingKey);
}

function queueSend(clientId, text, replyTo = null) {
  const node = messageNode({ text, senderId: state.me.id, status: "pending", replyTo });
  node.dataset.clientId = clientId;
  state.pending.set(clientId, { text, replyTo, node, failed: false });
  view.list.append(node);
  savePending();
  pumpSends();
}

/**
 * Sends in the order typed, one at a time: the next goes out once the server has stored the
 * previous one (its ack) or refused it for good. A send the server asks to retry is repeated,
 * with its client_id, before anything after it, so no later message can be stored first. (A
 * client that pipelines sends gets them stored in the order they arrive, and a refused one is
 * overtaken by the later ones the server accepted: see docs/protocol.md.)
 */
function pumpSends() {
  const { sending } = state;
  if (sending.clientId !== null || sending.retryTimer !== null) return;
  for (const [clientId, { text, replyTo, failed }] of state.pending) {
    if (failed) continue;
    const frame = { type: "send", chat_id: chatId, client_id: clientId, text };
    if (replyTo !== null) frame.reply_to = replyTo;
    if (connection.send(frame)) sending.clientId = clientId;
    return;
  }
}

/** The send on the wire was answered (stored, or refused for good): the next one may go. */
function sendAnswered(clientId) {
  if (state.sending.clientId !== clientId) return;
  state.sending.clientId = null;
  pumpSends();
}

/** Repeats the send on the wire after `wait` ms, spread so that clients do not return together. */
function retrySend(wait) {
  const { sending } = state;
  clearTimeout(sending.retryTimer);
  sending.retryTimer = setTimeout(() => {
    sending.retryTimer = null;
    sending.clientId = null;
    pumpSends();
  }, wait + Math.random() * wait * 0.5);
}

/**
 * Shows how long the draft is once it nears the server's limit, and says so when it is over:
 * a message is never cut to fit, and one over the limit is not sent.
 */
function renderCount() {
  const limit = state.limits?.max_message_length;
  if (!limit) return;
  const count = characterCount(view.text.value);
  view.count.hidden = count < limit * 0.9;
  view.count.textContent = `${count.toLocaleString()} / ${limit.toLocaleString()}`;
  view.count.classList.toggle("over", count > limit);
  if (count <= limit) showError(view.composerError, null);
  return count;
}

function sendComposer() {
  const text = view.text.value;
  if (!text.trim() || state.removed) return;
  const count = renderCount();
  const limit = state.limits?.max_message_length;
  if (limit && count > limit) {
    showError(
      view.composerError,
      `Not sent: this message has ${count.toLocaleString()} characters, and the limit is ${limit.toLocaleString()}. ` +
        `Shorten it by ${(count - limit).toLocaleString()}, or send it in parts.`,
    );
    return;
  }
  queueSend(newClientId(), text, state.replyTo);
  endReply();
  // A message goes at the chat's end: show the end (the send waits in sessionStorage).
  if (state.detached) return jumpToLatest();
  view.text.value = "";
  renderCount();
  resizeComposer();
  scrollToBottom();
}

/** The sender's own stored copy: from an `ack`, or (rarely) a `message` from another path. */
function confirmSend(message) {
  const pending = state.pending.get(message.client_id);
  if (!pending) return addMessage(message);
  state.pending.delete(message.client_id);
  savePending();
  addMessage(message, pending.node);
  sendAnswered(message.client_id);
}

function failSend(clientId, reason) {
  const pending = state.pending.get(clientId);
  if (!pending) return;
  pending.failed = true;
  savePending();
  setStatus(pending.node, "failed");
  sendAnswered(clientId);
  const discard = el("button", { type: "button", class: "link", text: "Discard" });
  discard.addEventListener("click", () => {
    state.pending.delete(clientId);
    pending.node.remove();
  });
  pending.node.querySelector(".bubble").append(el("span", { class: "send-error", text: `Not sent: ${reason} ` }, discard));
}

/** After a reconnect: the send on the wire may have lost its answer, so it goes again first. */
function resendPending() {
  clearTimeout(state.sending.retryTimer);
  state.sending = { clientId: null, retryTimer: null };
  pumpSends();
}

// ---- Replies, edits and deletions ----------------------------------------------------

/** The composer answers message `id` until the reply is sent or cancelled. */
function startReply(id) {
  state.replyTo = id;
  renderReplyBar();
  view.text.focus();
}

function endReply() {
  state.replyTo = null;
  renderReplyBar();
}

function renderReplyBar() {
  view.replyBar.hidden = state.replyTo === null;
  view.replyQuote.textContent = state.replyTo === null ? "" : quoteText(state.replyTo);
}

view.replyCancel.addEventListener("click", () => {
  endReply();
  view.text.focus();
});

/** Replaces a message of mine with a form editing its text: Enter saves, Escape cancels. */
function startEdit(seq) {
  const shown = state.messages.get(seq);
  if (!shown || shown.node.querySelector(".edit-form")) return;
  const { node } = shown;
  const box = el("textarea", { class: "edit-text", rows: "2", "aria-label": "Edit message", dir: "auto" });
  box.value = shown.message.text;
  const error = el("p", { class: "form-error", role: "alert", hidden: "" });
  const save = el("button", { type: "submit", class: "link", text: "Save" });
  const cancel = el("button", { type: "button", class: "link", text: "Cancel" });
  const form = el("form", { class: "edit-form" }, box, el("span", { class: "edit-buttons" }, save, cancel), error);
  const finish = () => {
    form.remove();
    node.querySelector(".text").hidden = false;
    renderStored(node, state.messages.get(seq).message);
    node.querySelector(".actions button")?.focus();
  };
  cancel.addEventListener("click", finish);
  box.addEventListener("keydown", (event) => {
    if (event.key === "Escape") finish();
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!box.value.trim()) return showError(error, "A message cannot be empty. To take it back, delete it.");
    save.disabled = true;
    try {
      const edited = await api("PATCH", `/messages/${shown.message.id}`, { json: { text: box.value } });
      finish();
      applyUpdate(edited);
    } catch (failure) {
      save.disabled = false;
      showError(error, failure.message);
    }
  });
  node.querySelector(".actions")?.remove();
  node.querySelector(".text").hidden = true;
  node.querySelector(".text").after(form);
  box.focus();
}

/** `DELETE /messages/{id}` after the confirmation; the tombstone replaces the message. */
async function deleteMessage(id, confirmation, button) {
  try {
    applyUpdate(await api("DELETE", `/messages/${id}`));
  } catch (error) {
    confirmation.replaceWith(button);
    showError(view.composerError, `Not deleted: ${error.message}`);
  }
}

/** Grows the composer with its text up to 160 px, then scrolls inside it. */
function resizeComposer() {
  view.text.style.height = "auto";
  const height = view.text.scrollHeight + view.text.offsetHeight - view.text.clientHeight;
  view.text.style.height = `${Math.min(height, 160)}px`;
  view.text.style.overflowY = height > 160 ? "auto" : "hidden";
}

view.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  sendComposer();
});
view.text.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    sendComposer();
  } else if (event.key === "Escape" && state.replyTo !== null) {
    endReply();
  }
});
view.text.addEventListener("input", () => {
  resizeComposer();
  renderCount();
  if (view.text.value.trim() && Date.now() - state.lastTypingSent > 3000) {
    if (connection.send({ type: "typing", chat_id: chatId })) state.lastTypingSent = Date.now();
  }
});

// ---- Typing, members, presence ----------------------------------------------------------

function showTyping(userId) {
  clearTimeout(state.typing.get(userId));
  state.typing.set(userId, setTimeout(() => clearTyping(userId), 5000));
  renderTyping();
}

function clearTyping(userId) {
  clearTimeout(state.typing.get(userId));
  state.typing.delete(userId);
  renderTyping();
}

function renderTyping() {
  const names = [...state.typing.keys()].map(senderName);
  view.typing.textContent =
    names.length === 0 ? "" : names.length === 1 ? `${names[0]} is typing…` : `${names.join(", ")} are typing…`;
}

function setMembers(members) {
  const previous = state.members;
  state.members = new Map();
  for (const member of members) {
    state.names.set(member.user_id, member.name);
    state.members.set(member.user_id, {
      name: member.name,
      readSeq: Math.max(member.read_seq, previous.get(member.user_id)?.readSeq ?? 0),
      online: member.online ?? previous.get(member.user_id)?.online ?? false,
    });
  }
  renderMembers();
  refreshTicks();
}

function renderMembers() {
  const isCreator = state.chat.creator_id === state.me.id;
  view.members.replaceChildren(
    ...[...state.members].map(([id, member]) => {
      const remove = isCreator && id !== state.me.id && !state.removed
        ? el("button", { type: "button", class: "link danger", "aria-label": `Remove ${member.name}`, text: "Remove" })
        : null;
      remove?.addEventListener("click", () =>
        confirmInPlace(remove, `Remove ${member.name}?`, {
          yesLabel: `Yes, remove ${member.name}`, noLabel: `Keep ${member.name}`,
          onYes: () => changeMembership("remove_user", id),
        }));
      const message = state.chat.chat_type === "GROUP" && id !== state.me.id && !state.removed
        ? messageButton(id, member.name)
        : null;
      return el(
        "li",
        { class: "member", dataset: { userId: id, online: member.online } },
        el("span", { class: "presence", role: "img", "aria-label": member.online ? "online" : "offline" }),
        el("span", { class: "member-name", dir: "auto", text: member.name }),
        id === state.me.id ? el("span", { class: "tag", text: "you" }) : null,
        id === state.chat.creator_id ? el("span", { class: "tag", text: "creator" }) : null,
        message,
        remove,
      );
    }),
  );
  const full = state.chat.chat_type === "PRIVATE" && state.members.size >= 2;
  view.addMember.hidden = !isCreator || full || state.removed;
  view.membersNote.hidden = !full || state.removed;
  view.leave.hidden = state.removed;
}

/** "Message Arina": opens my private chat with her, or starts one (`POST /chats/private/{id}`). */
function messageButton(userId, name) {
  const button = el("button", { type: "button", class: "link", "aria-label": `Message ${name}`, text: "Message" });
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const chat = await api("POST", `/chats/private/${userId}`);
      location.assign(`/chat/${chat.id}`);
    } catch (error) {
      showError(view.memberError, error.message);
      button.disabled = false;
    }
  });
  return button;
}

/**
 * Replaces `button` with "question Yes / No" in place: Yes runs `onYes` with the question's
 * node, No puts the button back. Focus starts on No.
 */
function confirmInPlace(button, question, { yesLabel, noLabel, onYes }) {
  const group = el("span", { class: "confirm-remove", role: "group", "aria-label": question }, question);
  const yes = el("button", { type: "button", class: "link danger", "aria-label": yesLabel, text: "Yes" });
  const no = el("button", { type: "button", class: "link", "aria-label": noLabel, text: "No" });
  yes.addEventListener("click", () => onYes(group));
  no.addEventListener("click", () => {
    group.replaceWith(button);
    button.focus();
  });
  group.append(yes, no);
  button.replaceWith(group);
  no.focus();
}

view.leaveButton.addEventListener("click", () =>
  confirmInPlace(view.leaveButton, "Leave this chat?", {
    yesLabel: "Yes, leave this chat", noLabel: "Stay in this chat", onYes: leaveChat,
  }));

/** `POST /chat/leave/{id}`, then back to the chat list. */
async function leaveChat(confirmation) {
  showError(view.leaveError, null);
  state.leaving = true;
  try {
    await api("POST", `/chat/leave/${chatId}`);
    location.assign("/");
  } catch (error) {
    state.leaving = false;
    confirmation.replaceWith(view.leaveButton);
    showError(view.leaveError, error.message);
  }
}

async function changeMembership(action, userId) {
  showError(view.memberError, null);
  try {
    const chat = await api("POST", `/chat/${action}/${userId}/${chatId}`);
    state.chat = chat;
    setMembers(chat.members);
    view.search.value = "";
    view.results.replaceChildren();
  } catch (error) {
    showError(view.memberError, error.message);
  }
}

let searchTimer = null;
view.search.addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(searchUsers, 250);
});
view.addMember.addEventListener("submit", (event) => event.preventDefault());

async function searchUsers() {
  const query = view.search.value.trim();
  if (!query) return view.results.replaceChildren();
  try {
    const users = await api("GET", `/users?q=${encodeURIComponent(query)}&limit=10`);
    const candidates = users.filter((user) => !state.members.has(user.id));
    view.results.replaceChildren(
      ...candidates.map((user) => {
        const add = el("button", { type: "button", "aria-label": `Add ${user.name}`, text: "Add" });
        add.addEventListener("click", () => changeMembership("add_user", user.id));
        return el("li", {}, el("span", { dir: "auto", text: user.name }), messageButton(user.id, user.name), add);
      }),
    );
    if (candidates.length === 0) view.results.append(el("li", { class: "empty", text: "No one to add by that name." }));
    showError(view.memberError, null);
  } catch (error) {
    showError(view.memberError, error.message);
  }
}

/** Someone joined or left: the member list, and the line saying so near the end of the chat. */
function membershipChanged() {
  reloadMembers();
  loadMembershipEvents(Math.max(0, state.highestSeq - pageSize));
}

async function reloadMembers() {
  try {
    state.chat = await api("GET", `/chats/${chatId}`);
    setMembers(state.chat.members);
  } catch (error) {
    if (error.status === 404) leave("You are no longer a member of this chat.");
  }
}

/**
 * The chat is no longer mine (removed, or gone): the history stays readable, the composer
 * gives way to the reason, and the member list shows what I last knew without presence,
 * which I no longer receive.
 */
function leave(reason) {
  state.removed = true;
  connection.stop();
  renderConnectionState(document.getElementById("connection"), "left");
  const readable = state.messages.size > 0 ? " You can read what was said until then, but no longer send." : "";
  view.banner.textContent = `${reason}${readable}`;
  view.banner.hidden = false;
  view.composer.hidden = true;
  state.members.delete(state.me?.id);
  for (const member of state.members.values()) member.online = false;
  if (state.chat) renderMembers();
}

const membersToggle = document.getElementById("members-toggle");
membersToggle.addEventListener("click", () => {
  const open = document.body.classList.toggle("members-open");
  membersToggle.setAttribute("aria-expanded", String(open));
});

// ---- Frames ---------------------------------------------------------------------------

function handleFrame(frame) {
  switch (frame.type) {
    case "ready": {
      const chat = frame.chats.find((candidate) => candidate.id === chatId);
      if (!chat) return leave("You are no longer a member of this chat.");
      setMembers(chat.members);
      if (!state.detached && (chat.last_seq > state.highestSeq || chat.last_update > state.lastUpdate)) {
        catchUp(chat.last_seq, frame.resume_limit);
      }
      resendPending();
      markRead();
      break;
    }
    case "ack":
    case "message": {
      const follow = nearBottom() || frame.type === "ack";
      const message = frame.message;
      // Detached, the end of the chat is not shown: scrolling there loads it.
      if (message.chat_id !== chatId || state.detached) return;
      if (message.sender_id === state.me.id) confirmSend(message);
      else if (addMessage(message)) clearTyping(message.sender_id);
      renderHistoryStatus();
      if (follow) scrollToBottom();
      break;
    }
    case "message_updated":
      applyUpdate(frame.message);
      break;
    case "read": {
      const member = state.members.get(frame.user_id);
      if (member) member.readSeq = Math.max(member.readSeq, frame.seq);
      if (frame.user_id === state.me.id) state.readSeq = Math.max(state.readSeq, frame.seq);
      refreshTicks();
      break;
    }
    case "typing":
      if (frame.user_id !== state.me.id) showTyping(frame.user_id);
      break;
    case "presence": {
      const member = state.members.get(frame.user_id);
      if (member) member.online = frame.online;
      renderMembers();
      break;
    }
    case "member_added":
      membershipChanged();
      break;
    case "member_removed":
      if (frame.user_id === state.me.id) leave(state.leaving ? "You left this chat." : "You were removed from this chat.");
      else membershipChanged();
      break;
    case "error":
      handleError(frame);
      break;
  }
}

function handleError(frame) {
  if (frame.code === "resume_too_far") {
    // Too many edits missed, or too many messages (more arrived while the page caught up):
    // reading the chat again is simplest (unsent messages wait in sessionStorage).
    location.reload();
  } else if (frame.code === "resync_required") {
    // The database was restored behind the page's back: read the chat again.
    location.reload();
  } else if (state.pending.has(frame.ref)) {
    if (["rate_limited", "storage_unavailable", "overloaded"].includes(frame.code)) {
      // Nothing was stored, or it was and the repeat finds it: the same client_id again, after
      // the wait the server asked for, or a pause where it named none.
      if (frame.ref === state.sending.clientId) retrySend(frame.retry_after_ms ?? 1500);
    } else {
      failSend(frame.ref, frame.message);
    }
  }
}

// ---- Start ----------------------------------------------------------------------------

async function start() {
  try {
    [state.me, state.chat, state.limits] = await Promise.all([
      api("GET", "/users/me"), api("GET", `/chats/${chatId}`), inputLimits(),
    ]);
  } catch (error) {
    if (error.status === 401) return sessionEnded();
    if (error.status === 404) return leave("This chat does not exist, or you are not one of its members.");
    view.banner.textContent = error.message;
    view.banner.hidden = false;
    return;
  }
  document.title = `${state.chat.name} · Chat`;
  document.getElementById("chat-name").textContent = state.chat.name;
  state.readSeq = state.chat.members.find((member) => member.user_id === state.me.id)?.read_seq ?? 0;
  // Read before the history: every edit after it is in the history or comes on `resume`.
  state.lastUpdate = state.chat.last_update ?? 0;
  setMembers(state.chat.members);
  const unsent = JSON.parse(sessionStorage.getItem(pendingKey) ?? "[]");
  // Unsent messages go at the chat's end, so the page shows the end while it has some.
  const around = unsent.length ? null : requestedSeq();
  if (around === null) await loadLatest();
  else await loadAround(around);
  for (const { clientId, text, replyTo } of unsent) queueSend(clientId, text, replyTo ?? null);
  view.scroller.addEventListener("scroll", () => {
    if (view.scroller.scrollTop < 200) loadOlder();
    if (nearBottom()) loadNewer();
  });
  connection.start();
  resizeComposer();
  view.text.focus();
}

start();
