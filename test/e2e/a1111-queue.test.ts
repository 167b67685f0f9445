import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type A1111Farm, startA1111Farm, UI_TOKEN } from "../support/a1111-farm";
import { BROWSER_SKIP_REASON, launchBrowser } from "./support/browser";
import { builtRenderer } from "./support/built-ui";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SCREENSHOTS = join(ROOT, "test/e2e/screenshots");

/** A request from an A1111 client, as the studio sees it in the app: in the queue and on the devices that render it. */
if (BROWSER_SKIP_REASON) console.warn(`SKIPPED an A1111 request in the Kiln UI: ${BROWSER_SKIP_REASON}`);

describe.skipIf(BROWSER_SKIP_REASON !== null)("an A1111 request in the Kiln UI", () => {
  let farm: A1111Farm;
  let page: Page;
  let closeBrowser: () => Promise<void>;
  let request: Promise<Response> | undefined;

  beforeAll(async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    farm = await startA1111Farm(["2x24GB@2"], { uiDir: builtRenderer() });
    ({ page, close: closeBrowser } = await launchBrowser());
  }, 180_000);

  afterAll(async () => {
    if (farm) await fetch(`${farm.base}/sdapi/v1/interrupt`, { method: "POST" }).catch(() => null);
    await request?.catch(() => null);
    await closeBrowser?.();
    await farm?.stop();
  });

  it("shows the job as the API's, with the client's address, in the queue and on the devices rendering it", async () => {
    request = fetch(`${farm.base}/sdapi/v1/txt2img`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "a request from open webui", batch_size: 48, steps: 30, width: 256, height: 256 }),
    });
    await page.goto(`${farm.base}/?token=${UI_TOKEN}`);
    const card = page.getByRole("article", { name: "a request from open webui", exact: true });
    await expect.poll(() => card.textContent(), { timeout: 20_000 }).toContain("from the A1111 API (127.0.0.1)");
    await page.screenshot({ path: join(SCREENSHOTS, "queue-a1111.png") });
    await page.getByRole("tab", { name: /farm/i }).click();
    await expect
      .poll(() => page.getByText("A1111 API (127.0.0.1)", { exact: true }).first().isVisible(), { timeout: 20_000 })
      .toBe(true);
    await page.screenshot({ path: join(SCREENSHOTS, "farm-a1111.png") });
  });
});
