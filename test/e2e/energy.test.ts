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

/** Energy in the Kiln UI (issue 19, item 1): a job's watt-hours in the queue, each device's on the farm panel, the form's switch. */
if (BROWSER_SKIP_REASON) console.warn(`SKIPPED energy in the Kiln UI: ${BROWSER_SKIP_REASON}`);

describe.skipIf(BROWSER_SKIP_REASON !== null)("energy in the Kiln UI", () => {
  let farm: A1111Farm;
  let page: Page;
  let closeBrowser: () => Promise<void>;

  beforeAll(async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    // Real kiln-node processes on simulated GPUs, whose power model the nodes measure.
    farm = await startA1111Farm(["1x24GB@8", "1x12GB@4"], { uiDir: builtRenderer() });
    ({ page, close: closeBrowser } = await launchBrowser());
  }, 180_000);

  afterAll(async () => {
    await closeBrowser?.();
    await farm?.stop();
  });

  it("queues a job that prefers efficient devices and shows what it cost, and each device's Wh per image", async () => {
    await page.goto(`${farm.base}/?token=${UI_TOKEN}`);
    await page.getByLabel("Prompt", { exact: true }).fill("a kiln at night");
    await page.getByLabel("Images", { exact: true }).fill("8");
    await page.getByLabel("Width").fill("256");
    await page.getByLabel("Height").fill("256");
    await page.getByLabel("Prefer efficient devices").check();
    await page.getByRole("button", { name: /^render/i }).click();

    const card = page.getByRole("article", { name: "a kiln at night", exact: true });
    await expect
      .poll(() => card.textContent(), { timeout: 60_000 })
      .toMatch(/8 \/ 8 done · [\d.]+ Wh \([\d.]+ Wh\/image\)/);
    expect(farm.coordinator.listJobs().find((j) => j.name === "a kiln at night")?.preferEfficient).toBe(true);
    await page.screenshot({ path: join(SCREENSHOTS, "queue-energy.png") });

    await page.getByRole("tab", { name: /farm/i }).click();
    const readings = page.locator(".reading", { hasText: "Energy" });
    await expect.poll(() => readings.count(), { timeout: 20_000 }).toBe(2);
    await expect
      .poll(async () => (await readings.allTextContents()).some((t) => /[\d.]+ Wh\/image/.test(t)), { timeout: 20_000 })
      .toBe(true);
    await page.screenshot({ path: join(SCREENSHOTS, "farm-energy.png") });
  });
});
