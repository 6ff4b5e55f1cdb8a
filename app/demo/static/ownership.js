// Who owns each conversation, in the agent inbox: the Mine / Unassigned / All filter, the
// owner on each row and in the open conversation, Claim, hand over to a colleague (a
// compare-and-set: a stale view is told instead of overwriting), and the agent's own
// online / busy / offline switch.
import { $, api, h } from "/demo/static/common.js";

export function ownership({ token, me, sessions, current, render, refresh, note }) {
  let filter = "all";
  let members = [];

  const mine = (s) => s.assigneeId && s.assigneeId === me().id;
  const ownerLabel = (s) => (!s.assigneeId ? "Unassigned" : mine(s) ? "You" : s.assigneeName || "A colleague");

  function shown(s) {
    if (filter === "mine") return mine(s);
    if (filter === "unassigned") return !s.assigneeId;
    return true;
  }

  function showFilter() {
    for (const button of document.querySelectorAll("#filters button")) {
      button.setAttribute("aria-pressed", String(button.dataset.filter === filter));
    }
  }

  async function loadMembers() {
    members = (await api("/api/agents", { token: token() }).catch(() => [])).filter((m) => m.active && !m.invited);
  }

  // The open conversation's owner line, Claim and hand-over controls.
  function showOwner(s) {
    $("#conv-owner").textContent = `Owner: ${ownerLabel(s)}`;
    $("#conv-owner").dataset.owner = s.assigneeId ?? "";
    $("#claim").hidden = Boolean(s.assigneeId) || s.status === "closed";
    const others = members.filter((m) => m.id !== s.assigneeId);
    $("#handover-to").replaceChildren(
      ...others.map((m) => h("option", { value: m.id }, m.id === me().id ? "Me" : m.fullName || m.email)),
      s.assigneeId ? h("option", { value: "" }, "Back to the queue") : null,
    );
    $("#handover").hidden = $("#handover-to").options.length === 0 || s.status === "closed";
  }

  function update(s) {
    sessions.set(s.id, { ...sessions.get(s.id), ...s });
    if (s.id === current()) showOwner(sessions.get(s.id));
    render();
  }

  async function change(path, options) {
    const id = current();
    try {
      update(await api(path, { ...options, token: token() }));
      note("");
    } catch (err) {
      if (err.code === "assignment_conflict") {
        // Someone was first: show who has it now instead of overwriting them.
        await refresh(id);
        note(`Someone changed the owner first: it is now ${ownerLabel(sessions.get(id))}'s.`);
      } else note(err.message);
    }
  }

  for (const button of document.querySelectorAll("#filters button")) {
    button.addEventListener("click", () => {
      filter = button.dataset.filter;
      showFilter();
      render();
    });
  }
  $("#claim").addEventListener("click", () => change(`/api/sessions/${current()}/claim`, { method: "POST" }));
  $("#handover").addEventListener("submit", (event) => {
    event.preventDefault();
    const s = sessions.get(current());
    change(`/api/sessions/${s.id}/assignee`, {
      method: "PATCH",
      body: { assigneeId: $("#handover-to").value || null, expectedAssigneeId: s.assigneeId ?? null },
    });
  });
  $("#my-status").addEventListener("change", async () => {
    try {
      const member = await api("/api/agents/me/availability", { method: "PATCH", body: { status: $("#my-status").value }, token: token() });
      $("#my-status").value = member.availability;
      $("#my-status").dataset.available = String(member.available);
    } catch (err) {
      note(err.message);
    }
  });
  showFilter();

  return {
    shown,
    ownerLabel,
    showOwner,
    // On (re)connect: colleagues for hand-over, and this member's own switch.
    async start() {
      await loadMembers();
      const self = members.find((m) => m.id === me().id);
      if (self) {
        $("#my-status").value = self.availability;
        $("#my-status").dataset.available = String(self.available);
      }
      $("#my-status").hidden = false;
    },
    stop() {
      $("#my-status").hidden = true;
      filter = "all";
      showFilter();
    },
    assigned(event) {
      const s = sessions.get(event.sessionId);
      if (!s) return;
      update({
        id: event.sessionId,
        assigneeId: event.assigneeId,
        assigneeName: event.assigneeName,
        assignedAt: event.assignedAt,
        assignmentReason: event.reason,
      });
    },
    presence(event) {
      const m = members.find((x) => x.id === event.agentId);
      if (m) Object.assign(m, { availability: event.status, available: event.available });
      if (event.agentId === me().id) {
        $("#my-status").value = event.status;
        $("#my-status").dataset.available = String(event.available);
      }
    },
  };
}
