import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Coordinator } from "../../coordinator/coordinator";
import { readTextChunks } from "../../farm-node/png/png-text-chunks";
import { fitInitImage, type InitImageRefInput, type RgbImage } from "../../shared/img2img";
import { binaryMask, blurMask, fitMask, type GreyImage } from "../../shared/inpaint-mask";
import type { NodeEvent } from "../../shared/node-events";
import { parseParameters } from "../../shared/png-parameters";
import type { TaskRequest } from "../../shared/task";
import { TINY_PACKS, writeTinyPacks } from "../fixtures/tiny-packs/write-tiny-packs";
import { initPicture } from "../support/init-picture";
import { kilnRender } from "../support/kiln-cli-process";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { api, type EventStream, subscribe } from "../support/node-client";

/**
 * Inpainting end to end on a real kiln-node (real ONNX Runtime sessions on
 * the tiny packs): the SD inpainting pack (9-channel UNet) and the ordinary
 * tiny SD pack (latent blending). The mask travels as the init image does,
 * once per node by its sha256; what the user gets is the render pasted over
 * the picture through the blurred mask, so pixels the mask keeps are the
 * picture's own. The pipeline's math is checked against diffusers in
 * diffusers-parity-inpaint.test.ts.
 */

const SIZE = 256;

let dir: string;
let node: RunningNode;
let events: EventStream;
let picture: Buffer;
let mask: Buffer;

const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

/** A mask the init picture's size (320×200): white in a rectangle right of the middle. */
async function maskPicture(): Promise<Buffer> {
  const grey = Buffer.alloc(320 * 200);
  for (let y = 60; y < 140; y++) grey.fill(255, y * 320 + 150, y * 320 + 260);
  return sharp(grey, { raw: { width: 320, height: 200, channels: 1 } })
    .png()
    .toBuffer();
}

function putPicture(body: Buffer) {
  return api(node).putInitImage(sha256(body), body);
}

let counter = 0;
function task(model: string, init: InitImageRefInput, seed = 42): TaskRequest {
  counter++;
  return {
    id: `t-inpaint-${counter}`,
    model,
    width: SIZE,
    height: SIZE,
    steps: 4,
    guidance: 5,
    images: [{ id: `img-inpaint-${counter}`, seed, prompt: "a red door" }],
    init,
  };
}

/** Submits, waits for the image and returns its PNG. */
async function render(request: TaskRequest): Promise<Buffer> {
  const imageId = request.images[0]?.id as string;
  const seen = events.waitFor((e: NodeEvent) => e.type === "image.ready" && e.imageId === imageId, 60_000);
  const res = await api(node).submit(request);
  expect(res.status, await res.clone().text()).toBe(202);
  const ready = (await seen) as NodeEvent & { type: "image.ready" };
  return Buffer.from(await (await api(node).get(ready.url)).arrayBuffer());
}

async function rgbOf(png: Buffer): Promise<RgbImage> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, rgb: new Uint8Array(data) };
}

/** The picture and the blurred mask as the node fits them to the render's size (what the output is pasted over). */
async function fitted(blur: number): Promise<{ image: RgbImage; mask: GreyImage }> {
  const image = fitInitImage(await rgbOf(picture), SIZE, SIZE, "resize");
  const { data, info } = await sharp(mask).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  const read = binaryMask(new Uint8Array(data), info.width, info.height);
  return { image, mask: fitMask(blurMask(read, blur), SIZE, SIZE, "resize") };
}

/** Pixels where the mask is 0 that differ from the picture, and the mean difference where it is 255. */
function compare(out: RgbImage, base: { image: RgbImage; mask: GreyImage }) {
  let keptChanged = 0;
  let repaintedDiff = 0;
  let repainted = 0;
  for (let p = 0; p < SIZE * SIZE; p++) {
    const m = base.mask.data[p] as number;
    let d = 0;
    for (let c = 0; c < 3; c++) d += Math.abs((out.rgb[p * 3 + c] as number) - (base.image.rgb[p * 3 + c] as number));
    if (m === 0 && d > 0) keptChanged++;
    if (m === 255) {
      repaintedDiff += d / 3;
      repainted++;
    }
  }
  return { keptChanged, repaintedMean: repaintedDiff / repainted, repainted };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "kiln-inpaint-"));
  writeTinyPacks(join(dir, "models"));
  picture = await initPicture(40);
  mask = await maskPicture();
  node = await startNode(["--devices", "cpu", "--models", join(dir, "models")]);
  events = await subscribe(node);
}, 60_000);

