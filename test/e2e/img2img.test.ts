import { mkdirSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import BetterSqlite3 from "better-sqlite3";
import type { Page } from "playwright-core";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTextChunks } from "../../farm-node/png/png-text-chunks";
import { fitInitImage } from "../../shared/img2img";
import type { JobSpec } from "../../shared/job";
import { parseParameters } from "../../shared/png-parameters";
import { TINY_PACKS, writeTinyPacks } from "../fixtures/tiny-packs/write-tiny-packs";
import { initPicture } from "../support/init-picture";
import { addNodeArgs, type RunningNode, startNode } from "../support/kiln-node-process";
import { startServe } from "../support/kiln-serve-process";
import { BROWSER_SKIP_REASON, launchBrowser } from "./support/browser";
import { builtRenderer } from "./support/built-ui";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SCREENSHOTS = join(ROOT, "test/e2e/screenshots");
const SD = TINY_PACKS.sd;
/** initPicture's size. */
const WIDTH = 320;
const HEIGHT = 200;
/** The job's size: the tiny SD pack renders 256 to 2048 in multiples of 64; the picture is stretched to it ("Just resize"). */
const JOB = { width: 256, height: 256 };

if (BROWSER_SKIP_REASON) console.warn(`SKIPPED browser end-to-end tests: ${BROWSER_SKIP_REASON}`);

/** Hands the page a picture as a drop or a paste would: a File in a DataTransfer. */
async function pictureEvent(page: Page, png: Buffer, how: "drop" | "paste"): Promise<void> {
  await page.evaluate(`(() => {
    const bytes = Uint8Array.from(atob(${JSON.stringify(png.toString("base64"))}), (c) => c.charCodeAt(0));
    const data = new DataTransfer();
    data.items.add(new File([bytes], "picture.png", { type: "image/png" }));
    if (${JSON.stringify(how)} === "paste") {
      window.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true }));
      return;
    }
    const zone = document.querySelector('[aria-label="Init image drop zone"]');
    zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: data, bubbles: true, cancelable: true }));
    zone.dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
  })()`);
}

/** The preview's picture once loaded: its natural size. */
const previewSize = (page: Page) =>
  page.evaluate(`(() => {
    const img = document.querySelector('img[alt="Starting point"]');
    return img?.complete && img.naturalWidth > 0 ? img.naturalWidth + "x" + img.naturalHeight : null;
  })()`);

/**
 * img2img in the UI (issue 18 item 9) in Chromium against a real `kiln serve`
 * and a real kiln-node rendering the tiny SD pack on its CPU: a picture
 * dropped, then another pasted over it, the strength set, a stroke painted on
 * the mask with the mouse, Render; the job's images land under the form and
 * in the gallery with their Denoising strength, and the mask the job names
 * is white where the stroke went and black elsewhere. Then a gallery image
 * becomes the next init image.
 */
