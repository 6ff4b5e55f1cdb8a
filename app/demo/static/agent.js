// The agent inbox: log in (or create the desk's first admin), see every conversation
// live, answer one, and rejoin it after a reconnect from the last seq seen.
import { $, Thread, api, call, clientMissing, h, newId, showConnection, stored, typingNotifier } from "/demo/static/common.js";
import { ownership } from "/demo/static/ownership.js";
import { linkInAddress, teamPanel } from "/demo/static/team.js";

const saved = stored("helpline.demo.agent");
const thread = new Thread($("#thread"), "admin");
const sessions = new Map(); // id -> session as the inbox shows it
let socket = null;
let current = null; // id of the open conversation
let labelFilter = null; // the inbox shows only sessions with this label

const nameOf = (s) => s.userName || s.userId;
let signedIn = null; // this page's {token, admin} (another tab may store another's)
const team = teamPanel({ token: () => signedIn?.token, me: () => signedIn?.admin ?? {}, onError: (text) => note(text) });
// What `session_revoked` and refused reconnects mean to the person at the console.
const ENDED = {
  deactivated: "Your account was deactivated.",
  logout_all: "You were logged out everywhere.",
  password_changed: "Your password was changed: log in again.",
  password_reset: "Your password was reset: log in again.",
  signed_out_by_admin: "An admin signed you out.",
  token_expired: "Your session expired: log in again.",
};

function note(text) {
  $("#note").textContent = text;
}

async function refreshSession(id) {
  const s = await api(`/api/sessions/${id}`, { token: signedIn?.token }).catch(() => null);
  if (s) sessions.set(id, { ...sessions.get(id), ...s });
  if (s && id === current) showConversation(sessions.get(id));
  renderInbox();
}

const owners = ownership({
  token: () => signedIn?.token,
  me: () => signedIn?.admin ?? {},
  sessions,
  current: () => current,
  render: () => renderInbox(),
  refresh: refreshSession,
  note,
});

const token = () => signedIn?.token;

function labelChip(label, onclick, removable = false) {
  return h(
    "span",
    { class: "chip", role: "button", tabIndex: 0, title: removable ? `Remove ${label}` : `Only ${label}`, dataLabel: label,
      onclick: (event) => { event.stopPropagation(); onclick(label); } },
    label,
    removable ? h("span", { class: "x" }, "×") : null,
  );
}

function renderInbox() {
  const list = [...sessions.values()]
    .filter(owners.shown)
    .filter((s) => !labelFilter || (s.labels ?? []).includes(labelFilter))
    .sort((a, b) => b.lastActivityAt.localeCompare(a.lastActivityAt));
  $("#label-filter").hidden = !labelFilter;
  $("#label-filter-name").textContent = labelFilter ?? "";
  $("#inbox-empty").hidden = list.length > 0;
  $("#sessions").replaceChildren(
    ...list.map((s) =>
      h(
        "li",
        { class: `session${s.id === current ? " current" : ""}${s.status === "closed" ? " closed" : ""}`, dataId: s.id },
        h("button", { type: "button", onclick: () => open(s.id) },
          h("span", { class: "row" },
            h("span", { class: "presence", dataOnline: String(Boolean(s.online)) }),
            h("strong", { class: "name" }, nameOf(s)),
            s.unreadCount ? h("span", { class: "unread" }, s.unreadCount) : null,
          ),
          h("span", { class: "preview" }, s.typing ? "typing…" : s.lastMessage?.content ?? "No messages yet"),
          h("span", { class: "owner", dataOwner: s.assigneeId ?? "" }, owners.ownerLabel(s)),
          s.labels?.length ? h("span", { class: "chips" }, s.labels.map((l) => labelChip(l, filterBy))) : null,
        ),
      ),
    ),
  );
}

function filterBy(label) {
  labelFilter = label;
  loadInbox(token()).catch((err) => note(err.message));
}

async function loadInbox(token) {
  const query = labelFilter ? `&label=${encodeURIComponent(labelFilter)}` : "";
  const list = await api(`/api/sessions?limit=50${query}`, { token });
  // Each row's presence comes with the page: after a reload no event would tell it.
  for (const s of list) sessions.set(s.id, { ...sessions.get(s.id), ...s, online: s.customerOnline });
  renderInbox();
}

async function markRead() {
  if (document.hidden || !socket?.connected || !current) return;
  for (const message of thread.unreadFromOthers()) {
    const ack = await call(socket, "mark_read", { messageId: message.id });
    if (ack.ok) thread.update(ack.message);
  }
  const s = sessions.get(current);
  if (s && s.unreadCount) {
    s.unreadCount = 0;
    renderInbox();
  }
}

