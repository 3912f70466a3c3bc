// A first chat client in browser JavaScript: docs/clients/README.md walks through it.
//
// It logs in, connects, sends messages, shows the ones it receives, marks them read, drops its
// connection on purpose once and resumes without losing anything, and backs off whenever the
// server refuses. The browser keeps the session in the server's HttpOnly cookie, so this runs
// in a page served from the chat server's own origin (behind the same proxy); CI runs it that
// way against the release binary (scripts/client-tutorials).
//
//   await firstClient({ user: "Vlad", password: "12345", chatName: "Demo group", send: 3, expect: 3 });

/** Resolves when `expect` messages from others have arrived and every send is stored. */
async function firstClient({ user, password, chatName, send = 1, expect = 0, afterSeq = null, log = console.log }) {
  // ---- REST: the session cookie goes with every request of this origin ----
  async function api(method, path, body) {
    const response = await fetch(path, { method, body });
    const payload = response.status === 204 ? null : await response.json();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${payload.error.code}: ${payload.error.message}`);
    return payload;
  }
  async function logIn() {
    // An OAuth2 password grant: a form. The answer sets the HttpOnly session cookie.
    await api("POST", "/auth/login", new URLSearchParams({ grant_type: "password", username: user, password }));
    me = await api("GET", "/users/me");
    chat = (await api("GET", "/chats")).find((candidate) => candidate.name === chatName).id;
  }

  let me, chat;
  let generation = null; // the database generation our positions belong to
  let lastSeq = afterSeq; // the last seq we have of the chat: where a resume starts
  // Send frames in the order typed; the first is on the wire until its ack. One at a time keeps
  // the messages in that order.
  const outbox = Array.from({ length: send }, (_, n) => ({
    type: "send", client_id: crypto.randomUUID(), text: `hello ${n + 1} from ${user} (browser)`,
  }));
  const received = [];
  let attempt = 0; // reconnect attempts since the last ready
  let dropped = false;
  await logIn();

  return new Promise((resolve) => {
    function connect() {
      const socket = new WebSocket(`${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`);
      let ready = false;
      const sendFrame = (frame) => socket.readyState === WebSocket.OPEN && socket.send(JSON.stringify(frame));
      socket.onmessage = (event) => {
        const frame = JSON.parse(event.data);
        if (frame.type === "ready") {
          ready = true;
          follow(frame, sendFrame);
        } else {
          handle(frame, sendFrame);
        }
        if (received.length && !dropped) {
          dropped = true; // show that a dropped connection loses nothing
          log("-- dropping the connection on purpose");
          socket.close(4000, "tutorial");
        } else if (received.length >= expect && outbox.length === 0) {
          socket.onclose = null;
          socket.close(1000);
          resolve({ sent: send, received });
        }
      };
      socket.onclose = async (event) => {
        if (event.code === 1008) {
          await logIn(); // the session ended: log in again
          return connect();
        }
        if (event.code === 4001) return connect(); // we read too slowly: at once, then resume
        if (!ready) {
          // A refused handshake shows no status in the browser: ask the API whether the
          // session is over (401) before backing off.
          const status = (await fetch("/users/me")).status;
          if (status === 401) await logIn();
        }
        // Exponential backoff with jitter: min(30 s, 0.5 s × 2^attempt) × [0.5, 1).
        const delay = Math.min(30_000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);
        attempt += 1;
        log(`-- connection closed (${event.code}); reconnecting in ${(delay / 1000).toFixed(1)} s`);
        setTimeout(connect, delay);
      };
    }

    function follow(ready, sendFrame) {
      attempt = 0;
      if (generation && ready.generation !== generation) {
        log("-- the database was restored: reading the chat again");
        lastSeq = 0; // our seqs now name other messages
      }
      generation = ready.generation;
      const position = ready.chats.find((candidate) => candidate.id === chat).last_seq;
      if (lastSeq === null) {
        lastSeq = position; // a first start: only new messages
      } else if (position > lastSeq) {
        // Missed messages come as `message` frames, then `resumed`, then live ones. (More than
        // `resume_limit` missed: read GET /history first; not needed here.)
        sendFrame({ type: "resume", chat_id: chat, after_seq: lastSeq });
      }
      sendNext(sendFrame); // unanswered, it goes again with its client_id: stored once
    }

    function sendNext(sendFrame) {
      if (outbox.length) sendFrame({ ...outbox[0], chat_id: chat });
    }

    function handle(frame, sendFrame) {
      if (frame.type === "message" || frame.type === "ack") {
        const message = frame.message;
        if (message.chat_id !== chat) return;
        const mine = message.sender_id === me.id;
        // Our send is stored: its ack, or (after a reconnect) the message itself.
        if (mine && outbox[0]?.client_id === message.client_id) {
          outbox.shift();
          log(`sent     #${message.seq}: ${message.text}`);
          sendNext(sendFrame);
        }
        // A repeat of what we have, or of what a resume brings in its place.
        if (message.seq <= lastSeq || frame.duplicate) return;
        lastSeq = message.seq;
        if (!mine) {
          received.push(message);
          log(`received #${message.seq}: ${message.text}`);
          sendFrame({ type: "read", chat_id: chat, seq: message.seq });
        }
      } else if (frame.type === "resumed") {
        log(`-- resumed: caught up to #${frame.last_seq}`);
      } else if (frame.type === "error") {
        if (["rate_limited", "overloaded", "storage_unavailable"].includes(frame.code) && outbox.length) {
          // Nothing was stored: the same frame again after the pause the server asks for.
          const pause = frame.retry_after_ms ?? 1000;
          log(`-- ${frame.code}: sending it again in ${pause} ms`);
          setTimeout(() => sendNext(sendFrame), pause); // a closed socket's next one sends it
        } else if (frame.code === "resync_required") {
          lastSeq = 0; // restored behind our back: read the chat again
          sendFrame({ type: "resume", chat_id: chat, after_seq: 0 });
        } else {
          log(`-- refused: ${JSON.stringify(frame)}`);
        }
      }
    }

    connect();
  });
}
