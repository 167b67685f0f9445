import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RenderBatch, RenderedImage } from "../../farm-node/inference/engine";
import { PackEngine } from "../../farm-node/inference/pack-engine";
import { scanModelPacks } from "../../farm-node/models/model-packs";
import { PackHasher } from "../../farm-node/models/pack-hash";
import { NoisePrefetcher } from "../../farm-node/pipelines/noise-ring";
import { PackPipeline } from "../../farm-node/pipelines/pack-pipeline";
import { loadPackSessions } from "../../farm-node/pipelines/pack-sessions";
import type { ResolvedPack } from "../../shared/model-manifest";
import type { TaskImage } from "../../shared/task";
import { UPSCALER_KIND } from "../../shared/upscale";
import { TINY_PACKS, writeTinyPacks } from "../fixtures/tiny-packs/write-tiny-packs";

/**
 * Every pipeline end to end on the tiny packs with real ONNX Runtime sessions
 * on the CPU provider. The denoiser session's `run` is wrapped to record what
 * it was fed; the session itself is real.
 */

let dir: string;
const packs = new Map<string, ResolvedPack>();
const pipelines = new Map<string, PackPipeline>();
const noise = new NoisePrefetcher();
const denoiserFeeds = new Map<string, Array<Record<string, ort.Tensor>>>();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "kiln-pipelines-"));
  writeTinyPacks(dir);
  for (const entry of await scanModelPacks(dir, new PackHasher(join(dir, ".hashes.json")))) {
    // Upscaler packs are not pipelines (test/integration/upscale-node.test.ts runs them).
    if (entry.info.kind === UPSCALER_KIND) continue;
    if (!entry.pack) throw new Error(`${entry.folder}: ${entry.info.unavailableReason}`);
    packs.set(entry.pack.name, entry.pack);
    const sessions = await loadPackSessions(entry.pack, ["cpu"], { intraOpThreads: 1 });
    const feeds: Array<Record<string, ort.Tensor>> = [];
    const run = sessions.denoiser.run.bind(sessions.denoiser);
    sessions.denoiser.run = ((f: Record<string, ort.Tensor>, ...rest: unknown[]) => {
      feeds.push(f);
      return (run as (...a: unknown[]) => Promise<ort.InferenceSession.ReturnType>)(f, ...rest);
    }) as typeof sessions.denoiser.run;
    denoiserFeeds.set(entry.pack.name, feeds);
    pipelines.set(entry.pack.name, new PackPipeline(entry.pack, sessions, noise));
  }
});
afterAll(async () => {
  for (const p of pipelines.values()) await p.release();
  await noise.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The tiny packs that render prompts (the upscaler pack enlarges pictures instead). */
const PIPELINE_PACKS = Object.values(TINY_PACKS).filter((name) => name !== TINY_PACKS.upscaler);

const image = (seed: number, prompt = "a lighthouse at dusk", negativePrompt = ""): TaskImage => ({
  id: `img-${seed}-${prompt.length}-${negativePrompt.length}`,
  seed,
  prompt,
  negativePrompt,
});

interface Rendered {
  images: RenderedImage[];
  steps: Array<[string, number, number]>;
}

async function render(
  name: string,
  images: TaskImage[],
  over: Partial<RenderBatch> = {},
  cancelAfterStep?: number,
): Promise<Rendered> {
  const out: Rendered = { images: [], steps: [] };
  await pipelines.get(name)?.render(
    { model: name, width: 256, height: 256, steps: 3, guidance: 1, images, ...over },
    {
      onStep: (id, step, steps) => out.steps.push([id, step, steps]),
      isCancelled: () => cancelAfterStep !== undefined && out.steps.length >= cancelAfterStep,
      onImage: (img) => {
        out.images.push(img);
      },
    },
  );
  return out;
}

const differingBytes = (a: Uint8Array, b: Uint8Array) => a.reduce((n, v, i) => n + (v !== b[i] ? 1 : 0), 0) / a.length;

describe.each(PIPELINE_PACKS)("pipeline %s on the CPU provider", (name) => {
  it("renders RGB bytes of the asked size, the same bytes for the same seed, other bytes for another seed", async () => {
    const first = await render(name, [image(1), image(2)]);
    expect(first.images.map((i) => i.rgb.length)).toEqual([256 * 256 * 3, 256 * 256 * 3]);
    const again = await render(name, [image(1), image(2)]);
    const [a, b] = first.images.map((i) => i.rgb) as [Uint8Array, Uint8Array];
    expect(Buffer.from(again.images[0]?.rgb as Uint8Array).equals(Buffer.from(a))).toBe(true);
    expect(differingBytes(a, b)).toBeGreaterThan(0.5);
    for (const img of first.images) {
      expect(img.ortMs).toBeGreaterThan(0);
      expect(img.ortMs).toBeLessThanOrEqual(img.inferenceMs);
    }
  });

  it("an image is the same at any batch position", async () => {
    const alone = await render(name, [image(9)]);
    const second = await render(name, [image(3), image(9)]);
    const x = alone.images[0]?.rgb as Uint8Array;
    const y = second.images[1]?.rgb as Uint8Array;
    // ORT may pick other kernels for another batch size; a few values may round differently.
    expect(differingBytes(x, y)).toBeLessThan(0.01);
  });

  it("reports each step of each image in order, and stops between steps when cancelled", async () => {
    const done = await render(name, [image(4), image(5)], { steps: 3 });
    expect(done.steps).toEqual([
      [image(4).id, 1, 3],
      [image(5).id, 1, 3],
      [image(4).id, 2, 3],
      [image(5).id, 2, 3],
      [image(4).id, 3, 3],
      [image(5).id, 3, 3],
    ]);
    const stopped = render(name, [image(4), image(5)], { steps: 3 }, 2);
    await expect(stopped).rejects.toMatchObject({ code: "E_CANCELLED", message: "batch cancelled before step 2 of 3" });
  });

  it("batches the negative prompt with the prompt when guidance is on (SD: above 1, flow: above 0), and runs the prompt alone otherwise", async () => {
    const feeds = denoiserFeeds.get(name) as Array<Record<string, ort.Tensor>>;
    const pack = packs.get(name) as ResolvedPack;
    const latentInput = pack.manifest.denoiser.inputs.latent;
    const flow = name === TINY_PACKS.flow;
    feeds.length = 0;
    await render(name, [image(6), image(7)], { guidance: flow ? 0 : 1, steps: 2 });
    expect(feeds[0]?.[latentInput]?.dims[0]).toBe(2);
    feeds.length = 0;
    // Z-Image's guidance 1 is pos + 1·(pos − neg): the negative prompt runs.
    await render(name, [image(6), image(7)], { guidance: 1, steps: 2 });
    expect(feeds[0]?.[latentInput]?.dims[0]).toBe(flow ? 4 : 2);
    feeds.length = 0;
    const guided = await render(name, [image(6), image(7)], { guidance: 5, steps: 2 });
    expect(feeds[0]?.[latentInput]?.dims[0]).toBe(4);
    const otherNegative = await render(name, [image(6, undefined, "fog"), image(7, undefined, "fog")], {
      guidance: 5,
      steps: 2,
    });
    expect(
      differingBytes(guided.images[0]?.rgb as Uint8Array, otherNegative.images[0]?.rgb as Uint8Array),
    ).toBeGreaterThan(0.1);
  });

  it("the prompt changes the picture", async () => {
    const a = await render(name, [image(11, "a red barn")]);
    const b = await render(name, [image(11, "a spaceship over the sea")]);
    expect(differingBytes(a.images[0]?.rgb as Uint8Array, b.images[0]?.rgb as Uint8Array)).toBeGreaterThan(0.1);
  });

  it("refuses a size the pack cannot render, naming the field and the rule", async () => {
    await expect(render(name, [image(1)], { width: 200 })).rejects.toMatchObject({
      code: "E_SIZE_LIMIT",
      fields: [{ path: "width" }],
    });
  });
});

describe("pack-specific inputs", () => {
  it("SDXL: float16 feeds, time_ids of the asked size, pooled text, zeros for an empty negative prompt", async () => {
    const feeds = denoiserFeeds.get(TINY_PACKS.sdxl) as Array<Record<string, ort.Tensor>>;
    feeds.length = 0;
    await render(TINY_PACKS.sdxl, [image(1)], { guidance: 3, steps: 1, width: 320, height: 256 });
    const feed = feeds[0] as Record<string, ort.Tensor>;
    expect(feed.sample?.type).toBe("float16");
    expect(feed.sample?.dims).toEqual([2, 4, 32, 40]);
    expect(feed.timestep?.dims).toEqual([]);
    expect(Array.from(feed.time_ids?.data as Uint16Array).length).toBe(12);
    expect(feed.encoder_hidden_states?.dims).toEqual([2, 77, 40]);
    expect(feed.text_embeds?.dims).toEqual([2, 20]);
    const text = feed.encoder_hidden_states?.data as Uint16Array;
    const half = text.length / 2;
    expect(text.subarray(0, half).every((v) => v === 0)).toBe(true);
    expect(text.subarray(half).some((v) => v !== 0)).toBe(true);
  });

  it("SD: int64 timesteps from the leading schedule, int32 token ids", async () => {
    const feeds = denoiserFeeds.get(TINY_PACKS.sd) as Array<Record<string, ort.Tensor>>;
    feeds.length = 0;
    await render(TINY_PACKS.sd, [image(1)], { steps: 4 });
    expect(feeds.map((f) => Number((f.timestep as ort.Tensor).data[0]))).toEqual([751, 501, 251, 1]);
  });

  it("flow: the caption mask marks the templated prompt's tokens, 8 steps are 8 runs, timesteps rise from 0 (fed as 1 − σ)", async () => {
    const feeds = denoiserFeeds.get(TINY_PACKS.flow) as Array<Record<string, ort.Tensor>>;
    feeds.length = 0;
    await render(TINY_PACKS.flow, [image(1, "the cat")], { steps: 8, guidance: 0 });
    expect(feeds.length).toBe(8);
    const mask = Array.from(feeds[0]?.encoder_attention_mask?.data as BigInt64Array, Number);
    expect(mask.length).toBe(64);
    const tokens = mask.filter((m) => m === 1).length;
    expect(tokens).toBeGreaterThan(10);
    expect(mask.slice(tokens).every((m) => m === 0)).toBe(true);
    const t = feeds.map((f) => (f.timestep as ort.Tensor).data[0] as number);
    expect(t[0]).toBeCloseTo(0, 6);
    expect(t.every((v, i) => i === 0 || v > (t[i - 1] as number))).toBe(true);
  });
});

describe.each(PIPELINE_PACKS)("text states of %s kept between batches", (name) => {
  it("runs the text encoders once for batches of the same prompts, again for other prompts, same pixels either way", async () => {
    const pack = packs.get(name) as ResolvedPack;
    const sessions = await loadPackSessions(pack, ["cpu"], { intraOpThreads: 1 });
    let encoderRuns = 0;
    for (const encoder of [sessions.textEncoder, sessions.textEncoder2]) {
      if (!encoder) continue;
      const run = encoder.run.bind(encoder);
      encoder.run = ((...args: unknown[]) => {
        encoderRuns++;
        return (run as (...a: unknown[]) => Promise<ort.InferenceSession.ReturnType>)(...args);
      }) as typeof encoder.run;
    }
    const encoders = sessions.textEncoder2 ? 2 : 1;
    const pipeline = new PackPipeline(pack, sessions, noise);
    const rgb: Uint8Array[] = [];
    const hooks = { onStep: () => {}, isCancelled: () => false, onImage: (i: RenderedImage) => void rgb.push(i.rgb) };
    const batch = (images: TaskImage[]) => ({ model: name, width: 256, height: 256, steps: 2, guidance: 3, images });
    await pipeline.render(batch([image(1, "a red fox", "fog"), image(2, "a red fox", "fog")]), hooks);
    await pipeline.render(batch([image(3, "a red fox", "fog"), image(4, "a red fox", "fog")]), hooks);
    expect(encoderRuns).toBe(encoders);
    await pipeline.render(batch([image(3, "a grey wolf", "fog"), image(4, "a grey wolf", "fog")]), hooks);
    expect(encoderRuns).toBe(2 * encoders);
    await pipeline.release();
    const fresh = await render(name, [image(3, "a red fox", "fog"), image(4, "a red fox", "fog")], {
      steps: 2,
      guidance: 3,
    });
    expect(Buffer.from(fresh.images[0]?.rgb as Uint8Array).equals(Buffer.from(rgb[2] as Uint8Array))).toBe(true);
  });
});

const norm = (v: ArrayLike<number>) => Math.sqrt(Array.from(v).reduce((sum, x) => sum + x * x, 0));

describe("flow guidance as diffusers' ZImagePipeline (v0.40) computes it", () => {
  it("pred = pos + g·(pos − neg), cfg_normalization per image, cfg_truncation past 1 − σ, x += (σ' − σ)·(−pred)", async () => {
    const flow = packs.get(TINY_PACKS.flow) as ResolvedPack;
    const guidance = { cfgTruncation: 0.2, cfgNormalization: 1 };
    const pack: ResolvedPack = { ...flow, manifest: { ...flow.manifest, guidance } };
    const sessions = await loadPackSessions(pack, ["cpu"], { intraOpThreads: 1 });
    const latents: Float32Array[] = [];
    const outputs: Float32Array[] = [];
    const decoded: Float32Array[] = [];
    const run = sessions.denoiser.run.bind(sessions.denoiser);
    sessions.denoiser.run = (async (f: Record<string, ort.Tensor>, ...rest: unknown[]) => {
      latents.push(Float32Array.from((f.hidden_states as ort.Tensor).data as Float32Array));
      const out = await (run as (...a: unknown[]) => Promise<ort.InferenceSession.ReturnType>)(f, ...rest);
      outputs.push(Float32Array.from((out.sample as ort.Tensor).data as Float32Array));
      return out;
    }) as typeof sessions.denoiser.run;
    const decode = sessions.vaeDecoder.run.bind(sessions.vaeDecoder);
    sessions.vaeDecoder.run = ((f: Record<string, ort.Tensor>, ...rest: unknown[]) => {
      // The decoder reads a view of the pipeline's workspace: copy it before the next image overwrites it.
      decoded.push(Float32Array.from((f.latent_sample as ort.Tensor).data as Float32Array));
      return (decode as (...a: unknown[]) => Promise<ort.InferenceSession.ReturnType>)(f, ...rest);
    }) as typeof sessions.vaeDecoder.run;
    const pipeline = new PackPipeline(pack, sessions, noise);
    const g = 4;
    await pipeline.render(
      {
        model: pack.name,
        width: 128,
        height: 128,
        steps: 2,
        guidance: g,
        images: [image(1, "a cat", "fog"), image(2)],
      },
      { onStep: () => {}, isCancelled: () => false, onImage: () => {} },
    );
    await pipeline.release();

    // diffusers at 2 steps: σ = linspace(1, 1/2, 2) shifted by 3 = [1, 0.75], then 0; 1 − σ = [0, 0.25],
    // so cfg_truncation 0.2 leaves step 1 to the prompt alone. Rows are Kiln's [neg × n, pos × n].
    const sigmas = [1, 0.75, 0];
    const n = 2;
    const size = (latents[0]?.length ?? 0) / (2 * n);
    expect(outputs.length).toBe(2);
    let normalized = 0;
    for (let b = 0; b < n; b++) {
      const x = Array.from((latents[0] as Float32Array).subarray((n + b) * size, (n + b + 1) * size));
      for (let i = 0; i < 2; i++) {
        const out = outputs[i] as Float32Array;
        const pos = out.subarray((n + b) * size, (n + b + 1) * size);
        const neg = out.subarray(b * size, (b + 1) * size);
        let pred = Array.from(pos, (p, j) => (i === 0 ? p + g * (p - (neg[j] as number)) : p));
        const [predNorm, posNorm] = [norm(pred), norm(pos)];
        if (i === 0 && predNorm > posNorm) {
          pred = pred.map((p) => (p * posNorm) / predNorm);
          normalized++;
        }
        const dt = (sigmas[i + 1] as number) - (sigmas[i] as number);
        for (let j = 0; j < size; j++) x[j] = (x[j] as number) + dt * -(pred[j] as number);
      }
      const { scale, shift } = pack.manifest.latent;
      const got = decoded[b] as Float32Array;
      for (let j = 0; j < size; j++) expect(got[j]).toBeCloseTo((x[j] as number) / scale + shift, 4);
    }
    expect(normalized).toBeGreaterThan(0);
  });
});

describe("flow packs that feed only the real caption tokens (padTo longest)", () => {
  it("pads to the batch's longest prompt, and a batch of one prompt not at all", async () => {
    const flow = packs.get(TINY_PACKS.flow) as ResolvedPack;
    const tokenizer = { ...flow.manifest.tokenizer, padTo: "longest" as const };
    const pack: ResolvedPack = { ...flow, manifest: { ...flow.manifest, tokenizer } };
    const sessions = await loadPackSessions(pack, ["cpu"], { intraOpThreads: 1 });
    const masks: number[][] = [];
    const run = sessions.denoiser.run.bind(sessions.denoiser);
    sessions.denoiser.run = ((f: Record<string, ort.Tensor>, ...rest: unknown[]) => {
      masks.push(Array.from((f.encoder_attention_mask as ort.Tensor).data as BigInt64Array, Number));
      return (run as (...a: unknown[]) => Promise<ort.InferenceSession.ReturnType>)(f, ...rest);
    }) as typeof sessions.denoiser.run;
    const pipeline = new PackPipeline(pack, sessions, noise);
    const hooks = { onStep: () => {}, isCancelled: () => false, onImage: () => {} };
    const base = { model: pack.name, width: 128, height: 128, steps: 2, guidance: 0 };
    await pipeline.render({ ...base, images: [image(1, "a cat")] }, hooks);
    expect(masks[0]?.every((m) => m === 1)).toBe(true);
    masks.length = 0;
    await pipeline.render(
      { ...base, images: [image(1, "a cat"), image(2, "a very much longer prompt about a cat")] },
      hooks,
    );
    const [shortRow, longRow] = [masks[0]?.slice(0, masks[0].length / 2), masks[0]?.slice(masks[0].length / 2)];
    expect(longRow?.every((m) => m === 1)).toBe(true);
    expect(shortRow?.at(-1)).toBe(0);
    expect(shortRow?.length).toBeLessThan(64);
    await pipeline.release();
  });
});

describe("the pack engine loads on first use and unloads when idle", () => {
  it("reports loading, loaded with its time, unloaded after the idle time, and loads again when needed", async () => {
    const events: string[] = [];
    let now = 0;
    const engine = new PackEngine({
      packs: [packs.get(TINY_PACKS.flow) as ResolvedPack],
      providers: ["cpu"],
      idleUnloadMs: 60_000,
      now: () => now,
      onModelEvent: (e) => events.push(`${e.event}${e.loadMs !== undefined ? `:${e.loadMs > 0}` : ""}`),
    });
    const batch: RenderBatch = {
      model: TINY_PACKS.flow,
      width: 128,
      height: 128,
      steps: 2,
      guidance: 0,
      images: [image(1)],
    };
    const hooks = {
      onStep: () => {},
      isCancelled: () => false,
      onImage: () => {},
      // Where a batch's energy window starts: after the load, never before it.
      onInferenceStart: () => events.push("inference"),
    };
    await engine.render(batch, hooks);
    await engine.render(batch, hooks);
    expect(events).toEqual(["loading", "loaded:true", "inference", "inference"]);
    now = 30_000;
    await engine.unloadIdle();
    expect(events.length).toBe(4);
    now = 61_000;
    await engine.unloadIdle();
    expect(events.at(-1)).toBe("unloaded");
    await engine.render(batch, hooks);
    expect(events.slice(-3)).toEqual(["loading", "loaded:true", "inference"]);
    await engine.close();
  });

  it("a pack that cannot load is reported unavailable with the reason and refused afterwards", async () => {
    const good = packs.get(TINY_PACKS.sd) as ResolvedPack;
    const broken: ResolvedPack = {
      ...good,
      name: "tiny-sd-broken",
      manifest: { ...good.manifest, denoiser: { ...good.manifest.denoiser, file: "vae_decoder/config.json" } },
    };
    const events: string[] = [];
    const engine = new PackEngine({
      packs: [broken],
      providers: ["cpu"],
      idleUnloadMs: 0,
      onModelEvent: (e) => events.push(e.event),
    });
    const batch: RenderBatch = {
      model: broken.name,
      width: 256,
      height: 256,
      steps: 1,
      guidance: 0,
      images: [image(1)],
    };
    const hooks = { onStep: () => {}, isCancelled: () => false, onImage: () => {} };
    await expect(engine.render(batch, hooks)).rejects.toMatchObject({ code: "E_MODEL_MISSING" });
    expect(events).toEqual(["loading", "failed"]);
    expect(engine.models()[0]).toMatchObject({ available: false });
    expect(engine.models()[0]?.unavailableReason).toMatch(/no execution provider could run the model/);
    await expect(engine.render(batch, hooks)).rejects.toThrow(/could not be loaded/);
    expect(events).toEqual(["loading", "failed"]);
    await engine.close();
  });
});
