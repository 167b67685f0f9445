import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addNodeArgs, type RunningNode, startNode } from "../support/kiln-node-process";
import { startServe } from "../support/kiln-serve-process";
import { tempDir } from "../support/temp-dir";
import { BROWSER_SKIP_REASON, launchBrowser } from "./support/browser";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SCREENSHOTS = join(ROOT, "test/e2e/screenshots");

/** A request from an A1111 client, as the studio sees it in the app: in the queue and on the devices that render it. */
describe.skipIf(BROWSER_SKIP_REASON !== null)("an A1111 request in the Kiln UI", () => {
  let node: RunningNode;
  let serve: Awaited<ReturnType<typeof startServe>>;
  let page: Page;
  let closeBrowser: () => Promise<void>;
  let request: Promise<Response> | undefined;

  beforeAll(async () => {
    if (!existsSync(join(ROOT, "out/renderer/index.html")))
      execFileSync(process.execPath, [join(ROOT, "node_modules/electron-vite/bin/electron-vite.js"), "build"], {
        cwd: ROOT,
        stdio: "inherit",
      });
    mkdirSync(SCREENSHOTS, { recursive: true });
    node = await startNode(["--simulate", "2x24GB@2", "--name", "rack-api"]);
    serve = await startServe([
      "--no-local",
      "--data-dir",
      tempDir("kiln-e2e-a1111-data-"),
      "--out",
      tempDir("kiln-e2e-a1111-out-"),
      ...addNodeArgs([node]),
    ]);
    ({ page, close: closeBrowser } = await launchBrowser());
  });

  afterAll(async () => {
    if (serve) await fetch(`http://127.0.0.1:${serve.port}/sdapi/v1/interrupt`, { method: "POST" }).catch(() => null);
    await request?.catch(() => null);
    await closeBrowser?.();
    await serve?.stop();
    await node?.stop();
  });

  it("shows the job as the API's, with the client's address, in the queue and on the devices rendering it", async () => {
    const api = `http://127.0.0.1:${serve.port}/sdapi/v1`;
    // The node may still be connecting: the API answers 503 until a model is online.
    await expect
      .poll(async () => ((await fetch(`${api}/sd-models`)).json() as Promise<unknown[]>).then((m) => m.length), {
        timeout: 30_000,
      })
      .toBeGreaterThan(0);
    request = fetch(`${api}/txt2img`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "a request from open webui", batch_size: 48, steps: 30, width: 256, height: 256 }),
    });
    await page.goto(`http://127.0.0.1:${serve.port}/?token=${serve.token}`);
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
