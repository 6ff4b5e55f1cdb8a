// Ownership in the demo console, two agents in two browser contexts (headless Chromium via
// playwright-core): both see a new conversation under Unassigned, both press Claim at once
// (one gets it, the other is told who was first), the owner finds it under Mine and hands it
// over, the colleague sees it arrive as theirs, and sets their own status to busy.
// Input: the SCENARIO env var (JSON). Output: one JSON line; exit code 0 only if every
// step held. Screenshots go to SCENARIO.artifacts.
import { join } from "node:path";
import { chromium } from "playwright-core";

const s = JSON.parse(process.env.SCENARIO);
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync"];
const seen = { steps: [] };
const step = (name) => seen.steps.push(name);
const check = (cond, what) => {
  if (!cond) throw new Error(`failed: ${what}`);
};

async function rest(path, { method = "GET", body, token } = {}) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(`${s.url}${path}`, { method, headers, body: body && JSON.stringify(body) });
  const data = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(data)}`);
  return data;
}

let browser;
try {
  const first = await rest("/api/auth/register", {
    method: "POST",
    body: { email: "grace@example.com", password: s.password, fullName: "Grace Hopper" },
  });
  const invited = await rest("/api/agents", {
    method: "POST",
    body: { email: "linus@example.com", fullName: "Linus Torvalds", role: "agent" },
    token: first.token,
  });
  await rest("/api/auth/accept-invite", { method: "POST", body: { token: invited.invitation.token, password: s.password } });

  browser = await chromium.launch({ executablePath: s.chromium, headless: true, args: ARGS });
  const errors = [];
  const page = async (who, email) => {
    // (each agent in a context of its own: the console keeps its sign-in in localStorage)
    const context = await browser.newContext({ viewport: { width: 1100, height: 640 } });
    context.setDefaultTimeout(15000);
    const p = await context.newPage();
    p.on("pageerror", (err) => errors.push(`${who}: ${err.message}`));
    p.on("console", (msg) => msg.type() === "error" && !msg.text().includes("409") && errors.push(`${who}: ${msg.text()}`));
    await p.goto(`${s.url}/demo/agent`);
    await p.fill("#email", email);
    await p.fill("#password", s.password);
    await p.click("#do-login");
    await p.locator('#status[data-state="online"]').waitFor();
    await p.locator("#my-status").waitFor();
    return p;
  };
  const grace = await page("grace", "grace@example.com");
  const linus = await page("linus", "linus@example.com");
  step("two agents signed in");

  // The customer's widget, in a third context: it will hear who answers, by name only.
  const widget = await (await browser.newContext({ viewport: { width: 420, height: 640 } })).newPage();
  widget.on("pageerror", (err) => errors.push(`widget: ${err.message}`));
  await widget.goto(`${s.url}/demo/customer`);
  await widget.fill("#name", "Ada Lovelace");
  await widget.click("#start button[type=submit]");
  await widget.locator('#status[data-state="online"]').waitFor();
  for (const p of [grace, linus]) {
    await p.click('#filters button[data-filter="unassigned"]');
    const row = p.locator(".session", { hasText: "Ada Lovelace" });
    await row.locator('.owner[data-owner=""]', { hasText: "Unassigned" }).waitFor();
    await row.locator("button").first().click();
    await p.locator("#claim").waitFor({ state: "visible" });
  }
  step("both see the conversation under Unassigned with a Claim button");

  // Pressed in both pages at once (a click that waited for the other's answer would find
  // the button gone, which is the point).
  await Promise.all([grace, linus].map((p) => p.evaluate(() => document.querySelector("#claim").click())));
  const owners = await Promise.all(
    [grace, linus].map(async (p) => {
      await p.locator("#conv-owner", { hasText: /You|Grace|Linus/ }).waitFor();
      return p.locator("#conv-owner").textContent();
    }),
  );
  const winner = owners[0].includes("You") ? grace : linus;
  const loser = winner === grace ? linus : grace;
  check(owners.filter((o) => o.includes("You")).length === 1, `exactly one owner: ${owners}`);
  await loser.locator("#note", { hasText: "first" }).waitFor();
  check(await loser.locator("#claim").isHidden(), "no Claim button once it has an owner");
  seen.oneClaimWon = true;
  step("they claimed at once: one got it, the other was told who was first");

  await winner.click('#filters button[data-filter="mine"]');
  await winner.locator(".session", { hasText: "Ada Lovelace" }).waitFor();
  await loser.click('#filters button[data-filter="mine"]');
  await loser.locator("#inbox-empty").waitFor({ state: "visible" });
  step("Mine shows it to the owner only");

  const loserName = loser === grace ? "Grace Hopper" : "Linus Torvalds";
  await winner.locator("#handover-to").selectOption({ label: loserName });
  await winner.locator("#handover button[type=submit]").click();
  await loser.locator(".session", { hasText: "Ada Lovelace" }).locator(".owner", { hasText: "You" }).waitFor();
  await winner.locator("#conv-owner", { hasText: loserName }).waitFor();
  await widget.locator("#owner", { hasText: `${loserName} is handling your chat.` }).waitFor();
  check(!(await widget.locator("#owner").textContent()).includes("@"), "no email in the widget");
  seen.handedOver = true;
  step("the owner handed it over; the colleague sees it under Mine as theirs");

  await loser.locator("#my-status").selectOption("busy");
  await loser.waitForFunction(() => document.querySelector("#my-status").dataset.available === "false");
  seen.statusSwitched = true;
  step("the colleague set themselves busy");

  await winner.click('#filters button[data-filter="all"]');
  await winner.screenshot({ path: join(s.artifacts, "demo-ownership-first.png") });
  await loser.screenshot({ path: join(s.artifacts, "demo-ownership-second.png") });
  await widget.screenshot({ path: join(s.artifacts, "demo-ownership-customer.png") });
  check(errors.length === 0, `no page errors: ${errors.join("; ")}`);
  console.log(JSON.stringify({ ok: true, ...seen }));
  await browser.close();
  process.exit(0);
} catch (err) {
  console.log(JSON.stringify({ ok: false, error: String(err.message || err).split("\n")[0], ...seen }));
  await browser?.close().catch(() => {});
  process.exit(1);
}
