// The demo console's rough edges, in headless Chromium at desktop (1280) and phone (390)
// width: a fresh desk offers "Create first admin" first; every inbox row shows its own
// presence and "typing…", and its presence again right after the agent reloads; a closed conversation is closed at once after a reload; the
// page says why when the npm Socket.IO client is missing; secondary buttons look like
// buttons; nothing overflows at 390 px. Screenshots to SCENARIO.artifacts (demo-fix-*.png).
// Output: one JSON line; exit 0 only if every step held.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const s = JSON.parse(process.env.SCENARIO);
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const seen = { steps: [] };
const step = (name) => seen.steps.push(name);
const check = (cond, what) => {
  if (!cond) throw new Error(`failed: ${what}`);
};
const shot = (page, name) => page.screenshot({ path: join(s.artifacts, `demo-fix-${name}.png`) });
const overflow = (page) => page.evaluate(() => document.scrollingElement.scrollWidth - window.innerWidth);

const profile = mkdtempSync(join(tmpdir(), "helpline-demo-fixes-"));
let context;
let browser;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: s.chromium, headless: true, args: ARGS, viewport: DESKTOP,
  });
  context.setDefaultTimeout(15000);
  const errors = [];
  const watch = (page, who) => page.on("pageerror", (err) => errors.push(`${who}: ${err.message}`));

  // 1. A fresh desk: "Create first admin" is the primary action, at both widths.
  const agent = context.pages()[0] ?? (await context.newPage());
  watch(agent, "agent");
  await agent.goto(`${s.url}/demo/agent`);
  await agent.locator("#do-register.primary").waitFor();
  check(!(await agent.locator("#do-login").getAttribute("class"))?.includes("primary"), "log in is secondary");
  await shot(agent, "fresh-desk-desktop");
  await agent.setViewportSize(PHONE);
  check((await overflow(agent)) <= 0, "fresh desk fits 390 px");
  await shot(agent, "fresh-desk-phone");
  await agent.setViewportSize(DESKTOP);
  await agent.fill("#email", s.email);
  await agent.fill("#password", s.password);
  await agent.locator("#password").press("Enter"); // Enter creates the first admin here
  await agent.locator('#status[data-state="online"]').waitFor();
  step("fresh desk offers Create first admin first; Enter created it");

  // 2. Two customers: every row shows its own presence, and typing on the row not open.
  // Each customer in a browser context of its own (its own stored session).
  browser = await chromium.launch({ executablePath: s.chromium, headless: true, args: ARGS });
  const customers = [];
  for (const name of ["Ada Lovelace", "Alan Turing"]) {
    const page = await (await browser.newContext()).newPage();
    page.setDefaultTimeout(15000);
    watch(page, name);
    await page.setViewportSize(PHONE);
    await page.goto(`${s.url}/demo/customer`);
    await page.fill("#name", name);
    await page.click("#start button[type=submit]");
    await page.locator('#status[data-state="online"]').waitFor();
    customers.push(page);
  }
  const row = (name) => agent.locator(".session", { hasText: name });
  for (const name of ["Ada Lovelace", "Alan Turing"]) await row(name).locator('.presence[data-online="true"]').waitFor();
  await row("Ada Lovelace").locator("button").click();
  await agent.locator("#open").waitFor();
  await customers[1].locator("#text").pressSequentially("Hello?", { delay: 40 });
  await row("Alan Turing").locator(".preview", { hasText: "typing…" }).waitFor();
  step("both rows online; the row not open shows typing…");
  await shot(agent, "inbox-desktop");
  await agent.setViewportSize(PHONE);
  check((await overflow(agent)) <= 0, "inbox fits 390 px");
  await shot(agent, "inbox-phone");
  await agent.setViewportSize(DESKTOP);
  await customers[1].locator("#text").press("Enter");
  await row("Alan Turing").locator(".preview", { hasText: "Hello?" }).waitFor();

  // 2b. Alan leaves, the agent reloads: each row's dot is right from the inbox page alone
  // (the rows appear with it, and no presence event follows a reload).
  await customers[1].close();
  await row("Alan Turing").locator('.presence[data-online="false"]').waitFor();
  await agent.reload({ waitUntil: "domcontentloaded" });
  await agent.locator('#status[data-state="online"]').waitFor();
  await row("Alan Turing").waitFor();
  const dots = {};
  for (const name of ["Ada Lovelace", "Alan Turing"]) dots[name] = await row(name).locator(".presence").getAttribute("data-online");
  check(dots["Ada Lovelace"] === "true" && dots["Alan Turing"] === "false", `dots after reload ${JSON.stringify(dots)}`);
  step("after an agent reload Ada's row is online and Alan's offline");
  await shot(agent, "inbox-reloaded-desktop");
  await row("Ada Lovelace").locator("button").click();
  await agent.locator("#open").waitFor();

  // 3. The agent closes Ada's conversation; after a reload her composer is disabled at once.
  await agent.click("#close");
  await agent.locator("#text:disabled").waitFor();
  const ada = customers[0];
  await ada.locator("#text:disabled").waitFor();
  await ada.reload({ waitUntil: "domcontentloaded" });
  await ada.locator("#text:disabled").waitFor({ timeout: 1000 });
  await ada.locator("#note", { hasText: "closed" }).waitFor();
  check((await overflow(ada)) <= 0, "widget fits 390 px");
  step("closed conversation is closed at once after a reload");
  await shot(ada, "closed-phone");

  // 4. Secondary buttons look like buttons: a visible border and fill.
  const look = await agent.locator("#logout").evaluate((el) => {
    const css = getComputedStyle(el);
    return { border: css.borderTopColor, background: css.backgroundColor, width: css.borderTopWidth };
  });
  check(look.border !== "rgba(0, 0, 0, 0)" && look.background !== "rgba(0, 0, 0, 0)", `button look ${JSON.stringify(look)}`);
  step("secondary buttons have a border and a fill");

  // 5. Without the npm client the page says why (the request answers as when it is missing).
  const bare = await context.newPage();
  await bare.route("**/demo/socket.io.min.js", (route) =>
    route.fulfill({ status: 503, contentType: "application/json", body: '{"error":"missing","code":"demo_assets_missing"}' }),
  );
  await bare.goto(`${s.url}/demo/agent`);
  await bare.locator("#note-global", { hasText: "npm ci --prefix app/demo" }).waitFor();
  check((await bare.locator("#status").textContent()) === "no Socket.IO client", "badge says no client");
  step("missing npm client is named on the page");
  await shot(bare, "no-client-desktop");

  seen.errors = errors.filter((e) => !e.startsWith("io is not defined"));
  check(seen.errors.length === 0, `no page errors: ${seen.errors.join("; ")}`);
  console.log(JSON.stringify({ ok: true, ...seen }));
  await browser.close();
  await context.close();
  rmSync(profile, { recursive: true, force: true });
  process.exit(0);
} catch (err) {
  console.log(JSON.stringify({ ok: false, error: String(err.message || err).split("\n")[0], ...seen }));
  await browser?.close().catch(() => {});
  await context?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  process.exit(1);
}
