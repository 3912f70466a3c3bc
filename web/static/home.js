// The chat list: every chat of the user with its last message and unread count, kept current
// by the user's WebSocket; message search; a form to create a chat; a form to change the
// password; log out.
import {
  api, el, showError, shortTime, longTime, logOut, LiveConnection, renderConnectionState, sessionEnded, checkFields,
  characterCount, inputLimits, passwordProblem, clearErrors,
} from "./common.js";

const list = document.getElementById("chat-list");
const empty = document.getElementById("chats-empty");
const listError = document.getElementById("chats-error");
let me = null;
let refreshTimer = null;

function chatItem(chat) {
  const last = chat.last_message;
  // Who wrote it: "You" for mine; in a group, also the other person's name ("Arina: …").
  const author = last?.sender_id === me.id ? "You" : chat.chat_type === "GROUP" ? chat.last_sender_name : null;
  const text = last?.deleted ? "Message deleted" : last?.text;
  const preview = last ? `${author ? `${author}: ` : ""}${text}` : "No messages yet";
  const unread = chat.unread_count > 0
    ? el("span", { class: "badge", "aria-label": `${chat.unread_count} unread`, text: String(chat.unread_count) })
    : null;
  return el(
    "li",
    {},
    el(
      "a",
      { class: "chat-item", href: `/chat/${chat.id}`, dataset: { chatId: chat.id } },
      el("span", { class: "avatar", "aria-hidden": "true", text: ([...chat.name.trim()][0] ?? "#").toUpperCase() }),
      el(
        "span",
        { class: "chat-main" },
        el(
          "span",
          { class: "chat-title" },
          el("span", { class: "chat-name", dir: "auto", text: chat.name }),
          el("span", { class: "chat-type", text: chat.chat_type === "PRIVATE" ? "private" : "group" }),
        ),
        el("span", { class: "chat-last", dir: "auto", text: preview }),
      ),
      el(
        "span",
        { class: "chat-side" },
        last ? el("time", { datetime: last.timestamp, title: longTime(last.timestamp), text: shortTime(last.timestamp) }) : null,
        unread,
      ),
    ),
  );
}

/** Chat names by id, for search results. */
const chatNames = new Map();

async function refresh() {
  try {
    const chats = await api("GET", "/chats");
    for (const chat of chats) chatNames.set(chat.id, chat.name);
    list.replaceChildren(...chats.map(chatItem));
    empty.hidden = chats.length > 0;
    showError(listError, null);
  } catch (error) {
    if (error.status === 401) return sessionEnded();
    showError(listError, error.message);
  }
}

/** Refreshes at most a few times a second however busy the chats are. */
function refreshSoon() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    refresh();
  }, 250);
}

const connection = new LiveConnection("/ws", {
  onFrame(frame) {
    const changes = ["ready", "message", "ack", "read", "message_updated", "member_added", "member_removed"];
    if (changes.includes(frame.type)) refreshSoon();
  },
  onState: (state, delay) => renderConnectionState(document.getElementById("connection"), state, delay),
});

document.getElementById("logout").addEventListener("click", logOut);

// ---- Search -----------------------------------------------------------------------------

const searchForm = document.getElementById("search-form");
const searchText = document.getElementById("search-text");
const searchResults = document.getElementById("search-results");
const searchMore = document.getElementById("search-more");
const searchStatus = document.getElementById("search-status");
const searchError = document.getElementById("search-error");
/** The query shown and the cursor of its next page. */
const searching = { query: "", next: null };