describe.skipIf(BROWSER_SKIP_REASON !== null)("img2img in the UI: an init image, a painted mask, the job", () => {
  let node: RunningNode;
  let serve: Awaited<ReturnType<typeof startServe>>;
  let page: Page;
  let closeBrowser: () => Promise<void>;
  let dataDir: string;
  let outDir: string;

  const shot = (name: string) => page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });

  /** The job's spec as the coordinator stored it (its SQLite ledger, read-only). */
  function storedSpecs(): JobSpec[] {
    const db = new BetterSqlite3(join(dataDir, "kiln.sqlite"), { readonly: true, fileMustExist: true });
    try {
      return (
        db.prepare("SELECT s.spec FROM jobs JOIN job_specs s ON s.job_id = jobs.id ORDER BY jobs.rowid").all() as {
          spec: string;
        }[]
      ).map((row) => JSON.parse(row.spec) as JobSpec);
    } finally {
      db.close();
    }
  }

  beforeAll(async () => {
    const uiDir = builtRenderer();
    mkdirSync(SCREENSHOTS, { recursive: true });
    const dir = mkdtempSync(join(tmpdir(), "kiln-e2e-img2img-"));
    writeTinyPacks(join(dir, "models"));
    node = await startNode(["--devices", "cpu", "--models", join(dir, "models"), "--name", "rack-cpu"]);
    dataDir = join(dir, "data");
    outDir = join(dir, "out");
    serve = await startServe([
      ...["--ui-dir", uiDir, "--data-dir", dataDir, "--out", outDir, "--no-local"],
      ...addNodeArgs([node]),
    ]);
    ({ page, close: closeBrowser } = await launchBrowser());
    await page.goto(`http://127.0.0.1:${serve.port}/?token=${serve.token}`);
  }, 120_000);

  afterAll(async () => {
    await closeBrowser?.();
    await serve?.stop();
    await node?.stop();
  });

  it("renders from a dropped then pasted picture with a painted mask; the job names the mask, white where the stroke went", async () => {
    await expect
      .poll(() => page.locator("#field-model option").allTextContents(), { timeout: 30_000 })
      .toContain(`${SD} — 1 device`);
    await page.getByLabel("Model").selectOption(SD);
    await page.getByLabel("Prompt", { exact: true }).fill("a lighthouse at dusk");
    await page.getByLabel("Width").fill(String(JOB.width));
    await page.getByLabel("Height").fill(String(JOB.height));
    await page.getByLabel("Steps").fill("4");
    await page.getByLabel("Images", { exact: true }).fill("2");

    // Dropped, then replaced by a paste (Ctrl+V on the view): the preview shows the picture, the mask starts blank.
    await pictureEvent(page, await initPicture(220), "drop");
    await expect.poll(() => previewSize(page), { timeout: 10_000 }).toBe(`${WIDTH}x${HEIGHT}`);
    const dropped = await page.locator('img[alt="Starting point"]').getAttribute("src");
    await pictureEvent(page, await initPicture(30), "paste");
    await expect
      .poll(() => page.locator('img[alt="Starting point"]').getAttribute("src"), { timeout: 10_000 })
      .not.toBe(dropped);
    await expect.poll(() => previewSize(page), { timeout: 10_000 }).toBe(`${WIDTH}x${HEIGHT}`);
    // Hires fix is text-to-image only: off, saying why.
    expect(await page.getByLabel("Hires fix").isDisabled()).toBe(true);
    expect(await page.getByText("Hires fix is for text-to-image: remove the init image to use it.").count()).toBe(1);

    await page.getByLabel("Denoising strength", { exact: true }).fill("0.6");
    // "Only masked" brings its padding (A1111's 32); this job inpaints the whole picture.
    await page.getByLabel("Only masked").check();
    expect(await page.getByLabel("Masked padding").inputValue()).toBe("32");
    await page.getByLabel("Only masked").uncheck();

    // One stroke across the middle, from a quarter to three quarters of the picture's width.
    const canvas = page.getByLabel("Mask: paint where the picture should change");
    const box = await canvas.boundingBox();
    if (!box) throw new Error("the mask canvas is not shown");
    const brush = Number(await page.getByLabel("Brush size").inputValue());
    await page.mouse.move(box.x + box.width * 0.25, box.y + box.height * 0.5);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.75, box.y + box.height * 0.5, { steps: 12 });
    await page.mouse.up();
    await shot("create-img2img-mask");

    await page.getByRole("button", { name: /^render/i }).click();
    await expect.poll(() => page.getByText("Queued 2 images").count(), { timeout: 20_000 }).toBe(1);

    // The job as queued: the pasted picture, its strength, and a mask in the init image store.
    const [spec] = storedSpecs();
    expect(spec).toMatchObject({ strength: 0.6, resizeMode: "resize", maskBlur: 4, onlyMasked: false });
    const initPng = readFileSync(join(dataDir, "init-images", `${spec?.initImage}.png`));
    expect(initPng.equals(await initPicture(30))).toBe(true);
    const maskPng = readFileSync(join(dataDir, "init-images", `${spec?.mask}.png`));
    const meta = await sharp(maskPng).metadata();
    expect([meta.width, meta.height, meta.channels]).toEqual([WIDTH, HEIGHT, 1]);
    const mask = await sharp(maskPng).extractChannel(0).raw().toBuffer();
    const at = (x: number, y: number) => mask[Math.round(y) * WIDTH + Math.round(x)];
    // The brush's radius in the picture's pixels: half its screen size, scaled from the preview to the picture.
    const radius = ((brush / 2) * WIDTH) / box.width;
    const mid = HEIGHT / 2;
    for (const x of [WIDTH * 0.25, WIDTH * 0.4, WIDTH * 0.5, WIDTH * 0.75]) expect(at(x, mid), `x ${x}`).toBe(255);
    expect(at(WIDTH / 2, mid - radius + 2)).toBe(255);
    expect(at(WIDTH / 2, mid + radius + 2)).toBe(0);
    expect(at(WIDTH * 0.25 - radius - 2, mid)).toBe(0);
    expect(at(WIDTH * 0.75 + radius + 2, mid)).toBe(0);
    for (const [x, y] of [
      [0, 0],
      [WIDTH - 1, 0],
      [0, HEIGHT - 1],
      [WIDTH - 1, HEIGHT - 1],
    ] as const)
      expect(at(x, y)).toBe(0);
    expect(new Set(mask)).toEqual(new Set([0, 255]));
    const white = mask.filter((v) => v === 255).length;
    const capsule = WIDTH * 0.5 * 2 * radius + Math.PI * radius * radius;
    expect(white / capsule).toBeGreaterThan(0.9);
    expect(white / capsule).toBeLessThan(1.1);

    // Its images where the prompt was typed, then in the gallery, each PNG saying its denoising strength.
    const latest = page.getByRole("region", { name: "Latest job" });
    await expect.poll(() => latest.getByText("2 of 2 done").count(), { timeout: 120_000 }).toBe(1);
    const shown = `[...document.querySelectorAll(".landing-images .cell img")].filter((i) => i.complete && i.naturalWidth > 0).length`;
    await expect.poll(() => page.evaluate(shown), { timeout: 20_000 }).toBe(2);
    await latest.scrollIntoViewIfNeeded();
    await shot("create-img2img-landed");
    await page.getByRole("tab", { name: /gallery/i }).click();
    await expect.poll(() => page.getByRole("button", { name: /^Seed \d+/ }).count(), { timeout: 20_000 }).toBe(2);
    const pngs = readdirSync(outDir, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".png"));
    expect(pngs).toHaveLength(2);
    // The picture as the node fits it to the job's size ("Just resize"): the node pastes it back where the mask keeps.
    const fitted = fitInitImage(
      { width: WIDTH, height: HEIGHT, rgb: new Uint8Array(await sharp(initPng).removeAlpha().raw().toBuffer()) },
      JOB.width,
      JOB.height,
      "resize",
    ).rgb;
    // The stroke in the job's pixels, and a margin past it for the 4 px blur (its Gaussian reaches 10 px).
    const sx = JOB.width / WIDTH;
    const sy = JOB.height / HEIGHT;
    const strokeY = mid * sy;
    const reachY = radius * sy + 16;
    const reachX = radius * sx + 16;
    for (const file of pngs) {
      const png = readFileSync(join(outDir, file));
      expect(parseParameters(readTextChunks(png).parameters ?? "")).toMatchObject({
        denoisingStrength: 0.6,
        steps: 4,
        model: SD,
        width: JOB.width,
        height: JOB.height,
        extra: expect.objectContaining({ "Mask blur": "4" }),
      });
      const out = await sharp(png).removeAlpha().raw().toBuffer();
      let kept = 0;
      let keptChanged = 0;
      let coreDiff = 0;
      let core = 0;
      for (let y = 0; y < JOB.height; y++) {
        for (let x = 0; x < JOB.width; x++) {
          const far =
            Math.abs(y + 0.5 - strokeY) > reachY ||
            x + 0.5 < WIDTH * 0.25 * sx - reachX ||
            x + 0.5 > WIDTH * 0.75 * sx + reachX;
          const inside = Math.abs(y + 0.5 - strokeY) < 4 && x > WIDTH * 0.3 * sx && x < WIDTH * 0.7 * sx;
          for (let c = 0; c < 3; c++) {
            const i = (y * JOB.width + x) * 3 + c;
            const diff = Math.abs((out[i] as number) - (fitted[i] as number));
            if (far) {
              kept++;
              if (diff > 0) keptChanged++;
            }
            if (inside) {
              core++;
              coreDiff += diff;
            }
          }
        }
      }
      // Inpainted: the picture is kept exactly away from the stroke, and reworked under it.
      expect(kept).toBeGreaterThan(JOB.width * JOB.height * 3 * 0.5);
      expect(keptChanged, file).toBe(0);
      expect(coreDiff / core, file).toBeGreaterThan(20);
    }
  }, 240_000);

  it("makes a gallery image the next init image, with a blank mask", async () => {
    await page.getByRole("tab", { name: /gallery/i }).click();
    const cell = page.getByRole("button", { name: /^Seed \d+/ }).first();
    await cell.click();
    const viewer = page.getByRole("dialog");
    await viewer.getByRole("button", { name: "Use as init image" }).click();
    // Back on the Create view with the picture as the init image; the job's picture is the app's own file.
    await expect.poll(() => page.getByRole("tab", { name: /create/i }).getAttribute("aria-selected")).toBe("true");
    await expect.poll(() => previewSize(page), { timeout: 10_000 }).toBe(`${JOB.width}x${JOB.height}`);
    const src = (await page.locator('img[alt="Starting point"]').getAttribute("src")) ?? "";
    const sha256 = /\/images\/init\/([0-9a-f]{64})\.png$/.exec(src)?.[1];
    const pngs = readdirSync(outDir, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".png"));
    const stored = readFileSync(join(dataDir, "init-images", `${sha256}.png`));
    expect(pngs.some((f) => readFileSync(join(outDir, f)).equals(stored))).toBe(true);
    // The stroke belonged to the other picture.
    await page.getByRole("button", { name: /^render/i }).click();
    await expect.poll(() => storedSpecs().length, { timeout: 10_000 }).toBe(2);
    const second = storedSpecs()[1];
    expect(second).toMatchObject({ initImage: sha256, strength: 0.6 });
    expect(second?.mask).toBeUndefined();
  }, 60_000);

  it("upscales a gallery image ×4 with the farm's upscaler pack; the result lands in the gallery", async () => {
    await expect.poll(() => page.getByText("2 of 2 done").count(), { timeout: 60_000 }).toBe(1);
    await page.getByRole("tab", { name: /gallery/i }).click();
    const cells = page.getByRole("button", { name: /^Seed \d+/ });
    await expect.poll(() => cells.count(), { timeout: 20_000 }).toBe(4);
    await cells.first().click();
    const viewer = page.getByRole("dialog");
    expect(await viewer.getByLabel("Upscaler pack").inputValue()).toBe(TINY_PACKS.upscaler);
    await viewer.getByLabel("Upscale factor").selectOption("4");
    await viewer.getByRole("button", { name: "Upscale", exact: true }).click();
    await expect.poll(() => storedSpecs().length, { timeout: 10_000 }).toBe(3);
    expect(storedSpecs()[2]).toMatchObject({ model: TINY_PACKS.upscaler, upscale: { scale: 4 } });
    await page.keyboard.press("Escape");
    await expect.poll(() => cells.count(), { timeout: 60_000 }).toBe(5);
    const big = async () => {
      const pngs = readdirSync(outDir, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".png"));
      const sizes = await Promise.all(pngs.map(async (f) => (await sharp(join(outDir, f)).metadata()).width));
      return sizes.filter((w) => w === JOB.width * 4).length;
    };
    await expect.poll(big, { timeout: 60_000 }).toBe(1);
  }, 120_000);

  it("renders with hires fix once the init image is removed: the PNG at 1.5x, saying Hires upscale", async () => {
    await page.getByRole("tab", { name: /create/i }).click();
    await page.getByRole("button", { name: "Remove init image" }).click();
    await page.getByLabel("Hires fix").check();
    await page.getByLabel("Upscale by").fill("1.5");
    expect(await page.getByLabel("Upscaler", { exact: true }).locator("option").allTextContents()).toEqual([
      "Latent",
      "Lanczos",
      `${TINY_PACKS.upscaler} (upscaler pack)`,
    ]);
    // The model picker lists no upscaler pack.
    expect((await page.locator("#field-model option").allTextContents()).join()).not.toContain(TINY_PACKS.upscaler);
    await page.getByLabel("Images", { exact: true }).fill("1");
    await page.getByRole("button", { name: /^render/i }).click();
    await expect.poll(() => storedSpecs().length, { timeout: 10_000 }).toBe(4);
    expect(storedSpecs()[3]).toMatchObject({ hires: { scale: 1.5, strength: 0.7, upscaler: "latent" } });
    expect(storedSpecs()[3]?.initImage).toBeUndefined();
    const hires = async () => {
      const pngs = readdirSync(outDir, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".png"));
      const found: string[] = [];
      for (const f of pngs) {
        const bytes = readFileSync(join(outDir, f));
        const meta = await sharp(bytes).metadata();
        const params = parseParameters(readTextChunks(bytes).parameters ?? "");
        if (params.extra["Hires upscale"] !== undefined)
          found.push(`${meta.width}x${meta.height} ${params.extra["Hires upscale"]} ${params.extra["Hires upscaler"]}`);
      }
      return found;
    };
    await expect.poll(hires, { timeout: 60_000 }).toEqual(["384x384 1.5 Latent"]);
  }, 120_000);

  it("picks gallery images with Ctrl+click: the first becomes the init image, all of them are upscaled", async () => {
    await page.getByRole("tab", { name: /gallery/i }).click();
    const cells = page.getByRole("button", { name: /^Seed \d+/ });
    await expect.poll(() => cells.count(), { timeout: 60_000 }).toBe(6);
    const specsBefore = storedSpecs().length;
    // Two rendered images, the second one shown picked first: it is the selection's first.
    const firstJob = page.getByRole("button", { name: /^Seed \d+: a lighthouse at dusk/ });
    const [a, b] = [firstJob.nth(1), firstJob.nth(0)];
    await a.click({ modifiers: ["Control"] });
    await b.click({ modifiers: ["Control"] });
    const bar = page.getByRole("region", { name: "Selected images" });
    await expect.poll(() => bar.getByText("2 selected").count()).toBe(1);
    expect(await page.getByRole("button", { name: /^Seed \d+ \(selected\)/ }).count()).toBe(2);
    // No viewer opened by those clicks.
    expect(await page.getByRole("dialog").count()).toBe(0);

    await bar.getByRole("button", { name: "Upscale 2" }).click();
    await expect.poll(() => storedSpecs().length, { timeout: 10_000 }).toBe(specsBefore + 2);
    const sources = storedSpecs()
      .slice(specsBefore)
      .map((spec) => spec.upscale?.source);
    const pictures = sources.map((sha) => readFileSync(join(dataDir, "init-images", `${sha}.png`)));
    const outputs = readdirSync(outDir, { recursive: true, encoding: "utf8" })
      .filter((f) => f.endsWith(".png"))
      .map((f) => readFileSync(join(outDir, f)));
    for (const picture of pictures) expect(outputs.some((o) => o.equals(picture))).toBe(true);
    expect(pictures[0]?.equals(pictures[1] as Buffer)).toBe(false);

    await bar.getByRole("button", { name: "Use first as init image" }).click();
    await expect.poll(() => page.getByRole("tab", { name: /create/i }).getAttribute("aria-selected")).toBe("true");
    await expect
      .poll(() => page.locator('img[alt="Starting point"]').getAttribute("src"), { timeout: 10_000 })
      .toMatch(new RegExp(`/images/init/${sources[0]}\\.png$`));
  }, 120_000);

  it("re-runs a gallery image with its job's picture, mask and strength, or its hires pass: one image, its seed", async () => {
    /** The seed of the first image of the n-th job queued, read from the ledger. */
    const seedOf = (job: number) => {
      const db = new BetterSqlite3(join(dataDir, "kiln.sqlite"), { readonly: true, fileMustExist: true });
      try {
        return db
          .prepare("SELECT i.seed FROM images i WHERE i.job_id = (SELECT id FROM jobs ORDER BY rowid LIMIT 1 OFFSET ?)")
          .pluck()
          .get(job) as number;
      } finally {
        db.close();
      }
    };
    const [inpainted, , , hires] = storedSpecs();
    // The last test left two of the first job's images picked: a click would pick, not open.
    await page.getByRole("tab", { name: /gallery/i }).click();
    await page
      .getByRole("region", { name: "Selected images" })
      .getByRole("button", { name: "Clear selection" })
      .click();
    for (const [job, wanted] of [
      [0, { initImage: inpainted?.initImage, mask: inpainted?.mask, strength: 0.6, maskBlur: 4 }],
      [3, { hires: hires?.hires }],
    ] as const) {
      await page.keyboard.press("Escape");
      await page.getByRole("tab", { name: /gallery/i }).click();
      const seed = seedOf(job);
      // The gallery draws only the rows in view (newest job first): scrolled down until the image's cell is drawn.
      const cell = page.getByRole("button", { name: new RegExp(`^Seed ${seed}: a lighthouse at dusk`) }).first();
      await page.locator(".gallery-scroll").hover();
      for (let i = 0; i < 40 && (await cell.count()) === 0; i++) await page.mouse.wheel(0, 300);
      await cell.click();
      const before = storedSpecs().length;
      await page.getByRole("dialog").getByRole("button", { name: "Re-run seed" }).click();
      await expect.poll(() => storedSpecs().length, { timeout: 10_000 }).toBe(before + 1);
      // It was a plain text-to-image job of the same prompt and seed: another picture, said to be the same.
      expect(storedSpecs()[before]).toMatchObject({ ...wanted, seed, seedMode: "fixed", count: 1, model: SD });
    }
  }, 60_000);
});
