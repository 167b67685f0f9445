import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTextChunks } from "../../farm-node/png/png-text-chunks";
import type { NodeInfo } from "../../shared/node-info";
import { TINY_PACKS, writeTinyPacks } from "../fixtures/tiny-packs/write-tiny-packs";
import { initPicture } from "../support/init-picture";
import { spawnKiln } from "../support/kiln-cli-process";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { api } from "../support/node-client";
import { tempDir } from "../support/temp-dir";

/**
 * `kiln upscale` against two real kiln-nodes on loopback, each with the tiny
 * ×4 upscaler pack on its CPU: four pictures of sizes that are not multiples
 * of 8 are sharded over both nodes, each result stored once in --out, named
 * after its input, at ×4 (or ×2); refusals name the flag or the file.
 */

const SIZES = [
  [151, 97],
  [200, 120],
  [96, 64],
  [130, 130],
] as const;

let dir: string;
let nodes: RunningNode[];
const inputs: string[] = [];

function kiln(args: string[], data: string, command = "upscale") {
  return spawnKiln([
    command,
    ...args,
    "--no-local",
    "--no-discovery",
    "--trust-first-use",
    "--data-dir",
    join(dir, data),
    ...nodes.flatMap((n) => ["--node", `127.0.0.1:${n.port}`, "--token", n.token]),
  ]).done;
}

/** Images a node has made on all its devices. */
async function imagesDone(node: RunningNode): Promise<number> {
  const info = (await (await api(node).get("/v1/node")).json()) as NodeInfo;
  return info.devices.reduce((sum, d) => sum + d.imagesTotal, 0);
}

beforeAll(async () => {
  dir = tempDir("kiln-upscale-cli-");
  writeTinyPacks(join(dir, "models"));
  nodes = await Promise.all([0, 1].map(() => startNode(["--devices", "cpu", "--models", join(dir, "models")])));
  for (const [i, [width, height]] of SIZES.entries()) {
    const file = join(dir, `shot-${i}.${i === 1 ? "jpg" : "png"}`);
    const resized = sharp(await initPicture(40 + 50 * i)).resize(width, height, { fit: "fill" });
    writeFileSync(file, await (i === 1 ? resized.jpeg() : resized.png()).toBuffer());
    inputs.push(file);
  }
}, 60_000);

afterAll(async () => {
  for (const node of nodes ?? []) expect(await node.stop()).toBe(0);
});

