// /docs in headless Chromium with no way out: every host but 127.0.0.1 unresolvable
// (SCENARIO.offline), or run inside a network namespace with no route. Swagger UI must
// render the API from assets the server serves itself. Screenshot to SCENARIO.artifacts.
// Output: one JSON line {ok, title, operations, requests}; exit 0 only if it rendered.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const s = JSON.parse(process.env.SCENARIO);
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
if (s.offline) ARGS.push("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1");

const profile = mkdtempSync(join(tmpdir(), "helpline-docs-"));
let context;
const seen = { requests: [], failed: [], errors: [] };
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: s.chromium, headless: true, args: ARGS,
    viewport: { width: 1200, height: 900 },
  });
  context.setDefaultTimeout(20000);
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("request", (r) => seen.requests.push(r.url()));
  page.on("requestfailed", (r) => seen.failed.push(r.url()));
  page.on("pageerror", (err) => seen.errors.push(err.message));
  await page.goto(`${s.url}/docs`);
  await page.locator(".swagger-ui .info .title").waitFor();
  await page.locator(".opblock").first().waitFor();
  seen.title = (await page.locator(".swagger-ui .info .title").innerText()).split("\n")[0];
  seen.operations = await page.locator(".opblock").count();
  await page.screenshot({ path: join(s.artifacts, s.screenshot || "docs-offline.png"), fullPage: false });
  console.log(JSON.stringify({ ok: seen.errors.length === 0, ...seen }));
  await context.close();
  rmSync(profile, { recursive: true, force: true });
  process.exit(seen.errors.length === 0 ? 0 : 1);
} catch (err) {
  console.log(JSON.stringify({ ok: false, error: String(err.message || err).split("\n")[0], ...seen }));
  await context?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  process.exit(1);
}
