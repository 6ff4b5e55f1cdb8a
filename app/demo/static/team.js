// The Team panel of the agent console, for admins only (agents never see the button, and
// the server refuses them anyway): invite a member and copy the link, change a role,
// deactivate or reactivate, hand out a one-time password-reset link.
import { $, api, h } from "/demo/static/common.js";

const STATE = (m) => (!m.active ? "deactivated" : m.invited ? "invited" : m.online ? "online" : "offline");

/** `#invite=<token>` or `#reset=<token>` in the page's address: a link to redeem. */
export function linkInAddress() {
  const match = /^#(invite|reset)=([\w-]+)$/.exec(location.hash);
  return match ? { kind: match[1], token: match[2] } : null;
}

export function teamPanel({ token, me, onError }) {
  const panel = $("#team");
  const toggle = $("#team-toggle");
  let shown = false;

  function showLink(title, link) {
    $("#link-box").hidden = false;
    $("#link-title").textContent = title;
    $("#invite-link").value = link.url;
  }

  async function act(path, body, method = "POST") {
    try {
      return await api(path, { method, body, token: token() });
    } catch (err) {
      onError(err.message);
      return null;
    } finally {
      await refresh();
    }
  }

  function row(m) {
    const mine = m.id === me().id;
    const role = h(
      "select",
      { ariaLabel: `Role of ${m.email}`, class: "role", disabled: mine, onchange: (e) => act(`/api/agents/${m.id}`, { role: e.target.value }, "PATCH") },
      ...["admin", "agent"].map((r) => h("option", { value: r, selected: r === m.role }, r)),
    );
    const buttons = [];
    if (!mine && m.active) buttons.push(h("button", { type: "button", class: "quiet deactivate", onclick: () => act(`/api/agents/${m.id}/deactivate`) }, "Deactivate"));
    if (!m.active) buttons.push(h("button", { type: "button", class: "quiet reactivate", onclick: () => act(`/api/agents/${m.id}/reactivate`) }, "Reactivate"));
    if (m.invited) {
      buttons.push(h("button", { type: "button", class: "quiet reissue", onclick: async () => {
        const link = await act(`/api/agents/${m.id}/invitation`);
        if (link) showLink(`New invitation for ${m.email}`, link);
      } }, "New link"));
    } else if (m.active) {
      buttons.push(h("button", { type: "button", class: "quiet reset", onclick: async () => {
        const link = await act(`/api/agents/${m.id}/reset-link`);
        if (link) showLink(`Password reset for ${m.email}`, link);
      } }, "Reset link"));
    }
    return h(
      "li",
      { class: "member", dataId: m.id, dataState: STATE(m) },
      h("span", { class: "presence", dataOnline: String(Boolean(m.online && m.active)) }),
      h("span", { class: "who" }, h("strong", {}, m.fullName || m.email), h("span", { class: "sub" }, `${m.email} · ${STATE(m)}`)),
      role,
      h("span", { class: "member-actions" }, ...buttons),
    );
  }

  async function refresh() {
    if (!shown) return;
    try {
      const team = await api("/api/agents", { token: token() });
      $("#members").replaceChildren(...team.map(row));
    } catch (err) {
      onError(err.message);
    }
  }

  function setOpen(open) {
    shown = open;
    panel.hidden = !open;
    $("#desk").hidden = open;
    toggle.textContent = open ? "Inbox" : "Team";
    if (open) refresh();
  }

  toggle.addEventListener("click", () => setOpen(!shown));
  $("#invite").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {
      email: $("#invite-email").value.trim(),
      fullName: $("#invite-name").value.trim() || undefined,
      role: $("#invite-role").value,
    };
    const out = await act("/api/agents", body);
    if (out) {
      showLink(`Invitation for ${out.agent.email}`, out.invitation);
      $("#invite").reset();
    }
  });
  $("#copy-link").addEventListener("click", async () => {
    const input = $("#invite-link");
    input.select();
    try {
      await navigator.clipboard.writeText(input.value);
      $("#copy-link").textContent = "Copied";
    } catch {
      $("#copy-link").textContent = "Selected: copy it";
    }
  });

  return {
    /** Show the Team button to admins only; hide the panel otherwise. */
    show(role) {
      toggle.hidden = role !== "admin";
      if (role !== "admin") setOpen(false);
    },
    close: () => setOpen(false),
    refresh,
  };
}
