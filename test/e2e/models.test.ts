import { randomBytes } from "node:crypto";
import { closeSync, cpSync, mkdirSync, mkdtempSync, openSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TINY_PACKS, writeTinyPacks } from "../fixtures/tiny-packs/write-tiny-packs";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { startServe } from "../support/kiln-serve-process";
import { startSlowTcpRelay } from "../support/slow-tcp-relay";
import { BROWSER_SKIP_REASON, launchBrowser } from "./support/browser";
import { builtRenderer } from "./support/built-ui";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SCREENSHOTS = join(ROOT, "test/e2e/screenshots");
const FLOW = TINY_PACKS.flow;
const SD = TINY_PACKS.sd;
/** The flow pack's extra weights: over a 2 MiB/s link its push takes over 30 s (room for a loaded machine), acknowledged every 8 MiB chunk. */
const PADDING_MB = 64;

if (BROWSER_SKIP_REASON) console.warn(`SKIPPED browser end-to-end tests: ${BROWSER_SKIP_REASON}`);

/**
 * Models in the UI (issue 16, item 6) in Chromium against a real `kiln serve`
 * with a model library and real kiln-node processes: the picker's device
 * counts now and after pushes, and a push started from the farm panel, shown
 * with its progress and rate, then cancelled from it. One node sits behind a
 * slow link so its push lasts long enough to be seen.
 */
describe.skipIf(BROWSER_SKIP_REASON !== null)(
  "models in the UI: the picker's device counts, a push and its cancel",
  () => {
    const nodes: RunningNode[] = [];
    let relay: Awaited<ReturnType<typeof startSlowTcpRelay>>;
    let serve: Awaited<ReturnType<typeof startServe>>;
    let page: Page;
    let closeBrowser: () => Promise<void>;

    const tab = (name: RegExp) => page.getByRole("tab", { name }).click();
    const pickerOptions = () => page.locator("#field-model option").allTextContents();

    beforeAll(async () => {
      const uiDir = builtRenderer();
      mkdirSync(SCREENSHOTS, { recursive: true });
      const dir = mkdtempSync(join(tmpdir(), "kiln-e2e-models-"));
      const made = writeTinyPacks(join(dir, "made"));
      const library = join(dir, "library");
      cpSync(made.flow, join(library, FLOW), { recursive: true });
      cpSync(made.sd, join(library, SD), { recursive: true });
      const fd = openSync(join(library, FLOW, "padding.onnx_data"), "w");
      for (let i = 0; i < PADDING_MB; i++) writeSync(fd, randomBytes(1 << 20));
      closeSync(fd);
      // rack-a holds the library's flow pack, byte for byte; rack-slow has nothing yet.
      const aModels = join(dir, "a-models");
      cpSync(join(library, FLOW), join(aModels, FLOW), { recursive: true });
      const slowModels = join(dir, "slow-models");
      mkdirSync(slowModels);
      const [a, slow] = await Promise.all([
        startNode(["--simulate", "2x24GB@6", "--name", "rack-a", "--models", aModels]),
        startNode(["--simulate", "1x16GB@8", "--name", "rack-slow", "--models", slowModels]),
      ]);
      nodes.push(a as RunningNode, slow as RunningNode);
      relay = await startSlowTcpRelay({ host: "127.0.0.1", port: (slow as RunningNode).port }, 2 * 1024 * 1024);
      serve = await startServe([
        "--ui-dir",
        uiDir,
        "--data-dir",
        mkdtempSync(join(tmpdir(), "kiln-e2e-data-")),
        "--out",
        mkdtempSync(join(tmpdir(), "kiln-e2e-out-")),
        "--no-local",
        "--models",
        library,
        ...["--node", `127.0.0.1:${(a as RunningNode).port}`, "--token", (a as RunningNode).token],
        ...["--fingerprint", (a as RunningNode).pin.fingerprint],
        ...["--node", `127.0.0.1:${relay.port}`, "--token", (slow as RunningNode).token],
        ...["--fingerprint", (slow as RunningNode).pin.fingerprint],
      ]);
      ({ page, close: closeBrowser } = await launchBrowser());
      await page.goto(`http://127.0.0.1:${serve.port}/?token=${serve.token}`);
    }, 120_000);

    afterAll(async () => {
      await closeBrowser?.();
      await serve?.stop();
      await relay?.close();
      for (const n of nodes) await n.stop();
    });

    it("shows how many devices render each model now and after pushes, and lists the library's packs no node has", async () => {
      await expect
        .poll(pickerOptions, { timeout: 30_000 })
        .toEqual([
          "kiln-demo — 3 devices",
          "tiny-flow — 2 devices now, 3 after pushes",
          "tiny-sd — 0 devices now, 3 after pushes",
        ]);
    });

    it("shows a push started from the farm panel with its progress and rate, and cancels it there", async () => {
      await tab(/farm/i);
      // kiln serve's library, as its flags set it: shown, not changeable from a browser.
      const librarySection = page.getByRole("region", { name: "Model library" });
      await expect.poll(() => librarySection.getByText(/on-demand pushes on/).count(), { timeout: 10_000 }).toBe(1);
      const packs = librarySection.getByRole("list", { name: "Packs in the library" }).getByRole("listitem");
      expect(await packs.allTextContents()).toEqual([
        expect.stringMatching(/^tiny-flow flow · \d+\.\d MB$/),
        expect.stringMatching(/^tiny-sd sd · [\d.]+ (MB|kB)$/),
      ]);
      expect(await librarySection.getByRole("textbox").count()).toBe(0);

      const slow = page.getByRole("article", { name: "rack-slow", exact: true });
      const models = slow.getByRole("list", { name: /Models from the studio's library/ });
      await expect.poll(() => models.getByText("missing").count(), { timeout: 20_000 }).toBe(2);

      await slow.getByRole("button", { name: `Push ${FLOW}`, exact: true }).click();
      const received = slow.getByRole("progressbar", { name: `${FLOW} received` });
      await expect
        .poll(async () => Number(await received.getAttribute("value")), { timeout: 30_000 })
        .toBeGreaterThan(0);
      await expect
        .poll(() => models.getByText(/^receiving: \d+ % at [\d.]+ (MB|kB)\/s$/).count(), { timeout: 10_000 })
        .toBe(1);
      await page.screenshot({ path: join(SCREENSHOTS, "farm-push.png") });

      await slow.getByRole("button", { name: `Cancel push of ${FLOW}`, exact: true }).click();
      await expect
        .poll(() => models.getByText("push cancelled: not pushed again until you push it").count(), { timeout: 10_000 })
        .toBe(1);
      expect(await received.count()).toBe(0);
      // It can be pushed again by hand; nothing starts it on its own.
      expect(await slow.getByRole("button", { name: `Push ${FLOW}`, exact: true }).count()).toBe(1);

      // The picker no longer counts the node for the pack it cancelled; the other pack still would reach it.
      await tab(/create/i);
      await expect
        .poll(pickerOptions, { timeout: 10_000 })
        .toEqual(["kiln-demo — 3 devices", "tiny-flow — 2 devices", "tiny-sd — 0 devices now, 3 after pushes"]);
    });
  },
);
