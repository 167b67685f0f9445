import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTextChunks } from "../../farm-node/png/png-text-chunks";
import { parseParameters } from "../../shared/png-parameters";
import { TINY_PACKS, writeTinyPacks } from "../fixtures/tiny-packs/write-tiny-packs";
import { initPicture } from "../support/init-picture";
import { addNodeArgs, type RunningNode, startNode } from "../support/kiln-node-process";
import { startServe } from "../support/kiln-serve-process";
import { connectUi } from "../support/ui-client";
import { waitUntil } from "../support/wait-until";

/**
 * `POST /sdapi/v1/img2img` over raw HTTP against a real `kiln serve`, with two
 * real kiln-node processes on the CPU holding kiln-demo and the tiny SD pack
 * (whose optimum export has a vae_encoder/): one request is one job of Kiln's
 * img2img sharded over both nodes, each node gets the picture once, and what an
 * A1111 client sends wrong is a 422 naming the field.
 */

let dir: string;
let nodes: RunningNode[];
let serve: Awaited<ReturnType<typeof startServe>>;
let api: string;
let ui: Awaited<ReturnType<typeof connectUi>>;

const picture = initPicture;

interface Answer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: answers are read by the A1111 shapes each test asserts
  body: any;
}

async function post(path: string, body: unknown): Promise<Answer> {
  const res = await fetch(`${api}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not JSON: kept as text for the assertion's message.
  }
  return { status: res.status, body: parsed };
}

/** What a client would send: the tiny SD pack, a small size, a fixed seed. */
const request = (init: Buffer, extra: Record<string, unknown> = {}) => ({
  prompt: "a lighthouse at dusk",
  init_images: [init.toString("base64")],
  override_settings: { sd_model_checkpoint: TINY_PACKS.sd },
  width: 256,
  height: 256,
  steps: 4,
  cfg_scale: 1,
  seed: 7,
  ...extra,
});

const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");
const pixels = async (b64: string) => (await sharp(Buffer.from(b64, "base64")).raw().toBuffer()).toString("base64");
const storedInitImages = (node: RunningNode) => node.logs.filter((l) => l.msg === "stored an init image").length;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "kiln-a1111-img2img-"));
  writeTinyPacks(join(dir, "models"));
  nodes = await Promise.all(
    ["rack-a", "rack-b"].map((name) =>
      startNode(["--devices", "cpu", "--models", join(dir, "models"), "--name", name]),
    ),
  );
  serve = await startServe(["--no-local", "--data-dir", join(dir, "data"), ...addNodeArgs(nodes)]);
  api = `http://127.0.0.1:${serve.port}/sdapi/v1`;
  // The app's own UI API, to see what a person sees in its queue and farm panel.
  ui = await connectUi(serve.port, serve.token);
  await waitUntil(
    async () =>
      (await ui.call("listNodes", {})).filter(
        (n) => n.status === "online" && n.models.some((m) => m.name === TINY_PACKS.sd),
      ).length === 2,
    60_000,
    "both nodes online with the tiny SD pack",
  );
}, 120_000);

afterAll(async () => {
  ui?.close();
  await serve?.stop();
  await Promise.all((nodes ?? []).map((n) => n.stop()));
  rmSync(dir, { recursive: true, force: true });
});

