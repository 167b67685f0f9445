import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTextChunks } from "../../farm-node/png/png-text-chunks";
import type { HiresPass } from "../../shared/hires-fix";
import { resizeLanczos } from "../../shared/img2img";
import type { NodeEvent } from "../../shared/node-events";
import { parseParameters } from "../../shared/png-parameters";
import type { TaskRequest } from "../../shared/task";
import { TINY_PACKS, writeTinyPacks } from "../fixtures/tiny-packs/write-tiny-packs";
import { kilnRender } from "../support/kiln-cli-process";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { api, type EventStream, subscribe } from "../support/node-client";
import { redisUnavailable, startRedis } from "../support/redis-server";
import { doneOf, startApp } from "../support/studio-apps";
import { waitUntil } from "../support/wait-until";

/**
 * Hires fix on a real kiln-node (real ONNX Runtime sessions on the tiny SD
 * pack): A1111's two passes in one task, the PNG at the second pass's size
 * with A1111's fields; and the same through `kiln render --hires`.
 */

let dir: string;
let node: RunningNode;
let events: EventStream;

const LATENT: HiresPass = { scale: 1.5, width: 384, height: 384, strength: 0.5, steps: 6, upscaler: "latent" };

let counter = 0;
function task(hires: HiresPass | undefined, extra: Partial<TaskRequest> = {}, seeds = [42]): TaskRequest {
  counter++;
  return {
    id: `t-hires-${counter}`,
    model: TINY_PACKS.sd,
    width: 256,
    height: 256,
    steps: 4,
    guidance: 1,
    images: seeds.map((seed, k) => ({ id: `img-hires-${counter}-${k}`, seed, prompt: "a lighthouse at dusk" })),
    ...(hires ? { hires } : {}),
    ...extra,
  };
}

interface Rendered {
  png: Buffer;
  progress: { step: number; steps: number }[];
}

/** Submits, waits for every image and returns their PNGs (in the task's order) with the progress each reported. */
async function render(request: TaskRequest): Promise<Rendered[]> {
  const ids = request.images.map((i) => i.id);
  const progress = new Map(ids.map((id) => [id, [] as { step: number; steps: number }[]]));
  const ready = new Map<string, string>();
  const seen = events.waitFor((e: NodeEvent) => {
    if (e.type === "task.progress") progress.get(e.imageId)?.push({ step: e.step, steps: e.steps });
    if (e.type === "image.ready" && ids.includes(e.imageId)) ready.set(e.imageId, e.url);
    return ready.size === ids.length;
  }, 120_000);
  const res = await api(node).submit(request);
  expect(res.status, await res.clone().text()).toBe(202);
  await seen;
  return Promise.all(
    ids.map(async (id) => ({
      png: Buffer.from(await (await api(node).get(ready.get(id) as string)).arrayBuffer()),
      progress: progress.get(id) ?? [],
    })),
  );
}

async function failure(request: TaskRequest): Promise<NodeEvent> {
  const failed = events.waitFor((e: NodeEvent) => e.type === "task.failed" && e.taskId === request.id, 60_000);
  expect((await api(node).submit(request)).status).toBe(202);
  return failed;
}

const raw = async (png: Buffer) => {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { rgb: new Uint8Array(data), width: info.width, height: info.height };
};

const meanAbsDiff = (a: Uint8Array, b: Uint8Array) => {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs((a[i] as number) - (b[i] as number));
  return sum / a.length;
};

const maxAbsDiff = (a: Uint8Array, b: Uint8Array) => {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs((a[i] as number) - (b[i] as number)));
  return max;
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "kiln-hires-"));
  writeTinyPacks(join(dir, "models"));
  node = await startNode(["--devices", "cpu", "--models", join(dir, "models")]);
  events = await subscribe(node);
}, 60_000);

afterAll(async () => {
  events?.close();
  expect(await node?.stop()).toBe(0);
  rmSync(dir, { recursive: true, force: true });
});