afterAll(async () => {
  events?.close();
  expect(await node?.stop()).toBe(0);
  rmSync(dir, { recursive: true, force: true });
});

describe("inpainting on a node", () => {
  it("asks for the mask it lacks once it holds the picture (409 naming the mask's hash)", async () => {
    expect((await putPicture(picture)).status).toBe(201);
    const init = { sha256: sha256(picture), strength: 1, mask: { sha256: sha256(mask) } };
    const missing = await api(node).submit(task(TINY_PACKS.sdInpaint, init));
    expect(missing.status).toBe(409);
    expect(await missing.json()).toMatchObject({
      error: { code: "E_INIT_IMAGE_MISSING", message: expect.stringMatching(/^this node does not hold mask /) },
    });
    expect((await putPicture(mask)).status).toBe(201);
    const models = (await (await api(node).get("/v1/node")).json()) as {
      models: { name: string; img2img?: boolean }[];
    };
    expect(models.models.find((m) => m.name === TINY_PACKS.sdInpaint)?.img2img).toBe(true);
  });

  it.each([
    ["the SD inpainting pack (9-channel UNet)", TINY_PACKS.sdInpaint],
    ["the ordinary SD pack (latent blending)", TINY_PACKS.sd],
  ])(
    "%s: the kept pixels are the picture's, the masked ones repainted; the same task repeats exactly",
    async (_, model) => {
      const init = { sha256: sha256(picture), strength: 1, mask: { sha256: sha256(mask), blur: 4 } };
      const png = await render(task(model, init));
      const out = await rgbOf(png);
      const base = await fitted(4);
      const { keptChanged, repaintedMean, repainted } = compare(out, base);
      expect(repainted).toBeGreaterThan(3000);
      expect(keptChanged).toBe(0);
      expect(repaintedMean).toBeGreaterThan(20);
      const params = parseParameters(readTextChunks(png).parameters ?? "");
      expect(params).toMatchObject({ model, denoisingStrength: 1 });
      expect(params.extra["Mask blur"]).toBe("4");
      expect(params.extra["Inpaint area"]).toBeUndefined();
      expect(
        (
          await sharp(await render(task(model, init)))
            .raw()
            .toBuffer()
        ).equals(await sharp(png).raw().toBuffer()),
      ).toBe(true);
      // Another seed repaints differently inside and keeps the same outside.
      const other = await rgbOf(await render(task(model, init, 43)));
      expect(compare(other, base).keptChanged).toBe(0);
      expect(Buffer.from(other.rgb).equals(Buffer.from(out.rgb))).toBe(false);
    },
  );

  it("only masked: renders the mask's box at full size and pastes it back; nothing outside the mask changes", async () => {
    const init = {
      sha256: sha256(picture),
      strength: 0.75,
      mask: { sha256: sha256(mask), blur: 2, onlyMasked: true, padding: 16 },
    };
    const png = await render(task(TINY_PACKS.sdInpaint, init));
    const out = await rgbOf(png);
    expect([out.width, out.height]).toEqual([SIZE, SIZE]);
    const { keptChanged, repaintedMean } = compare(out, await fitted(2));
    expect(keptChanged).toBe(0);
    expect(repaintedMean).toBeGreaterThan(20);
    const params = parseParameters(readTextChunks(png).parameters ?? "");
    expect(params.extra).toMatchObject({
      "Mask blur": "2",
      "Inpaint area": "Only masked",
      "Masked area padding": "16",
    });
    // The whole-picture render of the same mask is another picture.
    const whole = await rgbOf(
      await render(task(TINY_PACKS.sdInpaint, { ...init, mask: { ...init.mask, onlyMasked: false } })),
    );
    expect(Buffer.from(whole.rgb).equals(Buffer.from(out.rgb))).toBe(false);
  });
});

function kiln(args: string[], dataDir: string) {
  return kilnRender([node], args, join(dir, dataDir));
}

