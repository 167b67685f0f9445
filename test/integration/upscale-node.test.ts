import { createHash } from "node:crypto";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeUpscalerFolder } from "../../farm-node/models/upscaler-pack";
import { UpscalerPipeline } from "../../farm-node/pipelines/upscaler-pipeline";
import { readTextChunks } from "../../farm-node/png/png-text-chunks";
import type { NodeEvent } from "../../shared/node-events";
import type { ModelInfo } from "../../shared/node-info";
import type { TaskRequest } from "../../shared/task";
import { upscaleWorkEdge } from "../../shared/upscale";
import { TINY_PACKS, writeTinyPacks } from "../fixtures/tiny-packs/write-tiny-packs";
import { initPicture } from "../support/init-picture";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { api, type EventStream, subscribe } from "../support/node-client";
import { tempDir } from "../support/temp-dir";

/**
 * Upscaler packs on a real kiln-node: the tiny Real-ESRGAN-shaped ×4 pack
 * (one ONNX file, recognised as is) advertised with its kind and factor, a
 * picture sent once by sha256 and upscaled tile by tile (a 320×200 picture
 * is two 256-pixel tiles on the CPU), the same pixels as one untiled run.
 */

const UPSCALER = TINY_PACKS.upscaler;
let models: string;
let node: RunningNode;
let events: EventStream;
let counter = 0;

const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

function putPicture(body: Buffer) {
  return api(node).putInitImage(sha256(body), body);
}

function upscaleTask(picture: Buffer, size: { width: number; height: number }, scale: 2 | 4, model: string = UPSCALER) {
  counter++;
  const out = { width: size.width * scale, height: size.height * scale };
  return {
    id: `t-up-${counter}`,
    model,
    width: upscaleWorkEdge(out.width),
    height: upscaleWorkEdge(out.height),
    steps: 1,
    images: [{ id: `img-up-${counter}`, seed: 0, prompt: "" }],
    upscale: { source: sha256(picture), scale, ...out },
  } satisfies TaskRequest;
}

async function run(request: TaskRequest): Promise<{ png: Buffer; tiles: number[] }> {
  const imageId = request.images[0]?.id as string;
  const tiles: number[] = [];
  const seen = events.waitFor((e: NodeEvent) => {
    if (e.type === "task.progress" && e.imageId === imageId) tiles.push(e.step);
    return e.type === "image.ready" && e.imageId === imageId;
  }, 60_000);
  const res = await api(node).submit(request);
  expect(res.status, await res.clone().text()).toBe(202);
  const ready = (await seen) as NodeEvent & { type: "image.ready" };
  return { png: Buffer.from(await (await api(node).get(ready.url)).arrayBuffer()), tiles };
}

beforeAll(async () => {
  models = join(tempDir("kiln-upscale-node-"), "models");
  writeTinyPacks(models);
  node = await startNode(["--devices", "cpu", "--models", models]);
  events = await subscribe(node);
}, 60_000);

afterAll(async () => {
  events?.close();
  expect(await node?.stop()).toBe(0);
});

describe("an upscaler pack on a node", () => {
  it("is advertised in /v1/node with its kind and factor", async () => {
    const info = (await (await api(node).get("/v1/node")).json()) as { models: ModelInfo[] };
    expect(info.models.find((m) => m.name === UPSCALER)).toMatchObject({
      kind: "upscaler",
      scale: 4,
      available: true,
      hash: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
  });

  it("upscales a picture ×4 in tiles, the same pixels as one untiled run, its PNG naming upscaler and factor", async () => {
    const picture = await initPicture(40);
    const missing = await api(node).submit(upscaleTask(picture, { width: 320, height: 200 }, 4));
    expect(missing.status).toBe(409);
    expect(await missing.json()).toMatchObject({ error: { code: "E_INIT_IMAGE_MISSING" } });
    expect((await putPicture(picture)).status).toBe(201);

    const { png, tiles } = await run(upscaleTask(picture, { width: 320, height: 200 }, 4));
    const meta = await sharp(png).metadata();
    expect([meta.width, meta.height]).toEqual([1280, 800]);
    expect(Math.max(...tiles)).toBe(2);
    const parameters = readTextChunks(png).parameters ?? "";
    expect(parameters).toContain("Postprocess upscale by: 4");
    expect(parameters).toContain(`Postprocess upscaler: ${UPSCALER}`);
    expect(parameters).toContain("Model hash: ");

    const pack = await describeUpscalerFolder(join(models, UPSCALER), UPSCALER);
    const whole = await UpscalerPipeline.load({ ...pack, hash: "", sizeBytes: 0 }, ["cpu"], { tileEdge: 1024 });
    const decoded = await sharp(picture).removeAlpha().raw().toBuffer();
    const untiled = await whole.upscale({ width: 320, height: 200, rgb: new Uint8Array(decoded) });
    await whole.release();
    const got = await sharp(png).removeAlpha().raw().toBuffer();
    let worst = 0;
    for (let i = 0; i < got.length; i++)
      worst = Math.max(worst, Math.abs((got[i] as number) - (untiled.rgb[i] as number)));
    expect(worst).toBeLessThanOrEqual(1);
  });

  it("makes ×2 with the ×4 model, shrunk with Lanczos", async () => {
    const picture = await initPicture(90);
    await putPicture(picture);
    const { png } = await run(upscaleTask(picture, { width: 320, height: 200 }, 2));
    const meta = await sharp(png).metadata();
    expect([meta.width, meta.height]).toEqual([640, 400]);
  });

  it("refuses a prompt for the upscaler and a picture for a text-to-image model, naming model", async () => {
    const txt2img = await api(node).submit({
      id: "t-up-txt",
      model: UPSCALER,
      width: 256,
      height: 256,
      steps: 1,
      images: [{ id: "img-up-txt", seed: 1, prompt: "a lighthouse" }],
    });
    expect(txt2img.status).toBe(400);
    expect(await txt2img.json()).toMatchObject({ error: { fields: [{ path: "model" }] } });
    const picture = await initPicture(40);
    const wrong = await api(node).submit(upscaleTask(picture, { width: 320, height: 200 }, 4, TINY_PACKS.sd));
    expect(wrong.status).toBe(400);
    expect(JSON.stringify(await wrong.json())).toMatch(/tiny-sd is not an upscaler/);
  });
});
