import { appendFileSync, mkdtempSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { scanModelPacks } from "../../../../farm-node/models/model-packs";
import { formatModelTable } from "../../../../farm-node/models/model-table";
import { PackHasher } from "../../../../farm-node/models/pack-hash";
import { OnnxFormatError, readOnnxSignature } from "../../../../farm-node/onnx/onnx-signature";
import { ModelInfo } from "../../../../shared/node-info";
import { TINY_PACKS, writeTinyPacks } from "../../../fixtures/tiny-packs/write-tiny-packs";

let dir: string;
let packs: ReturnType<typeof writeTinyPacks>;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "kiln-packs-"));
  packs = writeTinyPacks(join(dir, "models"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const hasher = () => new PackHasher(join(dir, "hashes.json"));
const scan = () => scanModelPacks(join(dir, "models"), hasher());
const infoOf = async (name: string) => (await scan()).find((e) => e.folder === name)?.info;

describe("ONNX signatures read without loading weights", () => {
  it("gives the UNet's input and output names, types and dims as optimum exports them", () => {
    const signature = readOnnxSignature(join(packs.sd, "unet/model.onnx"));
    expect(signature.inputs).toEqual([
      { name: "sample", type: "float32", dims: ["batch_size", 4, "height", "width"] },
      { name: "timestep", type: "int64", dims: ["steps"] },
      { name: "encoder_hidden_states", type: "float32", dims: ["batch_size", "sequence_length", 16] },
    ]);
    expect(signature.outputs.map((o) => o.name)).toEqual(["out_sample"]);
  });

  it("reports a truncated file and a file of garbage with where they broke", () => {
    const unet = join(packs.sd, "unet/model.onnx");
    truncateSync(unet, 5000);
    expect(() => readOnnxSignature(unet)).toThrow(OnnxFormatError);
    writeFileSync(unet, Buffer.from("this is not a protobuf at all, just text\n".repeat(50)));
    expect(() => readOnnxSignature(unet)).toThrow(/byte \d+|no graph/);
  });
});

describe("model pack discovery", () => {
  it("recognises the optimum exports and the manifest pack, with kind, defaults, size and hash", async () => {
    const entries = await scan();
    expect(entries.map((e) => [e.info.name, e.info.kind, e.info.available])).toEqual([
      [TINY_PACKS.flow, "flow", true],
      [TINY_PACKS.sd, "sd", true],
      [TINY_PACKS.sdInpaint, "sd", true],
      [TINY_PACKS.sdxl, "sdxl", true],
      [TINY_PACKS.upscaler, "upscaler", true],
    ]);
    const sd = entries.find((e) => e.info.kind === "sd");
    expect(sd?.pack?.source).toBe("optimum");
    expect(sd?.info).toMatchObject({
      defaultSteps: 25,
      defaultGuidance: 7.5,
      defaultWidth: 512,
      defaultSampler: "Euler",
    });
    // The inpainting export: its UNet takes 9 channels, its latents have the VAE's 4.
    const inpaint = entries.find((e) => e.info.name === TINY_PACKS.sdInpaint);
    expect([inpaint?.pack?.manifest.latent.channels, inpaint?.info.img2img]).toEqual([4, true]);
    const sdxl = entries.find((e) => e.info.kind === "sdxl");
    // The SDXL-Turbo export: turbo defaults, ancestral sampler from its scheduler config, fp16 from the UNet.
    expect(sdxl?.info).toMatchObject({ defaultSteps: 1, defaultGuidance: 0, defaultSampler: "Euler a" });
    expect(sdxl?.pack?.manifest.dtype).toBe("float16");
    expect(sdxl?.pack?.manifest.textEncoder2?.outputs.hidden).toBe("hidden_states.2");
    expect(sdxl?.pack?.manifest.tokenizer).toMatchObject({ kind: "clip", pad: "endoftext", pad2: "zero" });
    // The upscaler, one ONNX file recognised as is: its factor found by a probe run.
    const upscaler = entries.find((e) => e.info.kind === "upscaler");
    expect(upscaler?.info).toMatchObject({ scale: 4, defaultSteps: 1 });
    expect(upscaler?.upscaler).toMatchObject({ source: "as-is", input: "input", output: "output", dtype: "float32" });
    for (const e of entries) {
      expect(e.info.hash).toMatch(/^[0-9a-f]{64}$/);
      expect(e.info.sizeBytes).toBeGreaterThan(e.info.kind === "upscaler" ? 10_000 : 50_000);
    }
  });

  it("caches file hashes between scans and notices a changed file", async () => {
    const first = hasher();
    const before = await first.digest(packs.flow);
    first.save();
    const second = hasher();
    const again = await second.digest(packs.flow);
    expect(again.hash).toBe(before.hash);
    expect(again.hashedFiles).toBe(0);
    // PyTorch weights and model cards beside the ONNX files are not what runs: not hashed.
    writeFileSync(join(packs.flow, "transformer/diffusion_pytorch_model.safetensors"), "weights");
    writeFileSync(join(packs.flow, "README.md"), "# a model card");
    expect((await second.digest(packs.flow)).hash).toBe(before.hash);
    appendFileSync(join(packs.flow, "tokenizer/tokenizer_config.json"), " ");
    const changed = await second.digest(packs.flow);
    expect(changed.hashedFiles).toBe(1);
    expect(changed.hash).not.toBe(before.hash);
  });

  it("gives the same hash to the same pack in another folder (two nodes can tell they hold one model)", async () => {
    const elsewhere = writeTinyPacks(join(dir, "other-node"));
    const a = await hasher().digest(packs.sd);
    const b = await hasher().digest(elsewhere.sd);
    expect(b.hash).toBe(a.hash);
  });
});

describe("broken packs are reported with a precise reason and never stop the scan", () => {
  it("a missing component file", async () => {
    rmSync(join(packs.sd, "vae_decoder/model.onnx"));
    const info = await infoOf(TINY_PACKS.sd);
    expect(info?.available).toBe(false);
    expect(info?.unavailableReason).toBe("vae_decoder/model.onnx is missing");
    expect((await infoOf(TINY_PACKS.flow))?.available).toBe(true);
  });

  it("a missing UNet file in an optimum export", async () => {
    rmSync(join(packs.sdxl, "unet/model.onnx"));
    expect((await infoOf(TINY_PACKS.sdxl))?.unavailableReason).toBe("unet/model.onnx is missing");
  });

  it("a tensor name the model does not have, listing the names it does have", async () => {
    const file = join(packs.flow, "kiln-model.json");
    const manifest = JSON.parse(readFileSync(file, "utf8"));
    manifest.denoiser.inputs.latent = "x";
    writeFileSync(file, JSON.stringify(manifest));
    expect((await infoOf(TINY_PACKS.flow))?.unavailableReason).toBe(
      'transformer/model.onnx has no input "x" (its inputs: hidden_states, timestep, encoder_hidden_states, encoder_attention_mask)',
    );
  });

  it("a dtype that does not match the model", async () => {
    const file = join(packs.flow, "kiln-model.json");
    const manifest = JSON.parse(readFileSync(file, "utf8"));
    manifest.dtype = "float16";
    writeFileSync(file, JSON.stringify(manifest));
    expect((await infoOf(TINY_PACKS.flow))?.unavailableReason).toBe(
      'transformer/model.onnx input "hidden_states" is float32; expected float16',
    );
  });

  it("guidance or σ settings that contradict each other", async () => {
    const file = join(packs.flow, "kiln-model.json");
    const manifest = JSON.parse(readFileSync(file, "utf8"));
    writeFileSync(file, JSON.stringify({ ...manifest, guidance: { formula: "cfg", cfgTruncation: 0.5 } }));
    expect((await infoOf(TINY_PACKS.flow))?.unavailableReason).toBe(
      'guidance.cfgTruncation and cfgNormalization belong to guidance.formula "z_image"',
    );
    writeFileSync(
      file,
      JSON.stringify({ ...manifest, scheduler: { ...manifest.scheduler, sigmas: "z_image", sigmaMin: 0 } }),
    );
    expect((await infoOf(TINY_PACKS.flow))?.unavailableReason).toBe(
      'scheduler.sigmaMin applies to sigmas "linspace"; Z-Image\'s spread ends at 1/steps',
    );
  });

  it("a scheduler config of a noise schedule Kiln does not run (zero-SNR or trained betas, EDM), naming it", async () => {
    const file = join(packs.sdxl, "scheduler/scheduler_config.json");
    const config = JSON.parse(readFileSync(file, "utf8"));
    writeFileSync(file, JSON.stringify({ ...config, rescale_betas_zero_snr: true }));
    expect((await infoOf(TINY_PACKS.sdxl))?.unavailableReason).toBe(
      "scheduler/scheduler_config.json sets rescale_betas_zero_snr: true, a noise schedule Kiln does not run: its pictures would not be the model's",
    );
    writeFileSync(file, JSON.stringify({ ...config, trained_betas: [0.001, 0.002] }));
    expect((await infoOf(TINY_PACKS.sdxl))?.unavailableReason).toMatch(/sets trained_betas: \[0.001,0.002\]/);
    writeFileSync(file, JSON.stringify({ ...config, _class_name: "EDMDPMSolverMultistepScheduler" }));
    expect((await infoOf(TINY_PACKS.sdxl))?.unavailableReason).toMatch(/names EDMDPMSolverMultistepScheduler, an EDM/);
    // A sampler's own choices (Karras σ) are the sampler's, as in A1111: the pack runs, with the sampler Kiln names.
    const published = { ...config, use_karras_sigmas: true, sigma_min: null, sigma_max: null, trained_betas: null };
    writeFileSync(file, JSON.stringify(published));
    expect((await infoOf(TINY_PACKS.sdxl))?.available).toBe(true);
  });

  it("a tokenizer padded to the batch's longest prompt with no text mask for the denoiser", async () => {
    const file = join(packs.flow, "kiln-model.json");
    const manifest = JSON.parse(readFileSync(file, "utf8"));
    manifest.tokenizer.padTo = "longest";
    delete manifest.denoiser.inputs.textMask;
    writeFileSync(file, JSON.stringify(manifest));
    expect((await infoOf(TINY_PACKS.flow))?.unavailableReason).toBe(
      'tokenizer.padTo "longest" needs denoiser.inputs.textMask: without it an image would depend on the other prompts of its batch',
    );
  });

  it("latent channels that do not match the model", async () => {
    const file = join(packs.flow, "kiln-model.json");
    const manifest = JSON.parse(readFileSync(file, "utf8"));
    manifest.latent.channels = 4;
    writeFileSync(file, JSON.stringify(manifest));
    expect((await infoOf(TINY_PACKS.flow))?.unavailableReason).toMatch(/takes 16 latent channels but the pack says 4/);
  });

  it("a corrupt ONNX file", async () => {
    writeFileSync(join(packs.sd, "text_encoder/model.onnx"), Buffer.alloc(4096, 0xff));
    expect((await infoOf(TINY_PACKS.sd))?.unavailableReason).toMatch(
      /^text_encoder\/model\.onnx is not a readable ONNX model: /,
    );
  });

  it("a manifest with a missing field or bad JSON names the field or the parse error", async () => {
    const file = join(packs.flow, "kiln-model.json");
    const manifest = JSON.parse(readFileSync(file, "utf8"));
    delete manifest.latent;
    writeFileSync(file, JSON.stringify(manifest));
    expect((await infoOf(TINY_PACKS.flow))?.unavailableReason).toMatch(/^kiln-model\.json: latent /);
    writeFileSync(file, "{ not json");
    expect((await infoOf(TINY_PACKS.flow))?.unavailableReason).toMatch(/^kiln-model\.json is not valid JSON/);
  });

  it("a manifest whose defaults break its own limits takes the nearest it renders (a job leaving the size out would fail every image)", async () => {
    const file = join(packs.flow, "kiln-model.json");
    const manifest = JSON.parse(readFileSync(file, "utf8"));
    const limits = { ...manifest.limits, maxWidth: 4096, maxHeight: 1024, maxSteps: 20 };
    writeFileSync(
      file,
      JSON.stringify({ ...manifest, defaults: { ...manifest.defaults, width: 3000, height: 1536, steps: 50 }, limits }),
    );
    const info = await infoOf(TINY_PACKS.flow);
    expect(info?.available).toBe(true);
    // 4096 is past what a task carries: 2048; 3000 the nearest multiple within that; 1536 above its own 1024.
    expect(info).toMatchObject({
      maxWidth: 2048,
      defaultWidth: 2048,
      maxHeight: 1024,
      defaultHeight: 1024,
      defaultSteps: 20,
    });
  });

  it("a manifest whose limits leave no size at all names the limit (no pack listed that refuses every job)", async () => {
    const file = join(packs.flow, "kiln-model.json");
    const manifest = JSON.parse(readFileSync(file, "utf8"));
    writeFileSync(file, JSON.stringify({ ...manifest, limits: { ...manifest.limits, minEdge: 3000, maxWidth: 4096 } }));
    expect((await infoOf(TINY_PACKS.flow))?.unavailableReason).toMatch(
      /^kiln-model\.json: limits\.maxWidth leaves no size from minEdge 3000 to 2048 that is a multiple of \d+/,
    );
  });

  it("a folder that is no pack, and a second pack with a name already taken", async () => {
    writeFileSync(join(dir, "models", "README.txt"), "not a folder, ignored");
    writeTinyPacks(join(dir, "models", "copies"));
    const { mkdirSync } = await import("node:fs");
    mkdirSync(join(dir, "models", "empty"));
    const entries = await scan();
    expect(entries.find((e) => e.folder === "copies")?.info.unavailableReason).toMatch(/^not a model pack/);
    expect(entries.find((e) => e.folder === "empty")?.info.unavailableReason).toMatch(/^not a model pack/);
    const file = join(packs.flow, "kiln-model.json");
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, "utf8")), name: "tiny-sd" }));
    const renamed = await scan();
    expect(renamed.find((e) => e.folder === TINY_PACKS.flow)?.info.available).toBe(true);
    expect(renamed.find((e) => e.folder === TINY_PACKS.sd)?.info.unavailableReason).toMatch(
      /another model is already called "tiny-sd"/,
    );
  });

  it("an optimum export in a folder named as people name folders is listed unavailable with a name to use; the others load", async () => {
    renameSync(packs.sd, join(dir, "models", "SD Turbo (fp16)"));
    const entries = await scan();
    expect(entries.find((e) => e.folder === "SD Turbo (fp16)")?.info.unavailableReason).toBe(
      `the folder name "SD Turbo (fp16)" cannot name a model (must be letters, digits, '.', '_' or '-' (at most 100)): rename the folder, e.g. to "SD-Turbo-fp16"`,
    );
    expect(entries.find((e) => e.folder === TINY_PACKS.flow)?.info.available).toBe(true);
  });

  it("a folder whose name the protocol cannot carry is listed unavailable, not sent to lose the app the whole node", async () => {
    const long = `sd-${"x".repeat(230)}`;
    renameSync(packs.sd, join(dir, "models", long));
    const entries = await scan();
    const info = entries.find((e) => e.folder === long)?.info;
    expect(info?.available).toBe(false);
    expect(info?.unavailableReason).toMatch(/longer than 200 characters: rename the folder or set "name"/);
    expect(entries.every((e) => ModelInfo.safeParse(e.info).success)).toBe(true);
  });

  it("the table of `kiln-node models` shows status and the reason under a broken pack", async () => {
    rmSync(join(packs.sd, "vae_decoder/model.onnx"));
    const table = formatModelTable(await scan());
    expect(table.split("\n")[0]).toMatch(/^NAME\s+KIND\s+HASH\s+SIZE\s+STATUS$/);
    expect(table).toMatch(/tiny-flow\s+flow\s+[0-9a-f]{12}\s+\d+(\.\d)? KB\s+ok/);
    expect(table).toMatch(/tiny-sd\s+sd\s+-\s+-\s+unavailable\n {2}↳ vae_decoder\/model\.onnx is missing/);
  });
});