describe("kiln render --mask", () => {
  it("writes PNGs with Mask blur and sends the mask to the node once", async () => {
    const pictureFile = join(dir, "in.png");
    const maskFile = join(dir, "mask-cli.png");
    writeFileSync(pictureFile, await initPicture(120));
    // Another mask than the API tests', so this is the node's first copy of it.
    const maskBytes = await sharp(mask).negate().png().toBuffer();
    writeFileSync(maskFile, maskBytes);
    const out = join(dir, "out");
    const result = await kiln(
      [
        "a red door",
        "--init-image",
        pictureFile,
        "--mask",
        maskFile,
        "--mask-blur",
        "6",
        "--strength",
        "0.5",
        "-n",
        "6",
        "--model",
        TINY_PACKS.sdInpaint,
        "--steps",
        "4",
        "--size",
        "256x256",
        "--seed",
        "7",
        "--out",
        out,
      ],
      "data",
    );
    expect(result.status, result.stderr).toBe(0);
    const files = readdirSync(out).filter((f) => f.endsWith(".png"));
    expect(files).toHaveLength(6);
    for (const name of files) {
      const params = parseParameters(readTextChunks(readFileSync(join(out, name))).parameters ?? "");
      expect(params).toMatchObject({ steps: 4, denoisingStrength: 0.5, model: TINY_PACKS.sdInpaint });
      expect(params.extra["Mask blur"]).toBe("6");
    }
    const stored = (l: { msg?: string; sha256?: unknown }) =>
      l.msg === "stored an init image" && l.sha256 === sha256(maskBytes);
    await node.waitForLog(stored);
    await new Promise((r) => setTimeout(r, 200));
    expect(node.logs.filter(stored)).toHaveLength(1);
  }, 200_000);

  it("refuses a mask that is not a picture, a missing mask file, and a mask without an init image, naming them", async () => {
    const pictureFile = join(dir, "in.png");
    const notPicture = join(dir, "mask.txt");
    writeFileSync(notPicture, "not a picture");
    const args = ["x", "--init-image", pictureFile, "--model", TINY_PACKS.sd, "--steps", "4", "--size", "256x256"];
    const bad = await kiln([...args, "--mask", notPicture], "data-bad");
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/mask is not a picture/);
    const missing = await kiln([...args, "--mask", join(dir, "no-such-mask.png")], "data-missing");
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toMatch(/--mask .*no-such-mask\.png/);
    const alone = await kiln(["x", "--mask", notPicture], "data-alone");
    expect(alone.status).not.toBe(0);
    expect(alone.stderr).toMatch(/--mask applies to img2img: give --init-image FILE too/);
    const blurAlone = await kiln(["x", "--init-image", pictureFile, "--only-masked"], "data-alone");
    expect(blurAlone.status).not.toBe(0);
    expect(blurAlone.stderr).toMatch(/--only-masked applies to inpainting: give --mask FILE too/);
  });
});

describe("an inpainting job at the app", () => {
  it("is refused before it is queued when its mask is not a stored picture, or comes without an init image", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "kiln-inpaint-app-"));
    const app = new Coordinator({
      dataDir,
      outputDir: join(dataDir, "out"),
      discovery: false,
      clientName: "inpaint-test",
      localNode: false,
      log: pino({ level: "silent" }),
    });
    try {
      const stored = await app.initImages.put(picture);
      const refused = (spec: Parameters<Coordinator["submitJob"]>[0]) => {
        try {
          app.submitJob(spec);
        } catch (error) {
          return (error as { fields?: { path: string }[] }).fields?.map((f) => f.path);
        }
        return "accepted";
      };
      const base = { prompts: ["a red door"], model: TINY_PACKS.sd, steps: 4, initImage: stored.sha256 };
      expect(refused({ ...base, mask: "ab".repeat(32) })).toEqual(["mask"]);
      expect(refused({ prompts: ["a red door"], mask: stored.sha256 })).toEqual(["mask"]);
      expect(refused({ ...base, maskBlur: 4 })).toEqual(["maskBlur"]);
      // A mask larger than its picture: each worker would read it whole for nothing.
      const meta = await sharp(picture).metadata();
      const larger = await app.initImages.put(
        await sharp({
          create: { width: (meta.width ?? 0) + 8, height: meta.height ?? 0, channels: 3, background: "#ffffff" },
        })
          .png()
          .toBuffer(),
        "mask",
      );
      expect(refused({ ...base, mask: larger.sha256 })).toEqual(["mask"]);
      await expect(app.initImages.put(Buffer.from("not a picture"), "mask")).rejects.toMatchObject({
        fields: [{ path: "mask", message: "is not a picture" }],
      });
    } finally {
      await app.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
