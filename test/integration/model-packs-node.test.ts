import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTextChunks } from "../../farm-node/png/png-text-chunks";
import type { NodeEvent } from "../../shared/node-events";
import { NodeInfo } from "../../shared/node-info";
import { parseParameters } from "../../shared/png-parameters";
import type { TaskRequest } from "../../shared/task";
import { TINY_PACKS, writeTinyPacks } from "../fixtures/tiny-packs/write-tiny-packs";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { api, type EventStream, subscribe } from "../support/node-client";

const KILN = fileURLToPath(new URL("../../bin/kiln.js", import.meta.url));
const KILN_NODE = fileURLToPath(new URL("../../bin/kiln-node.js", import.meta.url));

let dir: string;
let modelsDir: string;
let node: RunningNode;
let events: EventStream;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "kiln-packs-node-"));
  modelsDir = join(dir, "models");
  writeTinyPacks(modelsDir);
  // A broken pack beside the good ones: an optimum export whose UNet is missing.
  const broken = join(modelsDir, "half-copied-sd");
  mkdirSync(broken);
  writeFileSync(join(broken, "model_index.json"), JSON.stringify({ _class_name: "StableDiffusionPipeline" }));
  node = await startNode(["--devices", "cpu", "--models", modelsDir]);
  events = await subscribe(node);
});

afterAll(async () => {
  events?.close();
  expect(await node?.stop()).toBe(0);
  rmSync(dir, { recursive: true, force: true });
});

async function info(): Promise<NodeInfo> {
  return NodeInfo.parse(await (await api(node).get("/v1/node")).json());
}

let taskCounter = 0;
async function renderOnNode(model: string, extra: Partial<TaskRequest> = {}): Promise<Buffer> {
  const id = `t-pack-${++taskCounter}`;
  const imageId = `img-pack-${taskCounter}`;
  const res = await api(node).submit({
    id,
    model,
    width: 256,
    height: 256,
    steps: 2,
    images: [{ id: imageId, seed: 42, prompt: "a lighthouse at dusk" }],
    ...extra,
  });
  expect(res.status, await res.clone().text()).toBe(202);
  const ready = (await events.waitFor(
    (e: NodeEvent) => e.type === "image.ready" && e.imageId === imageId,
  )) as NodeEvent & { type: "image.ready" };
  return Buffer.from(await (await api(node).get(ready.url)).arrayBuffer());
}