function showConversation(s) {
  $("#pick").hidden = true;
  $("#open").hidden = false;
  $("#conv-name").textContent = nameOf(s);
  $("#conv-online").dataset.online = String(Boolean(s.online));
  $("#conv-online").textContent = s.online ? "online" : "offline";
  $("#conv-meta").textContent = [s.userEmail, s.status === "closed" ? "closed" : null].filter(Boolean).join(" · ");
  const closed = s.status === "closed";
  $("#text").disabled = closed;
  $("#composer button").disabled = closed;
  $("#close").hidden = closed;
  owners.showOwner(s);
  $("#label-chips").replaceChildren(...(s.labels ?? []).map((l) => labelChip(l, removeLabel, true)));
}

async function setLabels(labels) {
  if (!current) return;
  try {
    const s = await api(`/api/sessions/${current}/labels`, { method: "PUT", body: { labels }, token: token() });
    sessions.set(s.id, { ...sessions.get(s.id), ...s });
    showConversation(sessions.get(s.id));
    renderInbox();
  } catch (err) {
    note(err.message);
  }
}

const removeLabel = (label) => setLabels((sessions.get(current)?.labels ?? []).filter((l) => l !== label));

async function join(sessionId) {
  const ack = await call(socket, "join_session", { sessionId, after: thread.lastSeq, notesAfter: thread.lastNoteSeq });
  if (!ack.ok) return note(ack.error.message);
  ack.messages.forEach((m) => thread.add(m));
  // Staff only: the private notes after this console's note cursor, placed by time.
  (ack.notes ?? []).forEach((n) => thread.addNote(n));
  const s = sessions.get(sessionId);
  if (s) {
    s.online = ack.customerOnline;
    s.typing = ack.typing.user;
    showConversation(s);
    renderInbox();
  }
  $("#typing").hidden = !ack.typing.user;
  if (ack.hasMore) note("Older messages are available through the REST history.");
  markRead();
}

async function open(sessionId) {
  if (current === sessionId) return;
  if (current) call(socket, "leave_session", current);
  current = sessionId;
  thread.clear();
  note("");
  $("#typing").hidden = true;
  renderInbox();
  await join(sessionId);
  // Not when the person has gone on to type elsewhere (the search box) while it opened:
  // their text would land in the reply.
  if (current === sessionId && !typingElsewhere()) $("#text").focus();
}

function typingElsewhere() {
  const el = document.activeElement;
  return el !== $("#text") && el?.matches?.("input:not([type=checkbox]):not([type=radio]), textarea, select");
}

function onMessage(message) {
  const s = sessions.get(message.sessionId);
  if (s) {
    s.lastMessage = message;
    s.lastActivityAt = message.createdAt;
    if (message.senderType === "user") s.online = true;
    if (message.senderType === "user") s.typing = false;
    if (message.senderType === "user" && message.sessionId !== current) s.unreadCount = (s.unreadCount ?? 0) + 1;
  }
  if (message.sessionId === current) {
    thread.add(message);
    if (message.senderType === "user") $("#typing").hidden = true;
    markRead();
  }
  renderInbox();
}

function connect(auth) {
  $("#login").hidden = true;
  $("#desk").hidden = false;
  $("#logout").hidden = false;
  $("#who").textContent = `${auth.admin.fullName || auth.admin.email} · ${auth.admin.role ?? "admin"}`;
  signedIn = auth;
  team.show(auth.admin.role ?? "admin");
  if (clientMissing($("#status"), $("#note-global"))) return;
  socket = io({ auth: { token: auth.token } });
  showConnection(socket, $("#status"));

  socket.on("connect", async () => {
    // After a reconnect: refresh the inbox, and catch the open thread up from its last seq.
    await loadInbox(auth.token).catch((err) => note(err.message));
    await owners.start();
    if (current) await join(current);
  });
  socket.on("connect_error", (err) => {
    if (["invalid_token", "token_expired", "token_revoked"].includes(err.data?.code)) logout(err.message);
  });
  socket.on("session_revoked", ({ reason }) => logout(ENDED[reason] ?? "You were signed out."));
  socket.on("session_created", (s) => {
    sessions.set(s.id, { ...s, unreadCount: 0, lastMessage: null });
    renderInbox();
  });
  socket.on("session_updated", (s) => {
    sessions.set(s.id, { ...sessions.get(s.id), ...s });
    if (s.id === current) showConversation(sessions.get(s.id));
    renderInbox();
  });
  socket.on("new_message", onMessage);
  socket.on("session_assigned", owners.assigned);
  socket.on("agent_presence", owners.presence);
  socket.on("new_note", (n) => {
    if (n.sessionId === current) thread.addNote(n);
  });
  socket.on("message_read", (message) => {
    if (message.sessionId === current) thread.update(message);
  });
  socket.on("customer_presence", ({ sessionId, online }) => {
    const s = sessions.get(sessionId);
    if (!s) return;
    s.online = online;
    if (sessionId === current) showConversation(s);
    renderInbox();
  });
  socket.on("user_typing", ({ sessionId, userType, isTyping }) => {
    if (userType !== "user") return;
    const s = sessions.get(sessionId);
    if (s) s.typing = isTyping;
    if (sessionId === current) $("#typing").hidden = !isTyping;
    renderInbox();
  });
  socket.on("error", (event) => note(event.message));
  // The server's Redis link was interrupted: reload the inbox, catch the thread up by seq.
  socket.on("rejoin", async ({ sessionId }) => {
    if (sessionId === null) await loadInbox(auth.token).catch((err) => note(err.message));
    if (current && (sessionId === null || sessionId === current)) await join(current);
  });
}

