import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTextChunks } from "../../farm-node/png/png-text-chunks";
import type { NodeEvent } from "../../shared/node-events";
import { parseParameters } from "../../shared/png-parameters";
import type { TaskRequest } from "../../shared/task";
import { TINY_PACKS, writeTinyPacks } from "../fixtures/tiny-packs/write-tiny-packs";
import { initPicture } from "../support/init-picture";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { api, type EventStream, subscribe } from "../support/node-client";

/**
 * img2img end to end on a real kiln-node (real ONNX Runtime sessions on the
 * tiny SD pack, whose optimum export has a vae_encoder/): the init image
 * travels to a node once, by its sha256, and every task names it; and the same
 * through `kiln render --init-image`. The pictures' math is checked against
 * diffusers in diffusers-parity.test.ts.
 */

const KILN = fileURLToPath(new URL("../../bin/kiln.js", import.meta.url));

let dir: string;
let node: RunningNode;
let events: EventStream;

const picture = (shade: number) => initPicture(shade);

const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

function putInitImage(hash: string, body: Buffer | string, contentType?: string) {
  return api(node).putInitImage(hash, body, contentType);
}

let counter = 0;
function task(init: TaskRequest["init"], extra: Partial<TaskRequest> = {}): TaskRequest {
  counter++;
  return {
    id: `t-i2i-${counter}`,
    model: TINY_PACKS.sd,
    width: 256,
    height: 256,
    steps: 4,
    guidance: 1,
    images: [{ id: `img-i2i-${counter}`, seed: 42, prompt: "a lighthouse at dusk" }],
    init,
    ...extra,
  };
}

/** Submits, waits for the image and returns its PNG bytes and the progress its steps reported. */
async function render(request: TaskRequest): Promise<{ png: Buffer; steps: number[] }> {
  const imageId = request.images[0]?.id as string;
  const steps: number[] = [];
  const seen = events.waitFor((e: NodeEvent) => {
    if (e.type === "task.progress" && e.imageId === imageId) steps.push(e.steps);
    return e.type === "image.ready" && e.imageId === imageId;
  }, 60_000);
  const res = await api(node).submit(request);
  expect(res.status, await res.clone().text()).toBe(202);
  const ready = (await seen) as NodeEvent & { type: "image.ready" };
  return { png: Buffer.from(await (await api(node).get(ready.url)).arrayBuffer()), steps };
}

const pixels = async (png: Buffer) => (await sharp(png).raw().toBuffer()).toString("base64");

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "kiln-img2img-"));
  writeTinyPacks(join(dir, "models"));
  node = await startNode(["--devices", "cpu", "--models", join(dir, "models")]);
  events = await subscribe(node);
}, 60_000);

afterAll(async () => {
  events?.close();
  expect(await node?.stop()).toBe(0);
  rmSync(dir, { recursive: true, force: true });
});

