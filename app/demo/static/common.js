// Shared by the customer widget and the agent inbox: REST calls, the socket, the thread.
// Every piece of text from the server goes in through textContent, never as HTML.

export const $ = (selector, root = document) => root.querySelector(selector);

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") el.className = value;
    else if (key.startsWith("data")) el.setAttribute(key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`), value);
    else el[key] = value;
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      el.append(child instanceof Node ? child : String(child));
    }
  }
  return el;
}

/** fetch() for the REST API: JSON in, JSON out, an Error carrying the API's message. */
export async function api(path, { method = "GET", body, token } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const err = new Error(data?.error ?? `Request failed (${res.status})`);
    err.status = res.status;
    err.code = data?.code;
    throw err;
  }
  return data;
}

/** A JSON value in localStorage, so a reload resumes the conversation. */
export function stored(key) {
  return {
    get: () => {
      try {
        return JSON.parse(localStorage.getItem(key) ?? "null");
      } catch {
        return null;
      }
    },
    set: (value) => localStorage.setItem(key, JSON.stringify(value)),
    clear: () => localStorage.removeItem(key),
  };
}

export const newId = () =>
  crypto.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;

/** The badge in the header: connecting, online, offline, reconnecting. */
export function showConnection(socket, badge) {
  const set = (state, text) => {
    badge.dataset.state = state;
    badge.textContent = text;
  };
  set("connecting", "connecting…");
  socket.on("connect", () => {
    const engine = socket.io.engine; // a new one per (re)connection
    set("online", `online · ${engine.transport.name}`);
    engine.once("upgrade", (transport) => set("online", `online · ${transport.name}`));
  });
  socket.on("disconnect", (reason) =>
    set("offline", reason === "io client disconnect" ? "offline" : "reconnecting…"),
  );
  socket.io.on("reconnect_attempt", (n) => set("offline", `reconnecting… (${n})`));
  return set;
}

/** socket.emitWithAck with a deadline; resolves to the ack ({ok, …}). */
export async function call(socket, event, payload) {
  try {
    return await socket.timeout(10000).emitWithAck(event, payload);
  } catch {
    return { ok: false, error: { code: "timeout", message: "The server did not answer" } };
  }
}

/**
 * Tells the other side "typing" while keys are pressed: refreshed every second (the
 * server forgets a typing state after TYPING_TTL seconds) and stopped after 2 s idle.
 */
export function typingNotifier(send) {
  let typing = false;
  let lastSent = 0;
  let idle = null;
  const stop = () => {
    clearTimeout(idle);
    if (typing) {
      typing = false;
      send(false);
    }
  };
  return {
    input() {
      const now = Date.now();
      if (!typing || now - lastSent > 1000) {
        typing = true;
        lastSent = now;
        send(true);
      }
      clearTimeout(idle);
      idle = setTimeout(stop, 2000);
    },
    stop,
  };
}

const timeOf = (iso) =>
  new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

/**
 * One conversation's messages in `seq` order. Adding is idempotent (the sender's ack,
 * the broadcast and a reconnect's replay may all carry one message), and `lastSeq` is
 * the cursor a rejoin asks with: `join_session({sessionId, after: lastSeq})`.
 */
export class Thread {
  constructor(root, me) {
    this.root = root;
    this.me = me;
    this.byId = new Map();
    this.lastSeq = 0;
    this.lastNoteSeq = 0;
  }

  clear() {
    this.byId.clear();
    this.lastSeq = 0;
    this.lastNoteSeq = 0;
    this.root.replaceChildren();
  }

  /**
   * A private note (staff only), placed among the messages by time. Notes have their
   * own cursor (`noteSeq`, `lastNoteSeq` here), never a message seq.
   */
  addNote(note) {
    if (this.byId.has(note.id)) return false;
    const el = h(
      "div",
      { class: "bubble note", dataId: note.id, dataAt: note.createdAt },
      h("p", { class: "note-label" }, `Private note · ${note.authorName ?? "staff"}`),
      h("p", { class: "text" }, note.content),
      h("div", { class: "foot" }, h("span", { class: "meta" }, timeOf(note.createdAt))),
    );
    this.byId.set(note.id, { message: note, el, flag: null, note: true });
    const later = [...this.root.children].find((child) => (child.dataset.at ?? "") > note.createdAt);
    this.root.insertBefore(el, later ?? null);
    this.lastNoteSeq = Math.max(this.lastNoteSeq, note.noteSeq);
    this.root.scrollTop = this.root.scrollHeight;
    return true;
  }

  /** Adds or updates; returns true when the message is new here. */
  add(message) {
    const known = this.byId.get(message.id);
    if (known) {
      this.update(message);
      return false;
    }
    const mine = message.senderType === this.me;
    const meta = h("span", { class: "meta" }, timeOf(message.createdAt));
    const flag = mine ? h("span", { class: "flag" }) : null;
    const el = h(
      "div",
      { class: `bubble ${mine ? "mine" : "theirs"}`, dataSeq: message.seq, dataId: message.id, dataAt: message.createdAt },
      h("p", { class: "text" }, message.content),
      h("div", { class: "foot" }, meta, flag),
    );
    const entry = { message, el, flag };
    this.byId.set(message.id, entry);
    this.paint(entry);
    const after = [...this.root.children].find((child) => Number(child.dataset.seq) > message.seq);
    this.root.insertBefore(el, after ?? null);
    this.lastSeq = Math.max(this.lastSeq, message.seq);
    this.root.scrollTop = this.root.scrollHeight;
    return true;
  }

  update(message) {
    const entry = this.byId.get(message.id);
    if (!entry) return;
    entry.message = { ...entry.message, ...message };
    this.paint(entry);
  }

  paint(entry) {
    if (!entry.flag) return;
    entry.flag.textContent = entry.message.isRead ? "✓✓ read" : "✓ sent";
    entry.el.classList.toggle("read", Boolean(entry.message.isRead));
  }

  /** The other side's messages not yet marked read. */
  unreadFromOthers() {
    return [...this.byId.values()]
      .filter((entry) => !entry.note)
      .map((entry) => entry.message)
      .filter((m) => m.senderType !== this.me && !m.isRead);
  }
}

/** Without the npm socket.io-client the page cannot connect: say why, and how to fix it. */
export function clientMissing(badge, where) {
  if (typeof globalThis.io === "function") return false;
  badge.dataset.state = "offline";
  badge.textContent = "no Socket.IO client";
  where.hidden = false;
  where.textContent =
    "The demo's Socket.IO client is not installed on the server: run `npm ci --prefix app/demo` (scripts/serve.sh does) and reload.";
  return true;
}