function logout(message = "") {
  socket?.disconnect();
  socket = null;
  saved.clear();
  sessions.clear();
  current = null;
  thread.clear();
  team.show(null);
  owners.stop();
  signedIn = null;
  $("#desk").hidden = true;
  $("#login").hidden = false;
  $("#logout").hidden = true;
  $("#open").hidden = true;
  $("#pick").hidden = false;
  $("#who").textContent = "Agent console";
  $("#status").dataset.state = "idle";
  $("#status").textContent = "not connected";
  $("#login-error").textContent = message;
  showDeskState();
}

async function authenticate(path, body) {
  $("#login-error").textContent = "";
  try {
    const auth = await api(path, { method: "POST", body });
    saved.set(auth);
    connect(auth);
  } catch (err) {
    $("#login-error").textContent =
      err.code === "registration_closed" ? "This desk has an admin already: log in instead." : err.message;
  }
}

const credentials = () => ({ email: $("#email").value.trim(), password: $("#password").value });

// On a new desk (no admin yet) the form's first action creates the first admin.
let freshDesk = false;
async function showDeskState() {
  const desk = await api("/demo/desk").catch(() => ({ hasAdmin: true }));
  freshDesk = !desk.hasAdmin;
  $("#do-register").className = freshDesk ? "primary" : "";
  $("#do-login").className = freshDesk ? "" : "primary";
  $("#login-intro").textContent = freshDesk
    ? "A new desk: create its first admin account (you can invite agents afterwards)."
    : "Log in as an agent or admin.";
  $("#full-name-row").hidden = !freshDesk;
  $("#login .actions").classList.toggle("fresh", freshDesk);
}

$("#login").addEventListener("submit", (event) => {
  event.preventDefault();
  if (freshDesk) return $("#do-register").click();
  authenticate("/api/auth/login", credentials());
});
$("#do-register").addEventListener("click", () => {
  if (!$("#login").reportValidity()) return;
  const fullName = $("#full-name").value.trim();
  authenticate("/api/auth/register", { ...credentials(), fullName: fullName || undefined });
});
$("#logout").addEventListener("click", async () => {
  // End this sign-in on the server too (its token stops working everywhere at once).
  const token = signedIn?.token;
  if (token) await api("/api/auth/logout", { method: "POST", token }).catch(() => {});
  logout();
});

// An invitation or reset link (`#invite=…`, `#reset=…`): choose a password, then sign in.
const link = linkInAddress();
$("#accept").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("#accept-error").textContent = "";
  const body = { token: link.token, password: $("#accept-password").value };
  if (link.kind === "invite") body.fullName = $("#accept-name").value.trim() || undefined;
  try {
    const auth = await api(link.kind === "invite" ? "/api/auth/accept-invite" : "/api/auth/reset-password", { method: "POST", body });
    history.replaceState(null, "", location.pathname);
    $("#accept").hidden = true;
    saved.set(auth);
    connect(auth);
  } catch (err) {
    $("#accept-error").textContent = err.message;
  }
});

const typing = typingNotifier((isTyping) => {
  if (socket?.connected && current) socket.emit("typing", { sessionId: current, isTyping });
});
$("#text").addEventListener("input", () => ($("#text").value ? typing.input() : typing.stop()));

$("#note-mode").addEventListener("change", () => {
  const noting = $("#note-mode").checked;
  $("#composer").classList.toggle("noting", noting);
  $("#text").placeholder = noting ? "Private note: only staff see it" : "Reply… (/ for canned responses)";
  $("#text").focus();
});

$("#composer").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!$("#canned").hidden && pickCanned()) return;
  const content = $("#text").value.trim();
  if (!content || !current) return;
  if ($("#note-mode").checked) {
    $("#text").value = "";
    try {
      thread.addNote(await api(`/api/sessions/${current}/notes`, { method: "POST", body: { content }, token: token() }));
    } catch (err) {
      $("#text").value = content;
      note(err.message);
    }
    return;
  }
  typing.stop();
  $("#text").value = "";
  const ack = await call(socket, "send_message", { sessionId: current, content, clientMessageId: newId() });
  if (ack.ok) onMessage(ack.message);
  else {
    $("#text").value = content;
    note(ack.error.message);
  }
});

