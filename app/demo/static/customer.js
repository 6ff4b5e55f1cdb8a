// The customer widget: open a session, chat, see the agent typing and reading, and
// catch up after a reconnect by rejoining with the last seq seen.
import { $, Thread, api, call, clientMissing, newId, showConnection, stored, typingNotifier } from "/demo/static/common.js";

const saved = stored("helpline.demo.customer");
const thread = new Thread($("#thread"), "user");
let socket = null;

function showOwner(text) {
  $("#owner").textContent = text;
  $("#owner").hidden = !text;
}

function note(text) {
  $("#note").textContent = text;
}

function showChat(visible) {
  $("#start").hidden = visible;
  $("#chat").hidden = !visible;
}

function setClosed(closed) {
  $("#text").disabled = closed;
  $("#composer button").disabled = closed;
  $("#text").placeholder = closed ? "This conversation is closed" : "Write a message…";
  $("#chat").classList.toggle("closed", closed);
  if (closed) note("This conversation was closed by the agent.");
  // Remembered, so a reload shows it closed at once, before the server is asked again.
  const session = saved.get();
  if (session && session.status !== (closed ? "closed" : "active")) {
    saved.set({ ...session, status: closed ? "closed" : "active" });
  }
}

async function markRead() {
  if (document.hidden || !socket?.connected) return;
  for (const message of thread.unreadFromOthers()) {
    const ack = await call(socket, "mark_read", { messageId: message.id });
    if (ack.ok) thread.update(ack.message);
  }
}

function start(session) {
  showChat(true);
  thread.clear();
  setClosed(session.status === "closed");
  // It may have been closed while this page was away: ask, without waiting for a socket.
  api(`/api/sessions/${session.sessionId}`, { token: session.token })
    .then((s) => setClosed(s.status === "closed"))
    .catch(() => {});
  socket?.disconnect();
  if (clientMissing($("#status"), $("#note"))) return;
  socket = io({ auth: { token: session.token } });
  showConnection(socket, $("#status"));
  let joinedBefore = false;

  const joinSession = async () => {
    // First join and every rejoin ask for what came after the last message we hold.
    const after = thread.lastSeq;
    const ack = await call(socket, "join_session", { sessionId: session.sessionId, after });
    if (!ack.ok) {
      if (ack.error.code === "not_found") return reset("That conversation no longer exists.");
      return note(ack.error.message);
    }
    const fresh = ack.messages.filter((m) => thread.add(m)).length;
    $("#typing").hidden = !ack.typing.admin;
    // While routing is on and nobody has the chat yet: the place in the queue.
    if (ack.queuePosition) showOwner(`You are number ${ack.queuePosition} in the queue.`);
    if (joinedBefore) note(fresh ? `Back online: replayed ${fresh} missed message${fresh > 1 ? "s" : ""}.` : "Back online: nothing missed.");
    joinedBefore = true;
    markRead();
  };
  socket.on("connect", joinSession);
  // The server's Redis link was interrupted: live events may be missing, catch up by seq.
  socket.on("rejoin", ({ sessionId }) => {
    if (sessionId === session.sessionId) joinSession();
  });
  socket.on("connect_error", (err) => {
    if (["Invalid token", "Token has expired"].includes(err.message)) reset("Your chat expired: start a new one.");
    else note(err.message);
  });
  socket.on("new_message", (message) => {
    if (message.sessionId !== session.sessionId) return;
    thread.add(message);
    if (message.senderType === "admin") $("#typing").hidden = true;
    markRead();
  });
  socket.on("message_read", (message) => thread.update(message));
  socket.on("user_typing", (event) => {
    if (event.userType === "admin") $("#typing").hidden = !event.isTyping;
  });
  socket.on("session_updated", (s) => setClosed(s.status === "closed"));
  // Who answers: the agent's display name (the server never sends an email here).
  socket.on("session_assigned", ({ assigneeId, assigneeName }) =>
    showOwner(assigneeId ? `${assigneeName || "An agent"} is handling your chat.` : "Waiting for the next free agent…"),
  );
  socket.on("error", (event) => note(event.message));
}

function reset(message = "") {
  socket?.disconnect();
  socket = null;
  saved.clear();
  thread.clear();
  showOwner("");
  showChat(false);
  $("#status").dataset.state = "idle";
  $("#status").textContent = "not connected";
  $("#start-error").textContent = message;
}

$("#start").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("#start-error").textContent = "";
  const name = $("#name").value.trim();
  const email = $("#email").value.trim();
  try {
    const created = await api("/api/sessions", {
      method: "POST",
      body: { userId: `visitor-${newId().slice(0, 8)}`, userName: name || undefined, userEmail: email || undefined },
    });
    const session = { sessionId: created.id, token: created.customerToken, name, status: created.status };
    saved.set(session);
    start(session);
    $("#text").focus();
  } catch (err) {
    $("#start-error").textContent = err.message;
  }
});

const typing = typingNotifier((isTyping) => {
  const session = saved.get();
  if (socket?.connected && session) socket.emit("typing", { sessionId: session.sessionId, isTyping });
});
$("#text").addEventListener("input", () => ($("#text").value ? typing.input() : typing.stop()));

$("#composer").addEventListener("submit", async (event) => {
  event.preventDefault();
  const content = $("#text").value.trim();
  const session = saved.get();
  if (!content || !session) return;
  typing.stop();
  $("#text").value = "";
  // The same clientMessageId on a retry can never store the message twice.
  const ack = await call(socket, "send_message", { sessionId: session.sessionId, content, clientMessageId: newId() });
  if (ack.ok) thread.add(ack.message);
  else {
    $("#text").value = content;
    note(ack.error.message);
    if (ack.error.code === "session_closed") setClosed(true);
  }
});

$("#toggle").addEventListener("click", () => {
  if (!socket) return;
  if (socket.connected) {
    socket.disconnect();
    $("#toggle").textContent = "Reconnect";
    note("Offline: messages sent meanwhile are replayed when you reconnect.");
  } else {
    socket.connect();
    $("#toggle").textContent = "Go offline";
  }
});
$("#reset").addEventListener("click", () => reset());
document.addEventListener("visibilitychange", markRead);

const session = saved.get();
if (session) start(session);
else {
  showChat(false);
  clientMissing($("#status"), $("#start-error"));
}
