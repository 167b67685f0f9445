import { cpSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatFingerprint } from "../../shared/fingerprint";
import type { NodeInfo } from "../../shared/node-info";
import { TINY_PACKS, writeTinyPacks } from "../fixtures/tiny-packs/write-tiny-packs";
import { initPicture } from "../support/init-picture";
import { spawnKiln } from "../support/kiln-cli-process";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { api } from "../support/node-client";
import { tempDir } from "../support/temp-dir";

/**
 * An upscaler pack in the studio library reaches a running node as any pack
 * does (`kiln models push`): the node checks it (its factor found by a probe
 * run), its workers take it without a restart, and it upscales.
 */

let dir: string;
let library: string;
let node: RunningNode;

function kiln(args: string[]) {
  return spawnKiln([
    ...args,
    "--no-discovery",
    "--no-local",
    "--node",
    `127.0.0.1:${node.port}`,
    "--token",
    node.token,
    "--fingerprint",
    formatFingerprint(node.pin.fingerprint),
  ]).done;
}

beforeAll(async () => {
  dir = tempDir("kiln-upscaler-push-");
  const made = writeTinyPacks(join(dir, "made"));
  library = join(dir, "library");
  cpSync(made.upscaler, join(library, TINY_PACKS.upscaler), { recursive: true });
  mkdirSync(join(dir, "node-models"));
  node = await startNode(["--devices", "cpu", "--models", join(dir, "node-models")]);
}, 60_000);

afterAll(async () => {
  expect(await node?.stop()).toBe(0);
});

describe("pushing an upscaler pack", () => {
  it("is offered from the library, checked and taken by a running node, and then upscales there", async () => {
    const data = join(dir, "data");
    const push = await kiln(["models", "push", TINY_PACKS.upscaler, "--models", library, "--data-dir", data]);
    expect(push.code, push.stderr).toBe(0);
    expect(push.stdout).toMatch(/installed: sent/);
    const info = (await (await api(node).get("/v1/node")).json()) as NodeInfo;
    expect(info.models.find((m) => m.name === TINY_PACKS.upscaler)).toMatchObject({
      kind: "upscaler",
      scale: 4,
      available: true,
    });

    const picture = join(dir, "pic.png");
    writeFileSync(
      picture,
      await sharp(await initPicture(70))
        .resize(80, 60)
        .png()
        .toBuffer(),
    );
    const out = join(dir, "out");
    const run = await kiln(["upscale", picture, "--model", TINY_PACKS.upscaler, "--out", out, "--data-dir", data]);
    expect(run.code, run.stderr).toBe(0);
    const meta = await sharp(readFileSync(join(out, "pic.png"))).metadata();
    expect([meta.width, meta.height]).toEqual([320, 240]);
  }, 120_000);
});
