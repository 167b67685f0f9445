import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDemoEngine } from "../../../farm-node/inference/demo-engine";
import { buildDemoGraphs } from "../../../farm-node/inference/demo-model";
import { demoModelInfo } from "../../../farm-node/inference/demo-model-info";
import type { Engine, RenderBatch, RenderedImage, RenderHooks } from "../../../farm-node/inference/engine";
import { DEMO_MODEL } from "../../../shared/constants";
import { KilnError } from "../../../shared/errors";
import { ModelInfo } from "../../../shared/node-info";
import type { TaskImage } from "../../../shared/task";

let engine: Engine;

beforeAll(async () => {
  engine = await createDemoEngine({ providers: ["cpu"] });
});

afterAll(async () => {
  await engine.close();
});

function image(seed: number, prompt = "ocean sunset", negativePrompt = ""): TaskImage {
  return { id: `img-${seed}-${prompt.length}`, seed, prompt, negativePrompt };
}

function batch(images: TaskImage[], over: Partial<RenderBatch> = {}): RenderBatch {
  return { model: DEMO_MODEL, width: 128, height: 128, steps: 4, guidance: 1, images, ...over };
}

/** Renders and collects every image and step report. */
async function render(b: RenderBatch, cancelAfterSteps = Number.POSITIVE_INFINITY) {
  const images: RenderedImage[] = [];
  const steps: [string, number, number][] = [];
  const hooks: RenderHooks = {
    onStep: (id, step, total) => steps.push([id, step, total]),
    isCancelled: () => steps.length >= cancelAfterSteps,
    onImage: (img) => {
      images.push(img);
    },
  };
  await engine.render(b, hooks);
  return { images, steps };
}

async function renderOne(img: TaskImage, over: Partial<RenderBatch> = {}): Promise<Uint8Array> {
  const { images } = await render(batch([img], over));
  return images[0]?.rgb as Uint8Array;
}

/** Share of pixels whose colour differs by more than a few levels in some channel. */
function differingPixels(a: Uint8Array, b: Uint8Array): number {
  let differ = 0;
  for (let i = 0; i < a.length; i += 3) {
    const d = Math.max(
      Math.abs((a[i] as number) - (b[i] as number)),
      Math.abs((a[i + 1] as number) - (b[i + 1] as number)),
      Math.abs((a[i + 2] as number) - (b[i + 2] as number)),
    );
    if (d > 8) differ++;
  }
  return differ / (a.length / 3);
}

