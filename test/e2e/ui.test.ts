import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addNodeArgs, type RunningNode, startNode } from "../support/kiln-node-process";
import { startServe } from "../support/kiln-serve-process";
import { BROWSER_SKIP_REASON, launchBrowser } from "./support/browser";
import { builtRenderer } from "./support/built-ui";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SCREENSHOTS = join(ROOT, "test/e2e/screenshots");

if (BROWSER_SKIP_REASON) console.warn(`SKIPPED browser end-to-end tests: ${BROWSER_SKIP_REASON}`);

describe.skipIf(BROWSER_SKIP_REASON !== null)(
  "Kiln UI in Chromium against kiln serve, two nodes and the embedded node",
  () => {
    const nodes: RunningNode[] = [];
    let serve: Awaited<ReturnType<typeof startServe>>;
    let page: Page;
    let closeBrowser: () => Promise<void>;
    let spare: RunningNode;

    const shot = (name: string) => page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });
    const tab = (name: RegExp) => page.getByRole("tab", { name }).click();
    /** The progress bar on the card of the job named `name` (its prompt), not any job's. */
    const jobProgress = (name: string) =>
      page.getByRole("article", { name, exact: true }).getByRole("progressbar", { name: "Images done" });

    beforeAll(async () => {
      const uiDir = builtRenderer();
      mkdirSync(SCREENSHOTS, { recursive: true });
      nodes.push(
        ...(await Promise.all([
          startNode(["--simulate", "2x24GB@6", "--name", "rack-a"]),
          startNode(["--simulate", "1x16GB@8", "--name", "rack-b"]),
        ])),
      );
      spare = await startNode(["--simulate", "1x8GB@4", "--name", "rack-spare", "--pair"]);
      serve = await startServe([
        "--ui-dir",
        uiDir,
        "--data-dir",
        mkdtempSync(join(tmpdir(), "kiln-e2e-data-")),
        "--out",
        mkdtempSync(join(tmpdir(), "kiln-e2e-out-")),
        "--local-node-flags",
        "--simulate 1x8GB@6",
        ...addNodeArgs(nodes),
      ]);
      ({ page, close: closeBrowser } = await launchBrowser());
      await page.goto(`http://127.0.0.1:${serve.port}/?token=${serve.token}`);
    });

    afterAll(async () => {
      await closeBrowser?.();
      await serve?.stop();
      for (const n of [...nodes, spare]) await n?.stop();
    });

    it("blocks an injected inline script (the built page's CSP)", async () => {
      await shot("prompt");
      const outcome = await page.evaluate(`new Promise((resolve) => {
      document.addEventListener("securitypolicyviolation", (e) => resolve({ blocked: e.violatedDirective, ran: window.__injected === true }), { once: true });
      const script = document.createElement("script");
      script.textContent = "window.__injected = true";
      document.body.append(script);
      setTimeout(() => resolve({ blocked: null, ran: window.__injected === true }), 2000);
    })`);
      expect(outcome).toEqual({ blocked: expect.stringMatching(/^script-src/), ran: false });
    });

    it("shows a field error for an invalid size", async () => {
      await page.getByLabel("Width").fill("500");
      await page.getByLabel("Width").blur();
      await expect.poll(() => page.getByText(/multiple of 8/i).count(), { timeout: 10_000 }).toBeGreaterThan(0);
      await shot("prompt-invalid-size");
      await page.getByLabel("Width").fill("256");
      await page.getByLabel("Height").fill("256");
    });

    it("switches views with Alt+1…3 by the key, whatever character it types (a Mac's Option+2 types ™)", async () => {
      // What a Mac's Chromium sends for Option+2: the digit's key position, another character.
      await page.evaluate(
        `window.dispatchEvent(new KeyboardEvent("keydown", { key: "™", code: "Digit2", altKey: true }))`,
      );
      await expect
        .poll(() => page.getByRole("tab", { name: /gallery/i }).getAttribute("aria-selected"), { timeout: 5_000 })
        .toBe("true");
      await page.keyboard.press("Alt+1");
      await expect
        .poll(() => page.getByRole("tab", { name: /create/i }).getAttribute("aria-selected"), { timeout: 5_000 })
        .toBe("true");
      // In the prompt, Option+3 on a UK Mac types #: the view stays.
      await page.evaluate(
        `document.getElementById("field-prompt").dispatchEvent(new KeyboardEvent("keydown", { key: "#", code: "Digit3", altKey: true, bubbles: true, cancelable: true }))`,
      );
      await new Promise((r) => setTimeout(r, 300));
      expect(await page.getByRole("tab", { name: /create/i }).getAttribute("aria-selected")).toBe("true");
    });

    it("names a typo in a number field instead of sending the model's default for it", async () => {
      await page.getByLabel("Prompt", { exact: true }).fill("a typo in steps");
      await page.getByLabel("Steps", { exact: true }).fill("2e");
      await page.getByRole("button", { name: /^render/i }).click();
      await expect
        .poll(() => page.getByText(/Steps must be a whole number from 1 to/).count(), { timeout: 10_000 })
        .toBeGreaterThan(0);
      expect(await page.getByRole("article", { name: "a typo in steps", exact: true }).count()).toBe(0);
      await page.getByLabel("Steps", { exact: true }).fill("");
    });

    it("submits a 24-image job, shows progress and its images landing under the form, then all 24 in the gallery; a viewer shows the seed", async () => {
      await page.getByLabel("Prompt", { exact: true }).fill("a lighthouse at dusk");
      await page.getByLabel("Images", { exact: true }).fill("24");
      await page.getByRole("button", { name: /^render/i }).click();
      // Where the prompt was typed: the job's cells at once (placeholders), pictures as they land.
      const latest = page.getByRole("region", { name: "Latest job" });
      await expect.poll(() => latest.getByRole("button", { name: /^Seed \d+/ }).count(), { timeout: 10_000 }).toBe(12);
      const progress = jobProgress("a lighthouse at dusk");
      await expect.poll(() => progress.getAttribute("value"), { timeout: 20_000 }).not.toBe("0");
      await shot("queue");
      await expect.poll(() => progress.getAttribute("value"), { timeout: 90_000 }).toBe("24");
      await expect.poll(() => latest.getByText("24 of 24 done").count(), { timeout: 20_000 }).toBe(1);
      const shown = `[...document.querySelectorAll(".landing-images .cell img")].filter((i) => i.complete && i.naturalWidth > 0).length`;
      await expect.poll(() => page.evaluate(shown), { timeout: 20_000 }).toBe(12);
      await shot("prompt-latest-job");

      await tab(/gallery/i);
      const cells = page.getByRole("button", { name: /^Seed \d+/ });
      await expect.poll(() => cells.count(), { timeout: 20_000 }).toBe(24);
      await shot("gallery");
      const label = (await cells.first().getAttribute("aria-label")) ?? "";
      const seed = /^Seed (\d+)/.exec(label)?.[1];
      await cells.first().click();
      await expect
        .poll(() => page.getByRole("dialog").getByText(`Seed: ${seed}`).count(), { timeout: 10_000 })
        .toBeGreaterThan(0);
      await shot("viewer");
      await page.keyboard.press("Escape");
    });

    it("queues one job for Ctrl+Enter pressed twice, and a double-click on Cancel arms it without cancelling", async () => {
      await tab(/create/i);
      await page.getByLabel("Prompt", { exact: true }).fill("pressed twice");
      await page.getByLabel("Images", { exact: true }).fill("2000");
      await page.getByLabel("Prompt", { exact: true }).focus();
      await page.keyboard.down("Control");
      await page.keyboard.press("Enter");
      // Pressed again at once, and held: its repeats come after the first answer is in.
      await page.keyboard.down("Enter");
      const card = page.getByRole("article", { name: "pressed twice", exact: true });
      await expect.poll(() => card.count(), { timeout: 10_000 }).toBe(1);
      await page.keyboard.down("Enter");
      await page.keyboard.down("Enter");
      await page.keyboard.up("Enter");
      await page.keyboard.up("Control");
      await new Promise((r) => setTimeout(r, 1000));
      expect(await card.count()).toBe(1);

      await card.getByRole("button", { name: "Cancel", exact: true }).dblclick();
      await new Promise((r) => setTimeout(r, 1000));
      expect(await card.locator(".badge").textContent()).toMatch(/queued|running/);
      // Armed, not fired: one more press cancels.
      await card.getByRole("button", { name: "Cancel job?" }).click();
      await expect.poll(() => card.locator(".badge").textContent(), { timeout: 10_000 }).toBe("cancelled");
    });

    it("shows the gallery's images from addresses that carry no token, also after a reload without the cookie", async () => {
      const showImages = async () => {
        await tab(/gallery/i);
        const cells = `[...document.querySelectorAll(".cell img")]`;
        // A refused image is complete with no width; lazy ones below the fold may not have loaded yet.
        await expect
          .poll(() => page.evaluate(`${cells}.filter((i) => i.complete && i.naturalWidth > 0).length`), {
            timeout: 20_000,
          })
          .toBeGreaterThan(0);
        expect(await page.evaluate(`${cells}.filter((i) => i.complete && i.naturalWidth === 0).length`)).toBe(0);
        return (await page.evaluate(`${cells}.map((i) => i.src)`)) as string[];
      };
      const sources = await showImages();
      expect(sources.filter((src) => src.includes(serve.token) || /[?&]token=/.test(src))).toEqual([]);
      // A copied image address opens nothing elsewhere: without the page's cookie it is refused.
      expect((await fetch(sources[0] as string)).status).toBe(401);

      // The page gets a new cookie with the token it kept for the tab (the address bar no longer has it).
      await page.context().clearCookies();
      await page.reload();
      expect(page.url()).not.toContain("token");
      expect((await showImages()).length).toBeGreaterThan(0);
    });

    it("asks again for thumbnails refused while encodes queue up (429 answered by a route in the browser)", async () => {
      const refused = new Set<string>();
      await page.route(/\/images\?.*size=/, (route) => {
        const url = route.request().url();
        if (/[?&]try=/.test(url)) return route.continue();
        refused.add(url);
        return route.fulfill({ status: 429, headers: { "retry-after": "1" }, body: "busy" });
      });
      try {
        await page.reload();
        await tab(/gallery/i);
        const cells = `[...document.querySelectorAll(".cell img")]`;
        await expect
          .poll(() => page.evaluate(`${cells}.filter((i) => i.complete && i.naturalWidth > 0).length`), {
            timeout: 20_000,
          })
          .toBeGreaterThan(0);
        expect(refused.size).toBeGreaterThan(0);
        await expect
          .poll(() => page.evaluate(`${cells}.filter((i) => i.complete && i.naturalWidth === 0).length`), {
            timeout: 10_000,
          })
          .toBe(0);
      } finally {
        await page.unrouteAll({ behavior: "wait" });
      }
    });

    it("pairs a node with the code it prints", async () => {
      await tab(/farm/i);
      await page.getByLabel("Address").fill(`127.0.0.1:${spare.port}`);
      await page.getByLabel("Pairing code or token").fill(spare.pairingCode());
      await page.getByRole("button", { name: /^(pair|add)/i }).click();
      await expect
        .poll(() => page.getByRole("article", { name: /rack-spare/ }).count(), { timeout: 20_000 })
        .toBeGreaterThan(0);
    });

    it("shows why a GPU whose worker cannot start takes no work (fake nvidia-smi GPU, real ONNX Runtime without CUDA)", async () => {
      const broken = await startNode(
        ["--name", "rack-nocuda", "--providers", "cuda", "--devices", "0", "--simulate", "1x8GB@4", "--pair"],
        {
          env: {
            PATH: `${join(ROOT, "test/fixtures/bin")}:${process.env.PATH}`,
            KILN_FAKE_NVIDIA_SMI: join(ROOT, "test/fixtures/nvidia-smi/one-rtx-3090.csv"),
          },
        },
      );
      nodes.push(broken);
      await tab(/farm/i);
      await page.getByLabel("Address").fill(`127.0.0.1:${broken.port}`);
      await page.getByLabel("Pairing code or token").fill(broken.pairingCode());
      await page.getByRole("button", { name: /^(pair|add)/i }).click();
      const gpu = page.getByRole("article", { name: "rack-nocuda GPU 0: NVIDIA GeForce RTX 3090", exact: true });
      await expect
        .poll(() => gpu.getByText(/^cannot start: no execution provider could run the model \(tried cuda\)/).count(), {
          timeout: 20_000,
        })
        .toBe(1);
      await shot("device-cannot-start");
    });

    it("shows a node killed with SIGKILL as lost while the job still completes", async () => {
      await tab(/create|prompt|queue/i);
      await page.getByLabel("Prompt", { exact: true }).fill("storm over the sea");
      await page.getByLabel("Images", { exact: true }).fill("24");
      await page.getByRole("button", { name: /^render/i }).click();
      const progress = jobProgress("storm over the sea");
      await expect.poll(() => progress.getAttribute("value"), { timeout: 20_000 }).not.toBe("0");
      nodes[0]?.proc.kill("SIGKILL");
      await tab(/farm/i);
      const lostNode = page.getByRole("article", { name: "rack-a", exact: true });
      await expect.poll(() => lostNode.getByText(/lost/i).count(), { timeout: 15_000 }).toBeGreaterThan(0);
      await shot("farm");
      await tab(/create|prompt|queue/i);
      await expect.poll(() => progress.getAttribute("value"), { timeout: 90_000 }).toBe("24");
    });
  },
);
