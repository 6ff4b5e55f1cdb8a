// The demo console in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven
// by playwright-core. A customer page and an agent page chat both ways, see each other
// typing and reading, and the customer catches up after going offline. Screenshots of each
// side go to SCENARIO.artifacts. Input: the SCENARIO env var (JSON). Output: one JSON line;
// exit code 0 only if every step held.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const s = JSON.parse(process.env.SCENARIO);
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const seen = { steps: [] };
const step = (name) => seen.steps.push(name);
const check = (cond, what) => {
  if (!cond) throw new Error(`failed: ${what}`);
};
const bubble = (page, side, text) => page.locator(`.bubble.${side}`, { hasText: text });

const profile = mkdtempSync(join(tmpdir(), "helpline-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: s.chromium,
    headless: true,
    args: ARGS,
    viewport: { width: 1000, height: 680 },
  });
  context.setDefaultTimeout(15000);
  const errors = [];
  const watch = (page, who) => {
    page.on("pageerror", (err) => errors.push(`${who}: ${err.message}`));
    page.on("console", (msg) => msg.type() === "error" && errors.push(`${who}: ${msg.text()}`));
  };

  // The agent bootstraps the desk: the first admin registers in the page.
  const agent = context.pages()[0] ?? (await context.newPage());
  watch(agent, "agent");
  await agent.goto(`${s.url}/demo/agent`);
  await agent.fill("#email", s.email);
  await agent.fill("#password", s.password);
  await agent.fill("#full-name", "Grace Hopper");
  await agent.click("#do-register");
  await agent.locator("#desk").waitFor();
  await agent.locator('#status[data-state="online"]').waitFor();
  step("agent registered and connected");

  const customer = await context.newPage();
  watch(customer, "customer");
  await customer.setViewportSize({ width: 420, height: 680 });
  await customer.goto(`${s.url}/demo/customer`);
  await customer.fill("#name", "Ada Lovelace");
  await customer.click("#start button[type=submit]");
  await customer.locator('#status[data-state="online"]').waitFor();
  step("customer started a chat");

  // The new conversation appears in the inbox live (session_created).
  const entry = agent.locator(".session", { hasText: "Ada Lovelace" });
  await entry.waitFor();
  await entry.locator("button").click();
  await agent.locator("#open").waitFor();
  await agent.locator('#conv-online[data-online="true"]').waitFor();
  step("agent opened it and sees the customer online");

  // Customer types: the agent sees it, then the message.
  const question = "Hello! My order #1042 has not arrived yet.";
  await customer.locator("#text").click();
  await customer.locator("#text").pressSequentially(question.slice(0, 12), { delay: 30 });
  await agent.locator("#typing").waitFor({ state: "visible" });
  seen.agentSawTyping = true;
  await customer.locator("#text").pressSequentially(question.slice(12), { delay: 5 });
  await customer.locator("#text").press("Enter");
  await bubble(agent, "theirs", question).waitFor();
  await agent.locator("#typing").waitFor({ state: "hidden" });
  step("agent saw the customer typing, then the message");

  // The agent had the conversation open, so the customer's message shows as read.
  await bubble(customer, "mine", question).locator(".flag", { hasText: "read" }).waitFor();
  step("customer sees the message read");

  // Agent types a reply: the customer sees typing, then the reply; the agent sees it read.
  const reply = "Sorry about that, Ada: it ships today.";
  await agent.locator("#text").click();
  await agent.locator("#text").pressSequentially(reply.slice(0, 10), { delay: 30 });
  await customer.locator("#typing").waitFor({ state: "visible" });
  seen.customerSawTyping = true;
  await agent.locator("#text").pressSequentially(reply.slice(10), { delay: 5 });
  await agent.locator("#text").press("Enter");
  await bubble(customer, "theirs", reply).waitFor();
  await bubble(agent, "mine", reply).locator(".flag", { hasText: "read" }).waitFor();
  step("customer saw the agent typing and the reply; agent sees it read");

  // Reconnect replay: what is sent while the customer is offline arrives on reconnect.
  await customer.click("#toggle");
  await customer.locator('#status[data-state="offline"]').waitFor();
  await agent.locator('#conv-online[data-online="false"]').waitFor();
  const missed = ["Tracking number: HL-20431.", "Anything else I can do?"];
  for (const text of missed) {
    await agent.fill("#text", text);
    await agent.locator("#text").press("Enter");
    await bubble(agent, "mine", text).waitFor();
  }
  check((await bubble(customer, "theirs", missed[0]).count()) === 0, "offline customer got nothing");
  await customer.click("#toggle");
  for (const text of missed) await bubble(customer, "theirs", text).waitFor();
  await customer.locator("#note", { hasText: "replayed 2 missed messages" }).waitFor();
  const seqs = await customer.locator(".bubble").evaluateAll((els) => els.map((e) => Number(e.dataset.seq)));
  check(JSON.stringify(seqs) === JSON.stringify([1, 2, 3, 4]), `thread in order without repeats: ${seqs}`);
  step("customer reconnected and got exactly the 2 missed messages");

  await customer.fill("#text", "Perfect, thank you!");
  await customer.locator("#text").press("Enter");
  await bubble(agent, "theirs", "Perfect, thank you!").waitFor();
  await bubble(customer, "mine", "Perfect, thank you!").locator(".flag", { hasText: "read" }).waitFor();
  step("chat goes on after the reconnect");

  await customer.screenshot({ path: join(s.artifacts, "demo-customer.png") });
  await agent.screenshot({ path: join(s.artifacts, "demo-agent.png") });
  const both = await context.newPage();
  watch(both, "console");
  await both.setViewportSize({ width: 1400, height: 760 });
  await both.goto(`${s.url}/demo`);
  // Same browser profile: both panes resume from what the pages above stored.
  const [left, right] = [both.frameLocator('iframe[title="Customer widget"]'), both.frameLocator('iframe[title="Agent inbox"]')];
  await right.locator(".session", { hasText: "Ada Lovelace" }).locator("button").click();
  for (const pane of [left, right]) await pane.locator(".bubble", { hasText: "Perfect, thank you!" }).waitFor();
  await both.screenshot({ path: join(s.artifacts, "demo-console.png") });
  step("screenshots saved");

  // The Team panel: the admin invites an agent and copies the link; the agent joins
  // through it and sees the inbox but no Team panel; the admin changes their role, then
  // deactivates them, which signs them out at once.
  await agent.locator("#team-toggle").click();
  await agent.locator("#team").waitFor();
  await agent.fill("#invite-email", "linus@example.com");
  await agent.fill("#invite-name", "Linus Torvalds");
  await agent.click("#invite button[type=submit]");
  await agent.locator("#link-box").waitFor();
  await agent.click("#copy-link");
  const link = await agent.locator("#invite-link").inputValue();
  check(link.startsWith(`${s.url}/demo/agent#invite=`), `an invitation link: ${link}`);
  const invitedRow = agent.locator('.member[data-state="invited"]', { hasText: "linus@example.com" });
  await invitedRow.waitFor();
  seen.invitationLink = true;
  step("admin invited an agent and copied the link");

  const newcomer = await context.newPage();
  watch(newcomer, "newcomer");
  await newcomer.goto(link);
  await newcomer.fill("#accept-password", s.password);
  await newcomer.click("#do-accept");
  await newcomer.locator("#desk").waitFor();
  await newcomer.locator('#status[data-state="online"]').waitFor();
  await newcomer.locator(".session", { hasText: "Ada Lovelace" }).waitFor();
  check(await newcomer.locator("#team-toggle").isHidden(), "an agent sees no Team button");
  check(await newcomer.locator("#team").isHidden(), "an agent sees no Team panel");
  seen.agentSawNoTeamPanel = true;
  step("the agent joined through the link: inbox yes, Team panel no");

  await agent.click("#team-toggle");
  await agent.click("#team-toggle");
  const row = agent.locator(".member", { hasText: "linus@example.com" });
  await row.locator('.presence[data-online="true"]').waitFor();
  const [patched] = await Promise.all([
    agent.waitForResponse((r) => r.request().method() === "PATCH" && r.url().includes("/api/agents/")),
    row.locator("select.role").selectOption("admin"),
  ]);
  check(patched.status() === 200, `role change answered ${patched.status()}`);
  await agent.waitForFunction(() =>
    [...document.querySelectorAll(".member")].some((m) => m.textContent.includes("linus@example.com") && m.querySelector("select.role").value === "admin"),
  );
  seen.roleChanged = true;
  step("admin made the agent an admin");

  await row.locator("button.deactivate").click();
  await newcomer.locator("#login").waitFor();
  await newcomer.locator("#login-error", { hasText: "deactivated" }).waitFor();
  await agent.locator('.member[data-state="deactivated"]', { hasText: "linus@example.com" }).waitFor();
  seen.deactivatedSignedOut = true;
  step("deactivating the member signed them out at once");
  await agent.screenshot({ path: join(s.artifacts, "demo-team.png") });
  await newcomer.screenshot({ path: join(s.artifacts, "demo-team-signed-out.png") });

  check(errors.length === 0, `no page errors: ${errors.join("; ")}`);
  console.log(JSON.stringify({ ok: true, ...seen }));
  await context.close();
  rmSync(profile, { recursive: true, force: true });
  process.exit(0);
} catch (err) {
  console.log(JSON.stringify({ ok: false, error: String(err.message || err).split("\n")[0], ...seen }));
  await context?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  process.exit(1);
}
