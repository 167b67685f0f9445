import { createServer, type Server } from "node:http";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type A1111Farm, startA1111Farm } from "../support/a1111-farm";
import { BROWSER_SKIP_REASON } from "./support/browser";

/**
 * A page of another site, opened in Debian's Chromium on the studio machine,
 * tries every way a page has to make Kiln's A1111 API render: a "simple" POST
 * that needs no CORS preflight, a JSON fetch, a form, and a name of its own
 * resolved to 127.0.0.1 (DNS rebinding). None may queue a job. The same page
 * does render once `--cors-allow-origins` names its origin: the refusals are the guard's.
 */
let farm: A1111Farm;
let attacker: Server;
let attackerPort: number;
let browser: Browser;

const BODY = JSON.stringify({ prompt: "rendered for a web page", steps: 1, batch_size: 1 });

const attackPage = (apiPort: number) => `<!doctype html><meta charset="utf-8"><title>attack</title>
<iframe name="sink"></iframe>
<form id="form" method="POST" enctype="text/plain" target="sink" action="http://127.0.0.1:${apiPort}/sdapi/v1/txt2img">
<input name='{"prompt":"form","steps":1,"x":"' value='"}'></form>
<script>
window.attempts = (async () => {
  const results = {};
  const api = "http://127.0.0.1:${apiPort}/sdapi/v1/txt2img";
  const body = ${JSON.stringify(BODY)};
  try { await fetch(api, { method: "POST", mode: "no-cors", headers: { "content-type": "text/plain" }, body }); results.simple = "sent"; } catch (e) { results.simple = String(e); }
  try { const r = await fetch(api, { method: "POST", headers: { "content-type": "application/json" }, body }); results.json = r.status; } catch (e) { results.json = String(e); }
  try { await fetch("http://rebind.example:${apiPort}/sdapi/v1/txt2img", { method: "POST", mode: "no-cors", body }); results.rebind = "sent"; } catch (e) { results.rebind = String(e); }
  try { const r = await fetch("http://127.0.0.1:${apiPort}/sdapi/v1/sd-models"); results.read = r.status; } catch (e) { results.read = String(e); }
  document.getElementById("form").submit();
  results.form = "submitted";
  return results;
})();
</script>`;

beforeAll(async () => {
  if (BROWSER_SKIP_REASON) return;
  farm = await startA1111Farm(["1x24GB@8"]);
  attacker = createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(attackPage(Number(new URL(req.url ?? "/", "http://x").searchParams.get("api") ?? farm.port)));
  });
  await new Promise<void>((resolve) => attacker.listen(0, "127.0.0.1", resolve));
  attackerPort = (attacker.address() as { port: number }).port;
  browser = await chromium.launch({
    executablePath: process.env.KILN_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    // rebind.example resolves to this machine, as a rebinding attacker's DNS would make it.
    args: ["--no-sandbox", "--disable-gpu", "--host-resolver-rules=MAP rebind.example 127.0.0.1"],
  });
});

afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => attacker?.close(resolve));
  await farm?.stop();
});

function apiJobs() {
  return farm.coordinator.listJobs().filter((j) => j.source?.kind === "a1111-api");
}

if (BROWSER_SKIP_REASON)
  console.warn(`SKIPPED a page of another origin in Chromium and the A1111 API: ${BROWSER_SKIP_REASON}`);

describe.skipIf(BROWSER_SKIP_REASON !== null)("a page of another origin in Chromium and the A1111 API", () => {
  it("cannot make the farm render, by a simple POST, a JSON fetch, a form or a rebound name", async () => {
    const page = await browser.newPage();
    for (const origin of [`http://localhost:${attackerPort}`, `http://rebind.example:${attackerPort}`]) {
      await page.goto(`${origin}/`);
      const results = await page.evaluate(() => (globalThis as unknown as { attempts: Promise<unknown> }).attempts);
      // The JSON fetch's preflight is refused, and the page cannot even read the model list.
      expect(results).toMatchObject({
        json: expect.stringContaining("Failed to fetch"),
        read: expect.stringContaining("Failed to fetch"),
      });
      await page.waitForTimeout(500);
    }
    await page.close();
    expect(apiJobs()).toEqual([]);

    // Control: the same page, once --cors-allow-origins names its origin, does make the farm render.
    const allowed = await farm.serveAgain({ corsOrigins: [`http://localhost:${attackerPort}`] });
    try {
      const again = await browser.newPage();
      await again.goto(`http://localhost:${attackerPort}/?api=${new URL(allowed.base).port}`);
      const results = await again.evaluate(() => (globalThis as unknown as { attempts: Promise<unknown> }).attempts);
      expect(results).toMatchObject({ json: 200, read: 200 });
      await again.close();
      expect(apiJobs().length).toBeGreaterThanOrEqual(1);
    } finally {
      await allowed.close();
    }
  });
});