describe("kiln upscale", () => {
  it("shards four pictures over both nodes; each PNG stored once in --out, named after its input, ×4", async () => {
    const out = join(dir, "out4");
    const run = await kiln([...inputs, "--model", TINY_PACKS.upscaler, "--scale", "4", "--out", out], "data4");
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/4 pictures to upscale ×4/);
    expect(run.stderr).toMatch(/4\/4 images/);
    expect(readdirSync(out).sort()).toEqual(["shot-0.png", "shot-1.png", "shot-2.png", "shot-3.png"]);
    expect(run.stdout.trim().split("\n").sort()).toEqual(
      readdirSync(out)
        .sort()
        .map((f) => join(out, f)),
    );
    for (const [i, [width, height]] of SIZES.entries()) {
      const png = readFileSync(join(out, `shot-${i}.png`));
      const meta = await sharp(png).metadata();
      expect([meta.width, meta.height]).toEqual([width * 4, height * 4]);
      expect(readTextChunks(png).parameters).toContain(`Postprocess upscaler: ${TINY_PACKS.upscaler}`);
    }
    // Each node was sent the pictures it upscaled, once each: both took some, none went to both.
    const received = nodes.map((n) => n.logs.filter((l) => l.msg === "stored an init image").length);
    expect(
      received.every((n) => n >= 1),
      `pictures per node: ${received.join(", ")}`,
    ).toBe(true);
    expect(received.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(4);
  }, 180_000);

  it("makes ×2 with the ×4 pack", async () => {
    const out = join(dir, "out2");
    const run = await kiln(
      [inputs[0] as string, "--model", TINY_PACKS.upscaler, "--scale", "2", "--out", out],
      "data2",
    );
    expect(run.code, run.stderr).toBe(0);
    const meta = await sharp(readFileSync(join(out, "shot-0.png"))).metadata();
    expect([meta.width, meta.height]).toEqual([302, 194]);
  }, 120_000);

  it("cuts a picture past --farm-tile into tiles over both nodes and stitches them: the same pixels as one piece", async () => {
    const picture = join(dir, "wide.png");
    writeFileSync(
      picture,
      await sharp(await initPicture(200))
        .resize(300, 200)
        .png()
        .toBuffer(),
    );
    const before = await Promise.all(nodes.map(imagesDone));
    const tiled = join(dir, "tiled");
    const run = await kiln([picture, "--model", TINY_PACKS.upscaler, "--farm-tile", "128", "--out", tiled], "dt");
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain("6 tiles over the farm");
    expect(readdirSync(tiled)).toEqual(["wide.png"]);
    const whole = join(dir, "whole");
    expect((await kiln([picture, "--model", TINY_PACKS.upscaler, "--out", whole], "dw")).code).toBe(0);
    const a = await sharp(join(tiled, "wide.png")).raw().toBuffer({ resolveWithObject: true });
    const b = await sharp(join(whole, "wide.png")).raw().toBuffer();
    expect([a.info.width, a.info.height]).toEqual([1200, 800]);
    let worst = 0;
    for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs((a.data[i] as number) - (b[i] as number)));
    expect(worst).toBeLessThanOrEqual(1);
    expect(readTextChunks(readFileSync(join(tiled, "wide.png"))).parameters).toContain("Postprocess upscale by: 4");
    const after = await Promise.all(nodes.map(imagesDone));
    const took = after.map((n, k) => n - (before[k] as number));
    // Both nodes upscaled tiles of the first run (the second, one piece, adds 1 somewhere).
    const total = took.reduce((a, b) => a + b, 0);
    expect(took.every((n) => n >= 1) && total >= 7, `images per node: ${took.join(", ")}`).toBe(true);
  }, 180_000);

  it("sends the pictures of a node that dies under them to another node", async () => {
    const lost = await startNode(["--devices", "cpu", "--models", join(dir, "models")]);
    const big: string[] = [];
    for (let i = 0; i < 4; i++) {
      const file = join(dir, `big-${i}.png`);
      writeFileSync(
        file,
        await sharp(await initPicture(30 + 60 * i))
          .resize(480, 320)
          .png()
          .toBuffer(),
      );
      big.push(file);
    }
    const out = join(dir, "out-lost");
    const kilnRun = spawnKiln([
      "upscale",
      ...big,
      "--model",
      TINY_PACKS.upscaler,
      "--out",
      out,
      "--no-local",
      "--no-discovery",
      "--trust-first-use",
      "--data-dir",
      join(dir, "data-lost"),
      ...[lost, nodes[0] as RunningNode].flatMap((n) => ["--node", `127.0.0.1:${n.port}`, "--token", n.token]),
    ]);
    let result: Awaited<typeof kilnRun.done>;
    try {
      // It dies as soon as it has a picture to work on.
      await lost.waitForLog((l) => l.msg === "stored an init image", 60_000);
      lost.proc.kill("SIGKILL");
      result = await kilnRun.done;
    } finally {
      // Whatever failed above, neither process outlives the test.
      if (lost.proc.exitCode === null) lost.proc.kill("SIGKILL");
      if (kilnRun.proc.exitCode === null) kilnRun.proc.kill("SIGKILL");
    }
    expect(result.code, result.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual(["big-0.png", "big-1.png", "big-2.png", "big-3.png"]);
    for (const file of readdirSync(out)) {
      const meta = await sharp(join(out, file)).metadata();
      expect([meta.width, meta.height]).toEqual([1920, 1280]);
    }
  }, 180_000);

  it("sends the pictures of a node whose upscaler will not load to another node", async () => {
    // The pack breaks after the node's scan: its worker fails to load it, and the node then refuses its tasks.
    const models = join(dir, "broken-models");
    writeTinyPacks(models);
    const broken = await startNode(["--devices", "cpu", "--models", models]);
    try {
      writeFileSync(join(models, TINY_PACKS.upscaler, "tiny-upscaler-x4.onnx"), "truncated");
      const out = join(dir, "out-broken");
      const run = await spawnKiln([
        "upscale",
        ...inputs,
        "--model",
        TINY_PACKS.upscaler,
        "--out",
        out,
        "--no-local",
        "--no-discovery",
        "--trust-first-use",
        "--data-dir",
        join(dir, "data-broken"),
        ...[broken, nodes[0] as RunningNode].flatMap((n) => ["--node", `127.0.0.1:${n.port}`, "--token", n.token]),
      ]).done;
      expect(run.code, run.stderr).toBe(0);
      expect(readdirSync(out).sort()).toEqual(["shot-0.png", "shot-1.png", "shot-2.png", "shot-3.png"]);
      expect(broken.logs.some((l) => l.msg === "model failed to load; it is now reported unavailable")).toBe(true);
    } finally {
      expect(await broken.stop()).toBe(0);
    }
  }, 120_000);

  it("refuses a scale other than 2 or 4, a file that is not a picture and a model that is not an upscaler", async () => {
    const out = join(dir, "refused");
    const three = await kiln([inputs[0] as string, "--model", TINY_PACKS.upscaler, "--scale", "3", "--out", out], "r1");
    expect(three.code).toBe(2);
    expect(three.stderr).toMatch(/--scale 3: must be 2 or 4/);
    const text = join(dir, "notes.png");
    writeFileSync(text, "not a picture\n");
    const notPicture = await kiln([text, "--model", TINY_PACKS.upscaler, "--out", out], "r2");
    expect(notPicture.code).toBe(2);
    expect(notPicture.stderr).toContain(`${text}: not a picture`);
    const sd = await kiln([inputs[0] as string, "--model", TINY_PACKS.sd, "--out", out], "r3");
    expect(sd.code).toBe(2);
    expect(sd.stderr).toMatch(/--model tiny-sd: not an upscaler \(its kind is sd\)/);
    // A picture the queue refuses (×4 past 16,384 pixels a side) after one it took: nothing of the run stays queued.
    const wide = join(dir, "panorama.png");
    writeFileSync(
      wide,
      await sharp({ create: { width: 4200, height: 64, channels: 3, background: "#446" } })
        .png()
        .toBuffer(),
    );
    const data = join(dir, "r5");
    const tooWide = await kiln([inputs[0] as string, wide, "--model", TINY_PACKS.upscaler, "--out", out], "r5");
    expect(tooWide.code).toBe(2);
    expect(tooWide.stderr).toContain(`${wide}: invalid job: upscale.scale: 4200×64 ×4 is 16800×256`);
    const ledger = new Database(join(data, "kiln.sqlite"), { readonly: true });
    expect(ledger.prepare("SELECT state FROM jobs").pluck().all()).toEqual(["cancelled"]);
    ledger.close();
    // And the other way: a prompt for the upscaler is refused by the app's queue, naming model.
    const prompt = await kiln(["a lighthouse", "--model", TINY_PACKS.upscaler, "--out", out], "r4", "render");
    expect(prompt.code).toBe(2);
    expect(prompt.stderr).toMatch(/invalid job: model: tiny-upscaler-x4 is an upscaler/);
  }, 120_000);
});