describe("img2img on a node", () => {
  it("keeps a queued task's picture while newer ones arrive past the node's limit, so the task renders from it", async () => {
    const png = await picture(140);
    const hash = sha256(png);
    expect((await putInitImage(hash, png)).status).toBe(201);
    // A task ahead of it on the node's one device, longer than the uploads below: cancelled once they are done.
    const ahead = task(undefined, {
      steps: 20,
      images: Array.from({ length: 64 }, (_, i) => ({ id: `ahead-${i}`, seed: i, prompt: "ahead of it" })),
    });
    expect((await api(node).submit(ahead)).status).toBe(202);
    const held = task({ sha256: hash, strength: 0.5, resizeMode: "crop" });
    const outcome = events.waitFor(
      (e: NodeEvent) =>
        (e.type === "image.ready" && e.imageId === held.images[0]?.id) ||
        (e.type === "task.failed" && e.taskId === held.id),
      120_000,
    );
    expect((await api(node).submit(held)).status).toBe(202);
    // More pictures than the node keeps (64), every one newer than the held task's: it once went first, and the
    // task failed for good (E_INIT_IMAGE_MISSING) when its turn came.
    for (let k = 0; k < 70; k++) {
      const other = await picture(141 + k);
      expect((await putInitImage(sha256(other), other)).status).toBe(201);
    }
    expect(events.events.some((e) => e.type === "task.done" && e.taskId === ahead.id)).toBe(false);
    expect((await api(node).delete(`/v1/tasks/${ahead.id}`)).status).toBe(202);
    expect((await outcome).type).toBe("image.ready");
  }, 180_000);

  it("asks for an init image it lacks (409 naming its hash), checks what it is sent, then renders from it", async () => {
    const png = await picture(30);
    const hash = sha256(png);
    const init = { sha256: hash, strength: 0.5, resizeMode: "crop" as const };

    const models = (await (await api(node).get("/v1/node")).json()) as {
      models: { name: string; img2img?: boolean }[];
    };
    const img2img = new Map(models.models.map((m) => [m.name, m.img2img]));
    expect([img2img.get(TINY_PACKS.sd), img2img.get(TINY_PACKS.sdxl)]).toEqual([true, false]);

    const missing = await api(node).submit(task(init));
    expect(missing.status).toBe(409);
    expect(await missing.json()).toMatchObject({ error: { code: "E_INIT_IMAGE_MISSING", details: { sha256: hash } } });

    const wrong = await putInitImage(hash, await picture(31));
    expect(wrong.status).toBe(400);
    expect(JSON.stringify(await wrong.json())).toContain("sha256");
    const notPng = Buffer.from("not a picture");
    expect((await putInitImage(sha256(notPng), notPng)).status).toBe(400);
    // A body sent as JSON or text is parsed before the route sees it: no picture, refused as such (it was a 500).
    for (const [body, type] of [
      ["{}", "application/json"],
      ["abc", "text/plain"],
    ] as const) {
      const parsed = await putInitImage(hash, body, type);
      expect(parsed.status).toBe(400);
      expect(await parsed.json()).toMatchObject({
        error: { code: "E_BAD_REQUEST", message: expect.stringMatching(/application\/octet-stream/) },
      });
    }

    const put = await putInitImage(hash, png);
    expect(put.status).toBe(201);
    expect((await putInitImage(hash, png)).status).toBe(200); // already held: nothing stored twice

    const { png: out, steps } = await render(task(init));
    const params = parseParameters(readTextChunks(out).parameters ?? "");
    expect(params).toMatchObject({ steps: 4, denoisingStrength: 0.5, model: TINY_PACKS.sd });
    // Strength 0.5 of 4 steps runs the last 2, and progress counts those.
    expect(new Set(steps)).toEqual(new Set([2]));
    expect(node.logs.filter((l) => l.msg === "stored an init image" && l.sha256 === hash)).toHaveLength(1);
  });

  it("the picture follows the init image and the strength; the same request gives the same picture", async () => {
    const a = await picture(30);
    const b = await picture(220);
    await putInitImage(sha256(b), b);
    const base = { sha256: sha256(a), strength: 0.5, resizeMode: "crop" as const };
    const first = await pixels((await render(task(base))).png);
    expect(await pixels((await render(task(base))).png)).toBe(first);
    expect(await pixels((await render(task({ ...base, sha256: sha256(b) }))).png)).not.toBe(first);
    expect(await pixels((await render(task({ ...base, strength: 1 }))).png)).not.toBe(first);
    expect(await pixels((await render(task({ ...base, resizeMode: "fill" }))).png)).not.toBe(first);
    expect(await pixels((await render(task(undefined))).png)).not.toBe(first);
  });

  it("refuses a strength that runs no step and a pack without a VAE encoder, saying which", async () => {
    const hash = sha256(await picture(30));
    const tooLow = task({ sha256: hash, strength: 0.2, resizeMode: "resize" });
    const failedLow = events.waitFor((e: NodeEvent) => e.type === "task.failed" && e.taskId === tooLow.id);
    expect((await api(node).submit(tooLow)).status).toBe(202);
    expect(await failedLow).toMatchObject({
      code: "E_BAD_REQUEST",
      message: expect.stringMatching(/strength 0.2 of 4 steps runs no step/),
    });

    const lcm = task({ sha256: hash, strength: 0.5, resizeMode: "resize" }, { sampler: "LCM" });
    const failedLcm = events.waitFor((e: NodeEvent) => e.type === "task.failed" && e.taskId === lcm.id);
    expect((await api(node).submit(lcm)).status).toBe(202);
    expect(await failedLcm).toMatchObject({ message: expect.stringMatching(/LCM sampler is not supported yet/) });

    const sdxl = task({ sha256: hash, strength: 0.5, resizeMode: "resize" }, { model: TINY_PACKS.sdxl });
    const failedSdxl = events.waitFor((e: NodeEvent) => e.type === "task.failed" && e.taskId === sdxl.id);
    expect((await api(node).submit(sdxl)).status).toBe(202);
    expect(await failedSdxl).toMatchObject({ message: expect.stringMatching(/has no VAE encoder/) });
  });
});