describe("kiln-demo engine (real ONNX Runtime sessions)", () => {
  it("describes kiln-demo with the sha256 of its graphs", () => {
    const [info] = engine.models();
    expect(ModelInfo.parse(info)).toEqual(info);
    const graphs = buildDemoGraphs();
    const hash = createHash("sha256").update(graphs.denoiser).update(graphs.decoder).digest("hex");
    expect(info).toMatchObject({
      name: DEMO_MODEL,
      hash,
      demo: true,
      available: true,
      defaultSteps: 4,
      defaultWidth: 512,
      defaultHeight: 512,
      maxWidth: 2048,
      maxHeight: 2048,
    });
    expect(info?.description).toMatch(/not a diffusion model/i);
    expect(demoModelInfo()).toEqual(info);
    expect(engine.backend).toBe("cpu");
  });

  it("gives byte-identical pixels for the same prompt and seed", async () => {
    const a = await renderOne(image(42));
    const b = await renderOne(image(42));
    expect(a).toHaveLength(128 * 128 * 3);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
  });

  it("gives an image the same pixels whatever its position in a batch", async () => {
    const alone = await renderOne(image(7));
    const { images } = await render(batch([image(6), image(7)]));
    expect(images.map((i) => i.imageId)).toEqual(["img-6-12", "img-7-12"]);
    expect(Buffer.from(images[1]?.rgb as Uint8Array).equals(Buffer.from(alone))).toBe(true);
  });

  it("changes most pixels when the seed or the prompt changes", async () => {
    const base = await renderOne(image(1));
    expect(differingPixels(base, await renderOne(image(2)))).toBeGreaterThan(0.5);
    expect(differingPixels(base, await renderOne(image(1, "a red fox in the snow")))).toBeGreaterThan(0.5);
    expect(differingPixels(base, await renderOne(image(1, "ocean sunset", "clouds")))).toBeGreaterThan(0.2);
  });

  it("paints colourful, structured pictures rather than grey or flat noise", async () => {
    for (const [seed, prompt] of [
      [3, "cyberpunk city at night"],
      [4, ""],
    ] as const) {
      const rgb = await renderOne(image(seed, prompt), { width: 256, height: 256 });
      let chroma = 0;
      let luma = 0;
      let lumaSq = 0;
      let neighbourStep = 0;
      for (let i = 0; i < rgb.length; i += 3) {
        const [r, g, b] = [rgb[i] as number, rgb[i + 1] as number, rgb[i + 2] as number];
        chroma += Math.max(r, g, b) - Math.min(r, g, b);
        const y = 0.299 * r + 0.587 * g + 0.114 * b;
        luma += y;
        lumaSq += y * y;
        if (i >= 3) neighbourStep += Math.abs((rgb[i] as number) - (rgb[i - 3] as number));
      }
      const pixels = rgb.length / 3;
      const lumaStd = Math.sqrt(lumaSq / pixels - (luma / pixels) ** 2);
      expect(chroma / pixels, `saturation of "${prompt}"`).toBeGreaterThan(40);
      expect(lumaStd, `contrast of "${prompt}"`).toBeGreaterThan(15);
      // Smooth shapes: neighbouring pixels differ far less than random ones would (~85).
      expect(neighbourStep / pixels, `smoothness of "${prompt}"`).toBeLessThan(12);
    }
  });

  it("gives a different picture for a different number of steps (every step computes)", async () => {
    const four = await renderOne(image(11));
    expect(differingPixels(four, await renderOne(image(11), { steps: 1 }))).toBeGreaterThan(0.2);
    expect(differingPixels(four, await renderOne(image(11), { steps: 8 }))).toBeGreaterThan(0.2);
  });

  it("renders W×H×3 bytes at non-square sizes", async () => {
    const wide = await renderOne(image(5), { width: 640, height: 384, steps: 2 });
    expect(wide).toHaveLength(640 * 384 * 3);
    const tall = await renderOne(image(5), { width: 64, height: 200, steps: 1 });
    expect(tall).toHaveLength(64 * 200 * 3);
  });

  it("renders the largest size, 2048×2048", async () => {
    const { images } = await render(batch([image(9)], { width: 2048, height: 2048, steps: 1 }));
    expect(images[0]?.rgb).toHaveLength(2048 * 2048 * 3);
  });

  it("reports every step of every image in order, with timings", async () => {
    const { images, steps } = await render(batch([image(1), image(2)], { steps: 3 }));
    expect(steps).toEqual([
      ["img-1-12", 1, 3],
      ["img-1-12", 2, 3],
      ["img-1-12", 3, 3],
      ["img-2-12", 1, 3],
      ["img-2-12", 2, 3],
      ["img-2-12", 3, 3],
    ]);
    for (const img of images) {
      expect(img.stepMs).toHaveLength(3);
      expect(img.ortMs).toBeGreaterThan(0);
      expect(img.ortMs).toBeLessThanOrEqual(img.inferenceMs);
      expect(img.stepMs.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(img.inferenceMs);
    }
  });

  it("stops between steps with E_CANCELLED when cancelled", async () => {
    const images: RenderedImage[] = [];
    const steps: number[] = [];
    const run = engine.render(batch([image(1), image(2)], { steps: 4 }), {
      onStep: (_id, step) => steps.push(step),
      isCancelled: () => steps.length >= 2,
      onImage: (img) => {
        images.push(img);
      },
    });
    await expect(run).rejects.toMatchObject({ code: "E_CANCELLED" });
    await expect(run).rejects.toBeInstanceOf(KilnError);
    expect(steps).toEqual([1, 2]);
    expect(images).toEqual([]);
  });

  it("refuses unknown models, oversized images and too many steps", async () => {
    await expect(render(batch([image(1)], { model: "sdxl-turbo" }))).rejects.toMatchObject({
      code: "E_MODEL_MISSING",
    });
    await expect(render(batch([image(1)], { width: 4096 }))).rejects.toMatchObject({ code: "E_SIZE_LIMIT" });
    await expect(render(batch([image(1)], { height: 100 }))).rejects.toMatchObject({ code: "E_SIZE_LIMIT" });
    await expect(render(batch([image(1)], { steps: 51 }))).rejects.toMatchObject({ code: "E_BAD_REQUEST" });
  });
});
