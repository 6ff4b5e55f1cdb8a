// A customer and an admin talk through the server with socket.io-client v4, the client
// browsers use. Input: the SCENARIO env var (JSON). Output: one JSON line of what was seen;
// exit code 0 only if every step held.
import { io } from "socket.io-client";

const s = JSON.parse(process.env.SCENARIO);
const options = (token) => ({
  auth: { token },
  reconnection: false,
  timeout: 10000,
  ...(s.transports ? { transports: s.transports } : {}),
});
const withTimeout = (promise, what, ms = 10000) =>
  Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timeout: ${what}`)), ms)),
  ]);
const connected = (socket, what) =>
  withTimeout(
    new Promise((resolve, reject) => {
      socket.on("connect", resolve);
      socket.on("connect_error", (err) => reject(new Error(`${what}: ${err.message}`)));
    }),
    `connect ${what}`,
  );
const next = (socket, event, predicate = () => true) =>
  withTimeout(
    new Promise((resolve) => {
      const handler = (data) => {
        if (predicate(data)) {
          socket.off(event, handler);
          resolve(data);
        }
      };
      socket.on(event, handler);
    }),
    event,
  );
const check = (cond, what) => {
  if (!cond) throw new Error(`failed: ${what}`);
};

const seen = {};
const sockets = [];
try {
  const refused = io(s.customerUrl, options("not-a-token"));
  sockets.push(refused);
  seen.refusal = await withTimeout(
    new Promise((resolve) => refused.on("connect_error", (err) => resolve(err.message))),
    "refusal",
  );
  check(seen.refusal === "Invalid token", "bad token refused with its reason");

  for (let round = 0; round < (s.rounds ?? 1); round++) {
    const customer = io(s.customerUrl, options(s.customerToken));
    const admin = io(s.adminUrl, options(s.adminToken));
    sockets.push(customer, admin);
    await Promise.all([connected(customer, "customer"), connected(admin, "admin")]);

    const joinedC = await customer.timeout(10000).emitWithAck("join_session", s.sessionId);
    const joinedA = await admin.timeout(10000).emitWithAck("join_session", { sessionId: s.sessionId, after: 0 });
    check(joinedC.ok && joinedA.ok, "both joined");

    const toAdmin = next(admin, "new_message", (m) => m.content === `from customer ${round}`);
    const ack = await customer
      .timeout(10000)
      .emitWithAck("send_message", { sessionId: s.sessionId, content: `from customer ${round}` });
    check(ack.ok && ack.message.senderType === "user", "customer send acked with stored message");
    const delivered = await toAdmin;
    check(delivered.id === ack.message.id, "admin got the customer's message");

    const toCustomer = next(customer, "new_message", (m) => m.content === `from admin ${round}`);
    const reply = await admin
      .timeout(10000)
      .emitWithAck("send_message", { sessionId: s.sessionId, content: `from admin ${round}` });
    check(reply.ok && reply.message.senderType === "admin", "admin send acked");
    check((await toCustomer).id === reply.message.id, "customer got the admin's reply");

    const typing = next(admin, "user_typing", (e) => e.isTyping === true);
    await customer.timeout(10000).emitWithAck("typing", { sessionId: s.sessionId, isTyping: true });
    const typed = await typing;
    check(typed.userType === "user", "admin saw the customer typing");

    const asAdmin = await customer
      .timeout(10000)
      .emitWithAck("send_message", { sessionId: s.sessionId, content: "x", senderType: "admin" });
    check(!asAdmin.ok && asAdmin.error.code === "sender_mismatch", "customer cannot send as admin");

    seen.transports = [customer.io.engine.transport.name, admin.io.engine.transport.name];
    seen.rounds = round + 1;
    customer.disconnect();
    admin.disconnect();
  }
  console.log(JSON.stringify({ ok: true, ...seen }));
  process.exit(0);
} catch (err) {
  console.log(JSON.stringify({ ok: false, error: String(err.message || err), ...seen }));
  for (const socket of sockets) socket.disconnect();
  process.exit(1);
}