describe("kiln render --init-image", () => {
  it("renders every image from the picture, writes Denoising strength, and sends the picture to the node once", async () => {
    const png = await picture(90);
    const file = join(dir, "in.png");
    writeFileSync(file, png);
    const out = join(dir, "out");
    const result = spawnSync(
      process.execPath,
      [
        KILN,
        "render",
        "a lighthouse at dusk",
        "--init-image",
        file,
        "--strength",
        "0.6",
        "--resize-mode",
        "fill",
        "-n",
        "6",
        "--model",
        TINY_PACKS.sd,
        "--steps",
        "5",
        "--size",
        "256x256",
        "--seed",
        "7",
        "--no-local",
        "--node",
        `127.0.0.1:${node.port}`,
        "--token",
        node.token,
        "--trust-first-use",
        "--out",
        out,
        "--data-dir",
        join(dir, "data"),
        "--no-discovery",
      ],
      { encoding: "utf8", timeout: 180_000 },
    );
    expect(result.status, result.stderr).toBe(0);
    const files = readdirSync(out).filter((f) => f.endsWith(".png"));
    expect(files).toHaveLength(6);
    for (const name of files) {
      const params = parseParameters(readTextChunks(readFileSync(join(out, name))).parameters ?? "");
      expect(params).toMatchObject({ steps: 5, denoisingStrength: 0.6, model: TINY_PACKS.sd });
      expect(params.extra["Denoising strength"]).toBe("0.6");
    }
    // spawnSync held this process: the node's log is read now. One store for six images.
    const stored = (l: { msg?: string; sha256?: unknown }) =>
      l.msg === "stored an init image" && l.sha256 === sha256(png);
    await node.waitForLog(stored);
    await new Promise((r) => setTimeout(r, 200));
    expect(node.logs.filter(stored)).toHaveLength(1);
    expect(readdirSync(join(node.stateDir, "init-images"))).toContain(`${sha256(png)}.png`);
  }, 200_000);

  it("refuses before queueing a model without a VAE encoder, or a strength that runs no step, naming the field", () => {
    const file = join(dir, "in.png");
    const run = (model: string, strength: string) =>
      spawnSync(
        process.execPath,
        [
          KILN,
          "render",
          "x",
          "--init-image",
          file,
          "--strength",
          strength,
          "--model",
          model,
          "--steps",
          "4",
          "--size",
          "256x256",
          "--no-local",
          "--node",
          `127.0.0.1:${node.port}`,
          "--token",
          node.token,
          "--trust-first-use",
          "--data-dir",
          join(dir, "data3"),
          "--no-discovery",
        ],
        { encoding: "utf8", timeout: 60_000 },
      );
    const sdxl = run(TINY_PACKS.sdxl, "0.5");
    expect(sdxl.status).not.toBe(0);
    expect(sdxl.stderr).toMatch(/initImage: .* cannot start from an image \(its pack has no VAE encoder\)/);
    const low = run(TINY_PACKS.sd, "0.2");
    expect(low.status).not.toBe(0);
    expect(low.stderr).toMatch(/strength: 0.2 of 4 steps runs no step/);
  });

  it("refuses --strength without --init-image", () => {
    const result = spawnSync(
      process.execPath,
      [KILN, "render", "x", "--strength", "0.6", "--data-dir", join(dir, "data2"), "--no-local", "--no-discovery"],
      { encoding: "utf8", timeout: 60_000 },
    );
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/--strength applies to img2img/);
  });
});