describe("A1111 img2img", () => {
  it("renders one job from the picture over both nodes, with Denoising strength in the PNGs and info", async () => {
    const init = await picture(30);
    const answer = await post(
      "/img2img",
      request(init, { batch_size: 4, n_iter: 2, denoising_strength: 0.5, resize_mode: 1 }),
    );
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body.images).toHaveLength(8);
    const info = JSON.parse(answer.body.info);
    expect(info).toMatchObject({
      denoising_strength: 0.5,
      all_seeds: [7, 8, 9, 10, 11, 12, 13, 14],
      width: 256,
      height: 256,
      steps: 4,
      sd_model_name: TINY_PACKS.sd,
      warnings: [],
    });
    // A1111 echoes the request without the pictures unless include_init_images.
    expect(answer.body.parameters).toMatchObject({ init_images: null, denoising_strength: 0.5, resize_mode: 1 });
    for (const [i, b64] of (answer.body.images as string[]).entries()) {
      const chunks = readTextChunks(Buffer.from(b64, "base64"));
      const params = parseParameters(chunks.parameters ?? "");
      expect(params).toMatchObject({ steps: 4, denoisingStrength: 0.5, model: TINY_PACKS.sd, width: 256 });
      expect(params.extra["Denoising strength"]).toBe("0.5");
      expect(info.infotexts[i]).toBe(chunks.parameters);
    }
    // Sent over the farm: each node was sent work of it, and with it the picture, once. Whose render of an image is
    // kept is a race where the tail re-runs (a node done early renders the other's last images too), so the nodes
    // named in the PNGs are not checked: under load one node's re-runs won all 8.
    expect(nodes.map(storedInitImages)).toEqual([1, 1]);
    // One job in the app's queue, marked as the API's, with all 8 images done.
    const jobs = (await ui.call("listJobs", { includeFinished: true })).filter((j) => j.source?.kind === "a1111-api");
    expect(jobs.map((j) => [j.state, j.counts.done])).toEqual([["done", 8]]);
  }, 120_000);

  it("the picture follows the init image, the strength and the resize mode; the same request repeats exactly", async () => {
    const a = await picture(30);
    const b = await picture(220);
    const one = async (init: Buffer, extra: Record<string, unknown> = {}) => {
      const answer = await post("/img2img", request(init, { denoising_strength: 0.5, ...extra }));
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      return { pixels: await pixels(answer.body.images[0]), warnings: JSON.parse(answer.body.info).warnings };
    };
    const first = await one(a);
    // The picture of a request whose images were not saved is not kept once it is answered; a saved one's is.
    const held = () => readdirSync(join(dir, "data", "init-images"));
    expect(held()).not.toContain(`${sha256(a)}.png`);
    expect((await one(a, { save_images: true })).pixels).toBe(first.pixels);
    expect(held()).toContain(`${sha256(a)}.png`);
    expect((await one(a)).pixels).toBe(first.pixels);
    expect((await one(b)).pixels).not.toBe(first.pixels);
    expect((await one(a, { denoising_strength: 1 })).pixels).not.toBe(first.pixels);
    expect((await one(a, { resize_mode: 2 })).pixels).not.toBe(first.pixels);
    // Latent upscale is just resize here, and says so.
    const latent = await one(a, { resize_mode: 3 });
    expect(latent.pixels).toBe(first.pixels);
    expect(latent.warnings).toEqual([expect.stringMatching(/^resize_mode 3 \(latent upscale\) is ignored/)]);
    // A JPEG is taken too, and is not the same start as nothing at all.
    const jpeg = await one(await picture(30, "jpeg"));
    const txt2img = await post("/txt2img", request(a, { init_images: undefined }));
    expect(txt2img.status).toBe(200);
    expect(await pixels(txt2img.body.images[0])).not.toBe(jpeg.pixels);
    expect(JSON.parse(txt2img.body.info).denoising_strength).toBeNull();
  }, 180_000);

  it("never removes a picture the app already held (the UI's, kiln render's), only those its own requests stored", async () => {
    const mine = await picture(140);
    const stored = await ui.call("storeInitImage", { data: mine.toString("base64") });
    const held = () => readdirSync(join(dir, "data", "init-images"));
    const answer = await post("/img2img", request(mine, { denoising_strength: 0.5 }));
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    const refused = await post("/img2img", request(mine, { override_settings: { sd_model_checkpoint: "no-such" } }));
    expect(refused.status).toBe(422);
    expect(held()).toContain(`${stored.sha256}.png`);
  }, 60_000);

  it("inpaints with a mask: the black part kept whatever the seed, the white part repainted, inverted on request", async () => {
    const init = await picture(30);
    // White (repaint) on the right half of the 320×200 picture, which the job fits to 256×256.
    const half = Buffer.alloc(320 * 200, 0);
    for (let y = 0; y < 200; y++) half.fill(255, y * 320 + 160, (y + 1) * 320);
    const mask = await sharp(half, { raw: { width: 320, height: 200, channels: 1 } })
      .png()
      .toBuffer();
    const inpaint = async (extra: Record<string, unknown>) => {
      const answer = await post(
        "/img2img",
        request(init, { denoising_strength: 0.9, mask: mask.toString("base64"), inpaint_full_res: false, ...extra }),
      );
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      const png = Buffer.from(answer.body.images[0], "base64");
      const { data } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
      return { data, info: JSON.parse(answer.body.info), png };
    };
    /** Columns [from, to) of a 256×256 RGB render, every row. */
    const columns = (data: Buffer, from: number, to: number) => {
      const out: number[] = [];
      for (let y = 0; y < 256; y++) out.push(...data.subarray((y * 256 + from) * 3, (y * 256 + to) * 3));
      return Buffer.from(out);
    };
    const a = await inpaint({
      seed: 7,
      inpainting_fill: 0,
      init_images: [init.toString("base64"), init.toString("base64")],
    });
    const b = await inpaint({ seed: 8 });
    // Far from the mask's edge (blur 4 reaches about 10 px): the kept side is the picture for any seed.
    expect(columns(a.data, 0, 100).equals(columns(b.data, 0, 100))).toBe(true);
    expect(columns(a.data, 156, 256).equals(columns(b.data, 156, 256))).toBe(false);
    const inverted = await inpaint({ seed: 7, inpainting_mask_invert: 1 });
    expect(columns(inverted.data, 0, 100).equals(columns(a.data, 0, 100))).toBe(false);
    expect(columns(inverted.data, 156, 256).equals(columns(b.data, 156, 256))).toBe(false);
    expect(a.info.warnings).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^inpainting_fill 0 is ignored: Kiln starts the masked area from the picture/),
        expect.stringMatching(/^init_images beyond the first \(1\) is ignored/),
      ]),
    );
    expect(a.info.warnings.join("\n")).not.toMatch(/^mask/m);
    expect(parseParameters(readTextChunks(a.png).parameters ?? "").extra).toMatchObject({
      "Denoising strength": "0.9",
      "Mask blur": "4",
    });
    // A1111's API default is "only masked" (inpaint_full_res true): taken, and written as A1111 writes it.
    const onlyMasked = await inpaint({ seed: 7, inpaint_full_res: undefined, inpaint_full_res_padding: 16 });
    expect(parseParameters(readTextChunks(onlyMasked.png).parameters ?? "").extra).toMatchObject({
      "Inpaint area": "Only masked",
      "Masked area padding": "16",
    });
    expect(columns(onlyMasked.data, 0, 100).equals(columns(a.data, 0, 100))).toBe(true);
    const notBase64 = await post("/img2img", request(init, { mask: "%%%" }));
    expect(notBase64.status).toBe(422);
    expect(notBase64.body.detail[0].loc).toEqual(["body", "mask"]);
    const blur = await post("/img2img", request(init, { mask: mask.toString("base64"), mask_blur: 65 }));
    expect(blur.status).toBe(422);
    expect(blur.body.detail[0].loc).toEqual(["body", "mask_blur"]);
    // A small file claiming a huge size is refused from its header, before its pixels are decoded.
    const huge = await sharp({ create: { width: 4096, height: 4096, channels: 3, background: "#000000" } })
      .png()
      .toBuffer();
    const larger = await post("/img2img", request(init, { mask: huge.toString("base64") }));
    expect(larger.status).toBe(422);
    expect(larger.body.detail[0]).toMatchObject({
      loc: ["body", "mask"],
      msg: expect.stringMatching(/^is 4096×4096, larger than its init image \(\d+×\d+\)/),
    });
  }, 180_000);

  it("txt2img's hires fix renders the second pass at the scale, with A1111's fields in the PNG and info", async () => {
    const answer = await post(
      "/txt2img",
      request(await picture(30), {
        init_images: undefined,
        enable_hr: true,
        hr_scale: 1.5,
        hr_second_pass_steps: 2,
        denoising_strength: 0.5,
      }),
    );
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    const png = Buffer.from(answer.body.images[0], "base64");
    expect(await sharp(png).metadata()).toMatchObject({ width: 384, height: 384 });
    expect(parseParameters(readTextChunks(png).parameters ?? "").extra).toMatchObject({
      Size: "256x256",
      "Denoising strength": "0.5",
      "Hires upscale": "1.5",
      "Hires steps": "2",
      "Hires upscaler": "Latent",
    });
    const info = JSON.parse(answer.body.info);
    expect(info.denoising_strength).toBe(0.5);
    expect(info.warnings).toEqual([]);
    // The farm's upscaler packs are offered for hires fix, never as checkpoints.
    const upscalers = await (await fetch(`${api}/upscalers`)).json();
    expect(upscalers).toContainEqual(expect.objectContaining({ name: TINY_PACKS.upscaler, scale: 4 }));
    const checkpoints = (await (await fetch(`${api}/sd-models`)).json()) as Array<{ model_name: string }>;
    expect(checkpoints.map((m) => m.model_name)).not.toContain(TINY_PACKS.upscaler);
    const tooBig = await post(
      "/txt2img",
      request(await picture(30), { init_images: undefined, enable_hr: true, hr_scale: 6 }),
    );
    expect(tooBig.status).toBe(422);
    expect(tooBig.body.detail[0].loc).toEqual(["body", "hr_scale"]);
  }, 120_000);

  it("refuses what it cannot start from with FastAPI's 422 naming the field, and queues nothing", async () => {
    const init = await picture(77);
    const held = nodes.map(storedInitImages);
    const loc = async (body: unknown) => {
      const answer = await post("/img2img", body);
      expect(answer.status, JSON.stringify(answer.body)).toBe(422);
      return answer.body.detail.map((d: { loc: unknown[]; msg: string }) => ({ loc: d.loc.join("."), msg: d.msg }));
    };
    expect(await loc({ prompt: "no picture" })).toEqual([{ loc: "body.init_images", msg: expect.any(String) }]);
    expect(await loc(request(init, { init_images: [] }))).toEqual([
      { loc: "body.init_images", msg: "give one picture to start from" },
    ]);
    expect(await loc(request(init, { init_images: Array(5).fill(init.toString("base64")) }))).toEqual([
      { loc: "body.init_images", msg: expect.stringMatching(/at most 4/) },
    ]);
    expect(await loc(request(init, { init_images: ["not base64 at all!"] }))).toEqual([
      { loc: "body.init_images.0", msg: "is not base64" },
    ]);
    const gif = Buffer.from("GIF89a\x01\x00\x01\x00").toString("base64");
    expect(await loc(request(init, { init_images: [init.toString("base64"), gif] }))).toEqual([
      { loc: "body.init_images.1", msg: "is not a PNG or JPEG" },
    ]);
    // A PNG cut short: its header reads, its pixels do not.
    const cut = init.subarray(0, Math.floor(init.length / 2)).toString("base64");
    expect(await loc(request(init, { init_images: [`data:image/png;base64,${cut}`] }))).toEqual([
      { loc: "body.init_images.0", msg: expect.stringMatching(/cut short or corrupt/) },
    ]);
    // A small file that claims a picture too large to decode.
    const huge = await sharp({ create: { width: 9000, height: 16, channels: 3, background: "#000" } })
      .png()
      .toBuffer();
    expect(await loc(request(init, { init_images: [huge.toString("base64")] }))).toEqual([
      { loc: "body.init_images.0", msg: expect.stringMatching(/9000×16; at most 8192/) },
    ]);
    expect(
      (await loc(request(init, { denoising_strength: 1.5, resize_mode: 4 }))).map((d: { loc: string }) => d.loc),
    ).toEqual(expect.arrayContaining(["body.denoising_strength", "body.resize_mode"]));
    expect(await loc(request(init, { denoising_strength: 0 }))).toEqual([
      { loc: "body.denoising_strength", msg: expect.stringMatching(/above 0/) },
    ]);
    // Kiln's own checks, before anything is queued: a strength that runs no step, a model without a VAE encoder.
    expect(await loc(request(init, { denoising_strength: 0.2 }))).toEqual([
      { loc: "body.denoising_strength", msg: expect.stringMatching(/0.2 of 4 steps runs no step/) },
    ]);
    expect(await loc(request(init, { override_settings: { sd_model_checkpoint: "kiln-demo" } }))).toEqual([
      { loc: "body.init_images.0", msg: expect.stringMatching(/kiln-demo cannot start from an image/) },
    ]);
    // Bodies over 48 MiB are refused before they are read whole.
    // (It says so from the length alone: the client is answered before it has sent the rest.)
    const tooLarge = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${api}/img2img`, {
        method: "POST",
        headers: { "content-type": "application/json", "content-length": String(49 * 1024 * 1024) },
      });
      req.on("response", (res) => {
        resolve(res.statusCode ?? 0);
        req.destroy();
      });
      req.on("error", reject);
      req.write('{"init_images": ["AAAA');
    });
    expect(tooLarge).toBe(413);
    // Nothing reached a node.
    expect(nodes.map(storedInitImages)).toEqual(held);
  }, 60_000);
});