describe("hires fix on a node", () => {
  it("renders pass 1, upscales the latents and reworks them: a PNG at the second pass's size with A1111's fields", async () => {
    const [image] = await render(task(LATENT));
    const { png, progress } = image as Rendered;
    expect(await sharp(png).metadata()).toMatchObject({ width: 384, height: 384 });
    const text = readTextChunks(png).parameters ?? "";
    expect(text.split("\n").at(-1)).toMatch(
      /Steps: 4, .*Size: 256x256, .*Denoising strength: 0\.5, Hires upscale: 1\.5, Hires steps: 6, Hires upscaler: Latent$/,
    );
    // 4 steps of pass 1, then int(6 × 0.5) = 3 of pass 2, counted as one run of 7.
    expect(new Set(progress.map((p) => p.steps))).toEqual(new Set([7]));
    expect(progress.map((p) => p.step).at(-1)).toBe(7);
  });

  it("runs the latent upscaler on SDXL-shaped (float16) and flow packs too", async () => {
    for (const model of [TINY_PACKS.sdxl, TINY_PACKS.flow]) {
      const [image] = await render(task(LATENT, { model, guidance: 0 }));
      const { png, progress } = image as Rendered;
      expect(await sharp(png).metadata()).toMatchObject({ width: 384, height: 384 });
      expect(progress.at(-1)).toEqual({ step: 7, steps: 7 });
    }
  });

  it("repeats exactly, and in a batch stays within a level; differs from a plain upscale of its first pass", async () => {
    const [first] = await render(task(LATENT));
    const [second] = await render(task(LATENT));
    const alone = await raw((first as Rendered).png);
    expect(Buffer.from((await raw((second as Rendered).png)).rgb).equals(Buffer.from(alone.rgb))).toBe(true);
    // Beside another image its seed's noise is the same; ONNX Runtime's sums over a batch of two may round
    // a value differently, which the second pass can carry to one level of a pixel (seen: 1 of 442,368).
    const batch = await render(task(LATENT, {}, [7, 42]));
    expect(maxAbsDiff((await raw((batch[1] as Rendered).png)).rgb, alone.rgb)).toBeLessThanOrEqual(1);
    // The tiny random-weight pack draws faint pictures: another seed differs by about 1.8 levels on average.
    expect(meanAbsDiff((await raw((batch[0] as Rendered).png)).rgb, alone.rgb)).toBeGreaterThan(0.5);

    const [plain] = await render(task(undefined));
    const upscaled = resizeLanczos(await raw((plain as Rendered).png), 384, 384);
    // The second pass reworked the picture (1.7 levels on average here), as much as another seed differs.
    expect(meanAbsDiff(upscaled.rgb, alone.rgb)).toBeGreaterThan(0.5);
  });

  it("takes the picture through Lanczos or an upscaler pack and the VAE encoder, or refuses where it cannot", async () => {
    const lanczos = { ...LATENT, upscaler: "Lanczos", steps: 4 };
    const [image] = await render(task(lanczos));
    const { png } = image as Rendered;
    expect(await sharp(png).metadata()).toMatchObject({ width: 384, height: 384 });
    const params = parseParameters(readTextChunks(png).parameters ?? "");
    expect(params.extra).toMatchObject({ "Hires upscaler": "Lanczos", "Hires upscale": "1.5" });
    // The second pass's steps equal the first's: left out, as A1111 leaves out an unset hr_second_pass_steps.
    expect(params.extra["Hires steps"]).toBeUndefined();
    const [latent] = await render(task({ ...LATENT, steps: 4 }));
    expect(meanAbsDiff((await raw(png)).rgb, (await raw((latent as Rendered).png)).rgb)).toBeGreaterThan(0);

    // An upscaler pack (the tiny ×4 ESRGAN-shaped one) runs once, its 1024² shrunk to 384² with Lanczos.
    const [packed] = await render(task({ ...lanczos, upscaler: TINY_PACKS.upscaler }));
    const viaPack = (packed as Rendered).png;
    expect(await sharp(viaPack).metadata()).toMatchObject({ width: 384, height: 384 });
    expect(parseParameters(readTextChunks(viaPack).parameters ?? "").extra["Hires upscaler"]).toBe(TINY_PACKS.upscaler);
    expect(meanAbsDiff((await raw(viaPack)).rgb, (await raw(png)).rgb)).toBeGreaterThan(0);
    // A pack the node lacks is refused at once (the app sends the task elsewhere), never failed in a worker,
    // which would count against this node and could blocklist it for the model.
    const lacking = await api(node).submit(task({ ...lanczos, upscaler: "nosuch" }));
    expect(lacking.status).toBe(400);
    expect(await lacking.json()).toMatchObject({
      error: {
        code: "E_MODEL_MISSING",
        message: expect.stringMatching(/the upscaler pack "nosuch" is not installed on this node/),
        fields: [{ path: "hires.upscaler" }],
      },
    });

    const sdxl = task(lanczos, { model: TINY_PACKS.sdxl, guidance: 0 });
    expect(await failure(sdxl)).toMatchObject({
      code: "E_BAD_REQUEST",
      message: expect.stringMatching(/has no VAE encoder, so hires upscaler Lanczos cannot be used/),
    });
  });

  it("refuses hires for the demo model and a second pass past the model's limits, naming the field", async () => {
    const demo = await api(node).submit(task(LATENT, { model: "kiln-demo" }));
    expect(demo.status).toBe(400);
    expect(JSON.stringify(await demo.json())).toMatch(/kiln-demo cannot run hires fix/);
    // The tiny pack renders multiples of 64.
    const off = await api(node).submit(task({ ...LATENT, width: 392 }));
    expect(off.status).toBe(400);
    expect(JSON.stringify(await off.json())).toMatch(/hires\.width 392 is not a multiple of 64/);
    // Below the pack's smallest size: refused at the door, not failed in a worker.
    const small = await api(node).submit(task(LATENT, { width: 192 }));
    expect(small.status).toBe(400);
    expect(JSON.stringify(await small.json())).toMatch(/width 192 is below tiny-sd's smallest size of 256/);
  });
});

function kiln(args: string[], data: string) {
  return kilnRender([node], args, join(dir, data));
}

describe("kiln render --hires", () => {
  it("writes PNGs at the hires size with the Hires fields, the same on a second run", async () => {
    const run = (out: string) =>
      kiln(
        [
          "a lighthouse at dusk",
          ...["--hires", "1.5", "--hires-strength", "0.5", "--hires-steps", "6", "-n", "3", "--seed", "11"],
          ...["--model", TINY_PACKS.sd, "--steps", "4", "--size", "256x256", "--out", join(dir, out)],
        ],
        `data-${out}`,
      );
    const first = await run("out1");
    expect(first.status, first.stderr).toBe(0);
    const files = readdirSync(join(dir, "out1"))
      .filter((f) => f.endsWith(".png"))
      .sort();
    expect(files).toHaveLength(3);
    for (const name of files) {
      const png = readFileSync(join(dir, "out1", name));
      expect(await sharp(png).metadata()).toMatchObject({ width: 384, height: 384 });
      const params = parseParameters(readTextChunks(png).parameters ?? "");
      expect(params).toMatchObject({ steps: 4, width: 256, height: 256, denoisingStrength: 0.5 });
      expect(params.extra).toMatchObject({ "Hires upscale": "1.5", "Hires steps": "6", "Hires upscaler": "Latent" });
    }
    const second = await run("out2");
    expect(second.status, second.stderr).toBe(0);
    // Named by index and seed after the job's own id: compared in index order.
    const again = readdirSync(join(dir, "out2"))
      .filter((f) => f.endsWith(".png"))
      .sort();
    expect(again).toHaveLength(3);
    for (const [k, name] of files.entries()) {
      const a = await raw(readFileSync(join(dir, "out1", name)));
      const b = await raw(readFileSync(join(dir, "out2", again[k] as string)));
      expect(Buffer.from(a.rgb).equals(Buffer.from(b.rgb))).toBe(true);
    }
  }, 300_000);

  it("takes an upscaler pack some node has by its name", async () => {
    const out = join(dir, "out-pack");
    const result = await kiln(
      ["x", "--model", TINY_PACKS.sd, "--steps", "4", "--size", "256x256", "--hires", "1.5"].concat([
        "--hires-upscaler",
        TINY_PACKS.upscaler,
        "--out",
        out,
      ]),
      "data-pack",
    );
    expect(result.status, result.stderr).toBe(0);
    const [name] = readdirSync(out).filter((f) => f.endsWith(".png"));
    const png = readFileSync(join(out, name as string));
    expect(await sharp(png).metadata()).toMatchObject({ width: 384, height: 384 });
    expect(parseParameters(readTextChunks(png).parameters ?? "").extra["Hires upscaler"]).toBe(TINY_PACKS.upscaler);
  }, 120_000);

  it("refuses an upscaler pack that a node with the model lacks, naming the node, before queueing", async () => {
    const models = join(dir, "models-without-upscaler");
    writeTinyPacks(models);
    rmSync(join(models, TINY_PACKS.upscaler), { recursive: true, force: true });
    const bare = await startNode(["--devices", "cpu", "--models", models, "--name", "no-upscaler"]);
    try {
      const result = await kilnRender(
        [node, bare],
        ["x", "--model", TINY_PACKS.sd, "--steps", "4", "--size", "256x256", "--hires", "1.5"].concat([
          "--hires-upscaler",
          TINY_PACKS.upscaler,
          "--out",
          join(dir, "out-two"),
        ]),
        join(dir, "data-two"),
        120_000,
      );
      expect(result.status).not.toBe(0);
      expect(result.stderr).toMatch(
        /hires\.upscaler: tiny-upscaler-x4 is not on every node that renders the model \(no-upscaler lacks it\)/,
      );
    } finally {
      expect(await bare.stop()).toBe(0);
    }
  }, 120_000);

  it("refuses, before queueing, what cannot run, naming the field", async () => {
    const refused = async (args: string[]) => {
      const result = await kiln(["x", "--steps", "4", "--size", "256x256", ...args], "data-refused");
      expect(result.status).not.toBe(0);
      return result.stderr;
    };
    expect(await refused(["--model", TINY_PACKS.sd, "--hires-steps", "8"])).toMatch(
      /--hires-steps applies to hires fix: give --hires SCALE too/,
    );
    expect(await refused(["--model", "kiln-demo", "--hires", "2"])).toMatch(/hires: kiln-demo cannot run hires fix/);
    expect(await refused(["--model", TINY_PACKS.sd, "--size", "192x256"])).toMatch(
      /width 192 is below tiny-sd's smallest size of 256/,
    );
    expect(await refused(["--model", TINY_PACKS.sd, "--size", "1024x1024", "--hires", "4"])).toMatch(
      /hires\.scale: 1024x1024 × 4 is 4096x4096, above tiny-sd's limit of 2048x2048/,
    );
    expect(await refused(["--model", TINY_PACKS.sd, "--hires", "1.3"])).toMatch(
      /hires\.scale: 256x256 × 1\.3 is 328x328, not a multiple of 64/,
    );
    expect(await refused(["--model", TINY_PACKS.sd, "--hires", "2", "--hires-upscaler", "nosuch"])).toMatch(
      /hires\.upscaler: no node has an upscaler pack named nosuch/,
    );
    expect(await refused(["--model", TINY_PACKS.sd, "--hires", "2", "--hires-strength", "0.1"])).toMatch(
      /hires\.strength: 0\.1 of 4 steps runs no step/,
    );
    expect(await refused(["--model", TINY_PACKS.sdxl, "--hires", "2", "--hires-upscaler", "Lanczos"])).toMatch(
      /hires\.upscaler: Lanczos needs a VAE encoder/,
    );
  }, 200_000);
});

const noRedis = redisUnavailable();
if (noRedis) console.warn(`SKIPPED hires fix in farm mode: ${noRedis}`);

describe.skipIf(noRedis !== null)("hires fix in farm mode (a real redis-server)", () => {
  it("a farm node renders it from the app's queue; an upscaler pack is refused there, naming it", async () => {
    const redis = await startRedis();
    const farmNode = await startNode(["--devices", "cpu", "--models", join(dir, "models"), "--farm", redis.url]);
    const app = await startApp("hires-farm", { farm: redis.url });
    try {
      expect(await app.c.waitForNodes(30_000)).toBe(true);
      await waitUntil(
        () => app.c.listNodes().some((n) => n.models?.some((m) => m.name === TINY_PACKS.sd)),
        30_000,
        "tiny-sd on the farm",
      );
      const hires = { scale: 1.5, strength: 0.5, steps: 6 };
      const { jobId } = app.c.submitJob({
        prompts: ["a lighthouse at dusk"],
        model: TINY_PACKS.sd,
        width: 256,
        height: 256,
        steps: 4,
        count: 2,
        seed: 42,
        hires,
      });
      await waitUntil(() => doneOf(app.c, jobId) === 2, 60_000, "both hires images");
      const files = readdirSync(app.outputDir).filter((f) => f.endsWith(".png"));
      expect(files).toHaveLength(2);
      for (const name of files) {
        const png = readFileSync(join(app.outputDir, name));
        expect(await sharp(png).metadata()).toMatchObject({ width: 384, height: 384 });
        expect(parseParameters(readTextChunks(png).parameters ?? "").extra).toMatchObject({
          "Hires upscale": "1.5",
          "Hires upscaler": "Latent",
        });
      }
      expect(() =>
        app.c.submitJob({ prompts: ["x"], model: TINY_PACKS.sd, hires: { ...hires, upscaler: TINY_PACKS.upscaler } }),
      ).toThrow(/hires\.upscaler: upscaler packs are not available to hires fix in farm mode yet/);
    } finally {
      await app.c.stop();
      await farmNode.stop();
      await redis.stop();
    }
  }, 120_000);
});