/** A snippet from the server (escaped text, matches in <mark>) as nodes, without parsing HTML. */
function snippetNodes(snippet) {
  const entities = { "&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#39;": "'" };
  const unescape = (text) => text.replace(/&(amp|lt|gt|quot|#39);/g, (entity) => entities[entity]);
  return snippet.split(/(<mark>.*?<\/mark>)/).filter(Boolean).map((part) =>
    part.startsWith("<mark>") ? el("mark", { text: unescape(part.slice(6, -7)) }) : unescape(part));
}

function searchHit(message) {
  const author = message.sender_id === me.id ? "You" : null;
  return el(
    "li",
    {},
    el(
      "a",
      { class: "search-hit", href: `/chat/${message.chat_id}#seq=${message.seq}` },
      el(
        "span",
        { class: "chat-title" },
        el("span", { class: "chat-name", dir: "auto", text: chatNames.get(message.chat_id) ?? "A chat" }),
        el("time", { datetime: message.timestamp, title: longTime(message.timestamp), text: shortTime(message.timestamp) }),
      ),
      el("span", { class: "search-snippet", dir: "auto" }, author ? `${author}: ` : "", ...snippetNodes(message.snippet)),
    ),
  );
}

async function search(more) {
  const query = more ? searching.query : searchText.value.trim();
  if (!query) return clearSearch();
  showError(searchError, null);
  const params = new URLSearchParams({ q: query, limit: "20" });
  if (more && searching.next !== null) params.set("before", String(searching.next));
  try {
    const page = await api("GET", `/search?${params}`);
    if (!more) searchResults.replaceChildren();
    searchResults.append(...page.messages.map(searchHit));
    searching.query = query;
    searching.next = page.next;
    searchMore.hidden = page.next === null;
    const count = searchResults.children.length;
    searchStatus.hidden = false;
    searchStatus.textContent = count === 0 ? "No messages found." : `${count}${page.next === null ? "" : "+"} found`;
  } catch (error) {
    if (error.status === 401) return sessionEnded();
    showError(searchError, error.message);
  }
}

function clearSearch() {
  searchResults.replaceChildren();
  searchMore.hidden = true;
  searchStatus.hidden = true;
  showError(searchError, null);
  searching.query = "";
  searching.next = null;
}

searchForm.addEventListener("submit", (event) => {
  event.preventDefault();
  search(false);
});
searchText.addEventListener("keydown", (event) => {
  if (event.key === "Escape") {
    searchText.value = "";
    clearSearch();
  }
});
searchMore.addEventListener("click", () => search(true));

const createForm = document.getElementById("create-form");
createForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(createForm);
  const errorNode = document.getElementById("create-error");
  showError(errorNode, null);
  try {
    const limits = await inputLimits();
    const named = checkFields([
      [
        document.getElementById("create-name"),
        (value) => {
          const length = characterCount(value.trim());
          if (length === 0) return "Give the chat a name.";
          if (length > limits.max_chat_name_length) {
            return `At most ${limits.max_chat_name_length} characters: this name has ${length}.`;
          }
          return null;
        },
      ],
    ]);
    if (!named) return;
    const chat = await api("POST", "/chat", { json: { name: data.get("name").trim(), chat_type: data.get("chat_type") } });
    location.assign(`/chat/${chat.id}`);
  } catch (error) {
    showError(errorNode, error.message);
  }
});

const passwordForm = document.getElementById("password-form");
passwordForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const done = document.getElementById("password-done");
  clearErrors(passwordForm);
  done.hidden = true;
  try {
    const limits = await inputLimits();
    const valid = checkFields([
      [document.getElementById("current-password"), (value) => (value ? null : "Enter your current password.")],
      [document.getElementById("new-password"), (value) => passwordProblem(value, limits)],
    ]);
    if (!valid) return;
    const data = new FormData(passwordForm);
    const change = api("POST", "/user/password", {
      json: { current_password: data.get("current_password"), new_password: data.get("new_password") },
    });
    // The change ends every session, this page's socket's too: it reconnects with the new cookie.
    connection.renewSession(change);
    await change;
    passwordForm.reset();
    done.textContent = "Password changed. Your other devices were logged out.";
    done.hidden = false;
  } catch (error) {
    connection.renewSession(null);
    showError(document.getElementById("password-error"), error.message);
  }
});

try {
  me = await api("GET", "/users/me");
  document.getElementById("me").textContent = me.name;
  await refresh();
  connection.start();
} catch (error) {
  if (error.status === 401) sessionEnded();
  else showError(listError, error.message);
}
