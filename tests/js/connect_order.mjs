// A staff socket hears nothing before its own "connect". The server under test pauses
// in a staff socket's connect handler (HELPLINE_TEST_CONNECT_PAUSE); a customer connects
// meanwhile, so a customer_presence event for `admins` is emitted while the agent's
// connection is not yet answered. socket.io-client v4 keeps an event that comes before
// the CONNECT answer in its receive buffer and fires it just before "connect" (a listener
// added in the "connect" handler never hears it): the server must not send one. A
// control event after the answer proves the agent does hear `admins`.
// Input: SCENARIO (JSON); output: one JSON line; exit code 0 only if every step held.
import { io } from "socket.io-client";

const s = JSON.parse(process.env.SCENARIO);
const options = (token) => ({
  auth: { token },
  reconnection: false,
  timeout: 20000,
  ...(s.transports ? { transports: s.transports } : {}),
});
const within = (promise, what, ms = 20000) =>
  Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timeout: ${what}`)), ms)),
  ]);
const once = (emitter, event) => new Promise((resolve) => emitter.once(event, resolve));

async function untilOnline() {
  for (;;) {
    const r = await fetch(`${s.url}/api/agents`, { headers: { Authorization: `Bearer ${s.adminToken}` } });
    const team = await r.json();
    if (team.some((member) => member.online)) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const seen = { agent: [] };
const sockets = [];
try {
  const agent = io(s.url, options(s.adminToken));
  sockets.push(agent);
  agent.on("customer_presence", (e) => seen.agent.push(`presence:${e.online}`));
  const agentConnected = once(agent, "connect").then(() => seen.agent.push("connect"));
  // The server is in the agent's paused connect handler once the team list shows the
  // agent online (counted just before the pause). Now the customer connects.
  await within(untilOnline(), "agent counted online");
  const customer = io(s.url, options(s.customerToken));
  sockets.push(customer);
  await within(once(customer, "connect"), "customer connect");
  // The window was hit only if the customer was in before the agent's answer came.
  seen.customerFirst = !agent.connected;
  await within(agentConnected, "agent connect");
  // A control: an event after the answer does reach the agent.
  customer.disconnect();
  await within(
    new Promise((resolve) => agent.on("customer_presence", (e) => e.online === false && resolve())),
    "presence offline",
  );
  console.log(JSON.stringify({ ok: true, ...seen }));
  sockets.forEach((socket) => socket.disconnect());
  process.exit(0);
} catch (err) {
  console.log(JSON.stringify({ ok: false, error: String(err.message || err), ...seen }));
  sockets.forEach((socket) => socket.disconnect());
  process.exit(1);
}
