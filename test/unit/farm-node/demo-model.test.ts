import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { buildDemoGraphs, DECODER_IO, DENOISER_IO } from "../../../farm-node/inference/demo-model";

describe("kiln-demo graphs", () => {
  it("serialise to the same bytes on every build (they define the model hash)", () => {
    const a = buildDemoGraphs();
    const b = buildDemoGraphs();
    expect(Buffer.from(a.denoiser).equals(Buffer.from(b.denoiser))).toBe(true);
    expect(Buffer.from(a.decoder).equals(Buffer.from(b.decoder))).toBe(true);
  });

  it("expose the tensor names and types the engine feeds", async () => {
    const { denoiser, decoder } = buildDemoGraphs();
    const den = await ort.InferenceSession.create(denoiser);
    const dec = await ort.InferenceSession.create(decoder);
    expect(den.inputNames).toEqual([DENOISER_IO.latent, DENOISER_IO.cond, DENOISER_IO.sigma, DENOISER_IO.sigmaNext]);
    expect(den.outputNames).toEqual([DENOISER_IO.out]);
    expect(dec.inputNames).toEqual([DECODER_IO.latent, DECODER_IO.cond]);
    expect(dec.outputMetadata[0]).toMatchObject({
      name: DECODER_IO.out,
      type: "uint8",
      shape: ["batch", "height", "width", 3],
    });
    await Promise.all([den.release(), dec.release()]);
  });

  it("land exactly on the denoiser's prediction at the last step, whatever the latent's noise level", async () => {
    const { denoiser } = buildDemoGraphs();
    const den = await ort.InferenceSession.create(denoiser);
    const latent = new ort.Tensor("float32", new Float32Array(4 * 8 * 8).fill(0.3), [1, 4, 8, 8]);
    const cond = new ort.Tensor("float32", new Float32Array(64), [1, 64]);
    const step = async (sigma: number, next: number) => {
      const out = await den.run({
        [DENOISER_IO.latent]: latent,
        [DENOISER_IO.cond]: cond,
        [DENOISER_IO.sigma]: new ort.Tensor("float32", Float32Array.of(sigma), [1, 1]),
        [DENOISER_IO.sigmaNext]: new ort.Tensor("float32", Float32Array.of(next), [1, 1]),
      });
      return out[DENOISER_IO.out]?.data as Float32Array;
    };
    // A zero-length step leaves the latent alone; a step to sigma 0 returns a bounded prediction.
    expect(Array.from(await step(0.5, 0.5))).toEqual(Array.from(latent.data));
    const prediction = await step(0.25, 0);
    expect(prediction.every((v) => Math.abs(v) <= 1.5)).toBe(true);
    await den.release();
  });
});