describe("kiln-node with --models", () => {
  it("lists every pack in /v1/node with kind and hash; the broken one unavailable with its reason", async () => {
    const { models } = await info();
    const byName = new Map(models.map((m) => [m.name, m]));
    for (const [name, kind] of [
      [TINY_PACKS.sd, "sd"],
      [TINY_PACKS.sdxl, "sdxl"],
      [TINY_PACKS.flow, "flow"],
    ]) {
      expect(byName.get(name as string)).toMatchObject({ kind, available: true, unavailableReason: null });
      expect(byName.get(name as string)?.hash).toMatch(/^[0-9a-f]{64}$/);
    }
    expect(byName.get("kiln-demo")?.available).toBe(true);
    expect(byName.get("half-copied-sd")).toMatchObject({
      available: false,
      unavailableReason: "text_encoder/ is missing (an optimum export of a diffusers pipeline has it)",
    });
    expect(((await (await api(node).get("/health")).json()) as { status: string }).status).toBe("ok");
  });

  it("renders a pack's PNG with the model and its hash in the parameters, and reports the model loaded", async () => {
    const png = await renderOnNode(TINY_PACKS.flow, { width: 192, height: 128 });
    const meta = await sharp(png).metadata();
    expect([meta.width, meta.height]).toEqual([192, 128]);
    const params = parseParameters(readTextChunks(png).parameters ?? "");
    const hash = (await info()).models.find((m) => m.name === TINY_PACKS.flow)?.hash as string;
    expect(params).toMatchObject({ model: TINY_PACKS.flow, modelHash: hash.slice(0, 10), seed: 42, steps: 2 });
    expect((await info()).devices[0]?.loadedModels).toEqual([TINY_PACKS.flow]);
  });

  it("writes the sampler as A1111 spells it, whatever spelling the task used", async () => {
    const png = await renderOnNode(TINY_PACKS.sd, { sampler: "euler_a", steps: 2 });
    expect(parseParameters(readTextChunks(png).parameters ?? "")).toMatchObject({ sampler: "Euler a" });
  });

  it("refuses a size that is not a multiple the model needs, naming the field, before queueing", async () => {
    const res = await api(node).submit({
      id: "t-bad-size",
      model: TINY_PACKS.sd,
      width: 288,
      height: 256,
      steps: 2,
      images: [{ id: "img-bad-size", seed: 1, prompt: "x" }],
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; message: string; fields: { path: string }[] } };
    expect(body.error.code).toBe("E_SIZE_LIMIT");
    expect(body.error.fields[0]?.path).toBe("width");
    expect(body.error.message).toMatch(/multiple of 64/);
  });

  it("refuses the broken pack with its reason", async () => {
    const res = await api(node).submit({
      id: "t-broken",
      model: "half-copied-sd",
      width: 256,
      height: 256,
      steps: 2,
      images: [{ id: "img-broken", seed: 1, prompt: "x" }],
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("E_MODEL_MISSING");
  });
});

describe("`kiln-node models`", () => {
  it("prints kind, hash, size and status of each pack, and the reason for a broken one", () => {
    const stateDir = join(dir, "state-for-models");
    const out = execFileSync(process.execPath, [KILN_NODE, "models", "--models", modelsDir, "--state-dir", stateDir], {
      encoding: "utf8",
    });
    const lines = out.trim().split("\n");
    expect(lines[0]).toMatch(/^NAME\s+KIND\s+HASH\s+SIZE\s+STATUS$/);
    expect(out).toMatch(/tiny-sd\s+sd\s+[0-9a-f]{12}\s+3\.\d MB\s+ok/);
    expect(out).toMatch(/half-copied-sd\s+unknown\s+-\s+-\s+unavailable\n {2}↳ text_encoder\/ is missing/);
    const json = JSON.parse(
      execFileSync(process.execPath, [KILN_NODE, "models", "--models", modelsDir, "--state-dir", stateDir, "--json"], {
        encoding: "utf8",
      }),
    );
    expect(json.map((m: { name: string }) => m.name)).toContain(TINY_PACKS.sdxl);
  });

  it("says what is wrong when the folder does not exist, exit code 1", () => {
    const result = spawnSync(process.execPath, [KILN_NODE, "models", "--models", join(dir, "nope")], {
      encoding: "utf8",
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/models folder .*nope does not exist/);
  });
});

describe("kiln render --model <tiny pack> through a node", () => {
  it.each([TINY_PACKS.sd, TINY_PACKS.flow])("renders PNGs from %s", (model) => {
    const out = join(dir, `out-${model}`);
    const result = spawnSync(
      process.execPath,
      [
        KILN,
        "render",
        "a lighthouse at dusk",
        "-n",
        "2",
        "--model",
        model,
        "--steps",
        "3",
        "--models",
        modelsDir,
        "--out",
        out,
        "--data-dir",
        join(dir, `data-${model}`),
        "--no-discovery",
      ],
      { encoding: "utf8", timeout: 120_000 },
    );
    expect(result.status, result.stderr).toBe(0);
    const files = readdirSync(out).filter((f) => f.endsWith(".png"));
    expect(files).toHaveLength(2);
    for (const file of files) {
      const params = parseParameters(readTextChunks(readFileSync(join(out, file))).parameters ?? "");
      expect(params).toMatchObject({ model, prompt: "a lighthouse at dusk", steps: 3 });
      // No --size: the model's default size (the tiny flow pack's is 384×256).
      expect([params.width, params.height]).toEqual(model === TINY_PACKS.flow ? [384, 256] : [512, 512]);
    }
  });
});