$("#close").addEventListener("click", async () => {
  const auth = saved.get();
  if (!current || !auth) return;
  try {
    const s = await api(`/api/sessions/${current}/status`, { method: "PATCH", body: { status: "closed" }, token: auth.token });
    sessions.set(s.id, { ...sessions.get(s.id), ...s });
    showConversation(sessions.get(s.id));
    renderInbox();
  } catch (err) {
    note(err.message);
  }
});
document.addEventListener("visibilitychange", markRead);

// Labels: type one and press Enter to add it to the open conversation.
$("#label-add").addEventListener("keydown", (event) => {
  if (event.key !== "Enter") return;
  event.preventDefault();
  const label = $("#label-add").value.trim().toLowerCase();
  if (!label) return;
  $("#label-add").value = "";
  setLabels([...(sessions.get(current)?.labels ?? []), label]);
});
$("#label-filter-clear").addEventListener("click", () => filterBy(null));

// Canned responses: "/" at the start of the reply lists them (short code or text),
// filled in for this conversation; Enter or a click takes the highlighted one.
let cannedItems = [];
let cannedActive = 0;
let cannedAsked = 0;
function showCanned() {
  $("#canned").hidden = cannedItems.length === 0;
  $("#canned").replaceChildren(
    ...cannedItems.map((c, i) =>
      h("li", { class: i === cannedActive ? "active" : "", dataCode: c.shortCode },
        h("button", { type: "button", onclick: () => { cannedActive = i; pickCanned(); } },
          h("span", { class: "code" }, `/${c.shortCode}`, c.title ? ` · ${c.title}` : ""),
          h("span", { class: "rendered" }, c.rendered ?? c.content),
        ),
      ),
    ),
  );
}
function pickCanned() {
  const chosen = cannedItems[cannedActive];
  if (!chosen) return false;
  $("#text").value = chosen.rendered ?? chosen.content;
  cannedItems = [];
  showCanned();
  $("#text").focus();
  return true;
}
$("#text").addEventListener("input", async () => {
  const text = $("#text").value;
  if (!text.startsWith("/") || !current || $("#note-mode").checked) {
    cannedItems = [];
    return showCanned();
  }
  const asked = ++cannedAsked;
  const q = encodeURIComponent(text.slice(1));
  const items = await api(`/api/canned-responses?q=${q}&sessionId=${current}&limit=8`, { token: token() }).catch(() => []);
  if (asked !== cannedAsked) return; // a later keystroke's answer wins
  cannedItems = items;
  cannedActive = 0;
  showCanned();
});
$("#text").addEventListener("keydown", (event) => {
  if ($("#canned").hidden) return;
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    const step = event.key === "ArrowDown" ? 1 : -1;
    cannedActive = (cannedActive + step + cannedItems.length) % cannedItems.length;
    showCanned();
  } else if (event.key === "Escape") {
    cannedItems = [];
    showCanned();
  }
});

// Search: every message ever sent, newest first; a hit opens its conversation.
$("#search").addEventListener("submit", async (event) => {
  event.preventDefault();
  const q = $("#search-q").value.trim();
  if (!q) return;
  try {
    const hits = await api(`/api/search/messages?q=${encodeURIComponent(q)}&limit=20`, { token: token() });
    $("#search-count").textContent = `${hits.length}${hits.length === 20 ? "+" : ""} found for “${q}”`;
    $("#search-results").replaceChildren(
      ...hits.map((hit) => {
        // The server's snippet is HTML-escaped; its only markup is <mark> around the hits.
        const snippet = h("span", { class: "snippet" });
        snippet.innerHTML = hit.highlight;
        return h("li", { dataSession: hit.session.id },
          h("button", { type: "button", onclick: () => openHit(hit) },
            h("strong", {}, hit.session.userName || hit.session.userId),
            snippet,
          ),
        );
      }),
    );
    $("#search-box").hidden = false;
  } catch (err) {
    note(err.message);
  }
});
function openHit(hit) {
  if (!sessions.has(hit.session.id)) {
    sessions.set(hit.session.id, { ...hit.session, unreadCount: 0, lastMessage: null, labels: [] });
  }
  open(hit.session.id);
}
$("#search-clear").addEventListener("click", () => {
  $("#search-box").hidden = true;
  $("#search-q").value = "";
});

const auth = saved.get();
if (link) {
  $("#login").hidden = true;
  $("#accept").hidden = false;
  if (link.kind === "reset") {
    $("#accept-title").textContent = "Choose a new password.";
    $("#accept-name-row").hidden = true;
  }
} else if (auth?.token) connect(auth);
else showDeskState();
clientMissing($("#status"), $("#note-global"));
