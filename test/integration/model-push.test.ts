import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { fetch } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pinnedAgent } from "../../coordinator/nodes/node-client";
import { ApiError } from "../../shared/errors";
import { type PackOffer, PushCommitted, PushStatus } from "../../shared/model-push";
import type { NodeEvent } from "../../shared/node-events";
import { NodeInfo } from "../../shared/node-info";
import { isPackFileName, packHashInput } from "../../shared/pack-files";
import { TINY_PACKS, writeTinyPacks } from "../fixtures/tiny-packs/write-tiny-packs";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { api, subscribe } from "../support/node-client";
import { tempDir } from "../support/temp-dir";

/** The library's side, as the app will do it: every counted file of a pack folder with its size and sha256. */
function offerFor(dir: string, name: string): { offer: PackOffer; bytes: Buffer[] } {
  const paths: string[] = [];
  const walk = (at: string) => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      if (!isPackFileName(entry.name)) continue;
      if (entry.isDirectory()) walk(join(at, entry.name));
      else paths.push(join(at, entry.name));
    }
  };
  walk(dir);
  paths.sort();
  const bytes = paths.map((p) => readFileSync(p));
  const files = paths.map((p, i) => ({
    path: relative(dir, p).split(sep).join("/"),
    size: statSync(p).size,
    sha256: createHash("sha256")
      .update(bytes[i] as Buffer)
      .digest("hex"),
  }));
  return { offer: { name, hash: hashOf(files), files }, bytes };
}

function hashOf(files: PackOffer["files"]): string {
  return createHash("sha256").update(packHashInput(files)).digest("hex");
}

const agents = new WeakMap<object, ReturnType<typeof pinnedAgent>>();
function put(node: RunningNode, hash: string, index: number, offset: number, body: Buffer) {
  let dispatcher = agents.get(node.pin);
  if (!dispatcher) {
    dispatcher = pinnedAgent(node.pin);
    agents.set(node.pin, dispatcher);
  }
  return fetch(`${node.url}/v1/model-pushes/${hash}/files/${index}?offset=${offset}`, {
    dispatcher,
    method: "PUT",
    headers: { authorization: `Bearer ${node.token}`, "content-type": "application/octet-stream" },
    body,
  });
}

async function errorOf(res: { json(): Promise<unknown> }) {
  return ApiError.parse(await res.json()).error;
}

/** Sends every byte the node still lacks, in chunks of `chunk` bytes. */
async function sendRest(node: RunningNode, status: PushStatus, bytes: Buffer[], chunk = 64 * 1024): Promise<void> {
  for (const file of status.files) {
    let have = file.have;
    while (have < file.size) {
      const piece = (bytes[file.index] as Buffer).subarray(have, Math.min(file.size, have + chunk));
      const res = await put(node, status.hash, file.index, have, piece);
      expect(res.status, await res.clone().text()).toBe(200);
      have = ((await res.json()) as { have: number }).have;
    }
  }
}

async function offer(node: RunningNode, body: unknown) {
  return api(node).post("/v1/model-pushes", body);
}

async function models(node: RunningNode) {
  return NodeInfo.parse(await (await api(node).get("/v1/node")).json()).models;
}

async function renders(node: RunningNode, model: string, id: string): Promise<void> {
  const events = await subscribe(node);
  try {
    const res = await api(node).submit({
      id,
      model,
      width: 256,
      height: 256,
      steps: 2,
      images: [{ id: `${id}-img`, seed: 7, prompt: "a kiln" }],
    });
    expect(res.status, await res.clone().text()).toBe(202);
    const outcome = await events.waitFor(
      (e: NodeEvent) =>
        (e.type === "image.ready" && e.imageId === `${id}-img`) || (e.type === "task.failed" && e.taskId === id),
    );
    expect(outcome.type, JSON.stringify(outcome)).toBe("image.ready");
  } finally {
    events.close();
  }
}

let library: string;
let packs: Record<keyof typeof TINY_PACKS, string>;

beforeAll(() => {
  library = tempDir("kiln-push-library-");
  packs = writeTinyPacks(library);
});

describe("pushing a model pack to a node", () => {
  let node: RunningNode;
  let modelsDir: string;

  beforeAll(async () => {
    modelsDir = tempDir("kiln-push-models-");
    writeTinyPacks(modelsDir);
    // This node has the flow pack and tiny-sd, but not the SDXL one.
    rmSync(join(modelsDir, TINY_PACKS.sdxl), { recursive: true });
    node = await startNode(["--devices", "cpu", "--models", modelsDir]);
  });
  afterAll(async () => {
    expect(await node?.stop()).toBe(0);
  });

  it("sends what the node lacks, resumes a cut file at the offset the node reports, and lists the pack once committed", async () => {
    const { offer: pack, bytes } = offerFor(packs.sdxl, TINY_PACKS.sdxl);
    const res = await offer(node, pack);
    expect(res.status, await res.clone().text()).toBe(201);
    const plan = PushStatus.parse(await res.json());
    expect(plan).toMatchObject({ installed: false, complete: false, hash: pack.hash });
    // Nothing is listed while it is staged.
    expect((await models(node)).some((m) => m.name === TINY_PACKS.sdxl)).toBe(false);

    // The biggest file, cut after part of it.
    const big = plan.files.filter((f) => f.source === "send").sort((a, b) => b.size - a.size)[0];
    if (!big) throw new Error("nothing to send");
    const part = Math.floor(big.size / 3);
    const first = await put(node, pack.hash, big.index, 0, (bytes[big.index] as Buffer).subarray(0, part));
    expect(first.status).toBe(200);
    // An app that lost track sends from 0 again: 409 says where to resume.
    const again = await put(node, pack.hash, big.index, 0, (bytes[big.index] as Buffer).subarray(0, 10));
    expect(again.status).toBe(409);
    const conflict = await errorOf(again);
    expect(conflict.code).toBe("E_CONFLICT");
    expect(conflict.details?.offset).toBe(part);
    // Bytes past the declared size are refused.
    const past = await put(node, pack.hash, big.index, part, Buffer.alloc(big.size - part + 1));
    expect(past.status).toBe(413);

    // Committing early says which files are missing.
    const early = await api(node).post(`/v1/model-pushes/${pack.hash}/commit`, {});
    expect(early.status).toBe(409);

    const status = PushStatus.parse(await (await api(node).get(`/v1/model-pushes/${pack.hash}`)).json());
    expect(status.files[big.index]?.have).toBe(part);
    await sendRest(node, status, bytes);
    const committed = await api(node).post(`/v1/model-pushes/${pack.hash}/commit`, {});
    expect(committed.status, await committed.clone().text()).toBe(200);
    expect(PushCommitted.parse(await committed.json())).toMatchObject({
      name: TINY_PACKS.sdxl,
      hash: pack.hash,
      available: true,
    });
    const listed = (await models(node)).find((m) => m.name === TINY_PACKS.sdxl);
    expect(listed).toMatchObject({ hash: pack.hash, available: true });
    expect(existsSync(join(modelsDir, ".incoming", pack.hash))).toBe(false);
    await renders(node, TINY_PACKS.sdxl, "pushed-sdxl");
    // Offered again: already installed, nothing to send.
    const repeat = await offer(node, pack);
    expect(repeat.status).toBe(200);
    expect(PushStatus.parse(await repeat.json())).toMatchObject({ installed: true, bytesToSend: 0 });
    // `kiln-node models` says who pushed it.
    const table = execFileSync(
      process.execPath,
      [
        join(process.cwd(), "bin/kiln-node.js"),
        "models",
        "--models",
        modelsDir,
        "--state-dir",
        node.stateDir,
        "--json",
      ],
      { encoding: "utf8" },
    );
    const text = execFileSync(
      process.execPath,
      [join(process.cwd(), "bin/kiln-node.js"), "models", "--models", modelsDir, "--state-dir", node.stateDir],
      { encoding: "utf8" },
    );
    expect(text).toMatch(
      new RegExp(`${TINY_PACKS.sdxl}\\s+sdxl\\s+${pack.hash.slice(0, 12)}.*ok\\n {2}↳ pushed by .+ at \\d{4}-`),
    );
    expect(text).not.toMatch(new RegExp(`${TINY_PACKS.flow}.*\\n {2}↳ pushed`));
    const rows = JSON.parse(table) as Array<{ name: string; source: { source: string; clientName?: string } }>;
    expect(rows.find((r) => r.name === TINY_PACKS.sdxl)?.source.source).toBe("push");
    expect(rows.find((r) => r.name === TINY_PACKS.flow)?.source.source).toBe("owner");
  }, 120_000);

  it("links files the node has in another pack instead of receiving them, and the pack runs", async () => {
    const { offer: pack } = offerFor(packs.sd, "tiny-sd-copy");
    const res = await offer(node, pack);
    expect(res.status, await res.clone().text()).toBe(201);
    const plan = PushStatus.parse(await res.json());
    expect(plan.bytesToSend).toBe(0);
    expect(plan.files.every((f) => f.source === "linked" && f.have === f.size)).toBe(true);
    const committed = await api(node).post(`/v1/model-pushes/${pack.hash}/commit`, {});
    expect(committed.status, await committed.clone().text()).toBe(200);
    expect(await committed.json()).toMatchObject({ available: true, unavailableReason: null });
    const file = pack.files[0]?.path as string;
    expect(statSync(join(modelsDir, "tiny-sd-copy", file)).ino).toBe(
      statSync(join(modelsDir, TINY_PACKS.sd, file)).ino,
    );
    expect((await models(node)).find((m) => m.name === "tiny-sd-copy")).toMatchObject({
      hash: pack.hash,
      available: true,
    });
    await renders(node, "tiny-sd-copy", "linked-sd");
  }, 120_000);

  it("refuses a commit whose bytes do not match, empties that file and lists nothing", async () => {
    const lone = tempDir("kiln-push-lone-");
    writeFileSync(join(lone, "model_index.json"), '{"_class_name":"ORTStableDiffusionPipeline"}');
    mkdirSync(join(lone, "unet"));
    writeFileSync(join(lone, "unet", "model.onnx"), Buffer.alloc(200_000, 7));
    const single = offerFor(lone, "wrong-bytes");
    const started = PushStatus.parse(await (await offer(node, single.offer)).json());
    const wrong = single.bytes.map((b) => Buffer.from(b).fill(1, 0, 10));
    await sendRest(node, started, wrong);
    const commit = await api(node).post(`/v1/model-pushes/${single.offer.hash}/commit`, {});
    expect(commit.status).toBe(400);
    const error = await errorOf(commit);
    expect(error.message).toMatch(/do not match their sha256/);
    expect(error.message).toContain("model_index.json");
    expect((await models(node)).some((m) => m.name === "wrong-bytes")).toBe(false);
    expect(existsSync(join(modelsDir, "wrong-bytes"))).toBe(false);
    const after = PushStatus.parse(await (await api(node).get(`/v1/model-pushes/${single.offer.hash}`)).json());
    expect(after.files.every((f) => f.have === 0)).toBe(true);
    const cancelled = await api(node).delete(`/v1/model-pushes/${single.offer.hash}`);
    expect(cancelled.status).toBe(200);
    expect(existsSync(join(modelsDir, ".incoming", single.offer.hash))).toBe(false);
    expect((await api(node).get(`/v1/model-pushes/${single.offer.hash}`)).status).toBe(404);
  });

  it("refuses path tricks with 400 naming the field", async () => {
    for (const path of ["../x", "/etc/passwd", "a/../../b", ".hidden", "a\\b", "a\0b", "a//b", "./a", "a/", ""]) {
      const files = [{ path, size: 1, sha256: "a".repeat(64) }];
      const res = await offer(node, { name: "tricks", hash: hashOf(files), files });
      expect(res.status, path).toBe(400);
      const error = await errorOf(res);
      expect(
        error.fields?.map((f) => f.path),
        path,
      ).toContain("files.0.path");
    }
    const files = [{ path: "a.onnx", size: 1, sha256: "a".repeat(64) }];
    const badName = await offer(node, { name: "../up", hash: hashOf(files), files });
    expect(badName.status).toBe(400);
    expect((await errorOf(badName)).fields?.map((f) => f.path)).toContain("name");
    const badHash = await offer(node, { name: "liar", hash: "b".repeat(64), files });
    expect(badHash.status).toBe(400);
    expect((await errorOf(badHash)).fields?.map((f) => f.path)).toContain("hash");
    // A name taken by a pack of another hash: never replaced.
    const taken = await offer(node, { name: TINY_PACKS.flow, hash: hashOf(files), files });
    expect(taken.status).toBe(409);
    expect((await errorOf(taken)).message).toMatch(/never replaces a pack/);
  });

  it("refuses an offer larger than its free space minus the margin before a byte is sent, naming both sizes", async () => {
    const files = Array.from({ length: 16 }, (_, i) => ({
      path: `unet/part-${i}.onnx_data`,
      size: 2 ** 40,
      sha256: createHash("sha256").update(String(i)).digest("hex"),
    }));
    const res = await offer(node, { name: "enormous", hash: hashOf(files), files });
    expect(res.status).toBe(507);
    const error = await errorOf(res);
    expect(error.code).toBe("E_DISK_FULL");
    // Both sizes: what the pack needs (with what other staged pushes still expect) and what may be used.
    const needed = error.details?.neededBytes as number;
    expect(needed).toBeGreaterThanOrEqual(16 * 2 ** 40);
    expect(error.message).toContain(`(${needed} bytes) more on this node`);
    expect(error.message).toMatch(
      /but only [\d.]+ [KMGT]?i?B \(\d+ bytes\) may be used: .* free minus the 1.0 GiB the node keeps free/,
    );
    expect(existsSync(join(modelsDir, ".incoming", hashOf(files)))).toBe(false);
  });

  it("lets only paired apps push", async () => {
    const files = [{ path: "a.onnx", size: 1, sha256: "a".repeat(64) }];
    const body = { name: "unpaired", hash: hashOf(files), files };
    for (const token of [null, "not-this-nodes-token"]) {
      const res = await api(node, token).post("/v1/model-pushes", body);
      expect(res.status).toBe(401);
    }
  });
});

describe("a push across a node restart", () => {
  it("continues from the bytes already there after SIGKILL", async () => {
    const modelsDir = tempDir("kiln-push-restart-");
    const stateDir = tempDir("kiln-push-restart-state-");
    let node = await startNode(["--devices", "cpu", "--models", modelsDir], { stateDir });
    const { offer: pack, bytes } = offerFor(packs.sd, TINY_PACKS.sd);
    const plan = PushStatus.parse(await (await offer(node, pack)).json());
    const big = [...plan.files].sort((a, b) => b.size - a.size)[0];
    if (!big) throw new Error("empty pack");
    const part = Math.floor(big.size / 2);
    expect((await put(node, pack.hash, big.index, 0, (bytes[big.index] as Buffer).subarray(0, part))).status).toBe(200);
    node.proc.kill("SIGKILL");
    await node.exited;
    node = await startNode(["--devices", "cpu", "--models", modelsDir], { stateDir, token: node.token });
    try {
      const status = PushStatus.parse(await (await api(node).get(`/v1/model-pushes/${pack.hash}`)).json());
      expect(status.files[big.index]?.have).toBe(part);
      // The app restarted too: it offers again and gets the same push.
      const resumed = PushStatus.parse(await (await offer(node, pack)).json());
      expect(resumed.files[big.index]?.have).toBe(part);
      expect(resumed.bytesToSend).toBe(plan.bytesToSend - part);
      await sendRest(node, resumed, bytes);
      const committed = await api(node).post(`/v1/model-pushes/${pack.hash}/commit`, {});
      expect(committed.status, await committed.clone().text()).toBe(200);
      expect((await models(node)).find((m) => m.name === TINY_PACKS.sd)).toMatchObject({
        hash: pack.hash,
        available: true,
      });
    } finally {
      await node.stop();
    }
  }, 120_000);
});

describe("a node whose owner turned pushes off", () => {
  it("answers 403 saying so", async () => {
    const node = await startNode(["--simulate", "1x8GB@1", "--models", tempDir("kiln-push-off-"), "--no-model-push"]);
    try {
      const files = [{ path: "a.onnx", size: 1, sha256: "a".repeat(64) }];
      const res = await offer(node, { name: "refused", hash: hashOf(files), files });
      expect(res.status).toBe(403);
      expect((await errorOf(res)).message).toMatch(/owner turned model pushes off/);
    } finally {
      await node.stop();
    }
  });
});

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn("SKIPPED a disk that fills during a push: mounting its tmpfs needs root (CI runs as root)");

describe.skipIf(!isRoot)("a disk that fills during a push", () => {
  it("answers 507, removes the push's staging and lists nothing", async () => {
    const mount = tempDir("kiln-push-tmpfs-");
    // Room for the 1 GiB margin and a little more; tmpfs takes memory only for what is written.
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1100m", "tmpfs", mount]);
    const node = await startNode(["--simulate", "1x8GB@1", "--models", mount]);
    try {
      const content = Buffer.alloc(40 * 1024 * 1024, 3);
      const files = [
        { path: "model_index.json", size: 2, sha256: createHash("sha256").update("{}").digest("hex") },
        { path: "unet/model.onnx", size: content.length, sha256: createHash("sha256").update(content).digest("hex") },
      ];
      const pack = { name: "fills-disk", hash: hashOf(files), files };
      const res = await offer(node, pack);
      expect(res.status, await res.clone().text()).toBe(201);
      // Something else takes the disk meanwhile.
      writeFileSync(join(mount, ".owner-file"), Buffer.alloc(1080 * 1024 * 1024));
      let answer = 0;
      for (let offset = 0; offset < content.length && answer !== 507; offset += 8 * 1024 * 1024) {
        const r = await put(node, pack.hash, 1, offset, content.subarray(offset, offset + 8 * 1024 * 1024));
        answer = r.status;
        if (answer === 507) expect((await errorOf(r)).code).toBe("E_DISK_FULL");
        else expect(answer, await r.text()).toBe(200);
      }
      expect(answer).toBe(507);
      expect(existsSync(join(mount, ".incoming", pack.hash))).toBe(false);
      expect((await api(node).get(`/v1/model-pushes/${pack.hash}`)).status).toBe(404);
      expect(existsSync(join(mount, "fills-disk"))).toBe(false);
    } finally {
      await node.stop();
      execFileSync("umount", [mount]);
    }
  }, 60_000);

  it("refuses an offer onto a disk with no byte free with 507 naming both sizes, writing nothing", async () => {
    const mount = tempDir("kiln-push-tmpfs-");
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mount]);
    const node = await startNode(["--simulate", "1x8GB@1", "--models", mount]);
    try {
      execFileSync("fallocate", [
        "-l",
        String(statfsSync(mount).bavail * statfsSync(mount).bsize),
        join(mount, ".other"),
      ]);
      const files = [{ path: "unet/model.onnx", size: 4096, sha256: "a".repeat(64) }];
      const res = await offer(node, { name: "no-room", hash: hashOf(files), files });
      const error = await errorOf(res);
      expect(res.status, error.message).toBe(507);
      expect(error.message).toMatch(
        /needs 4.0 KiB \(4096 bytes\) more on this node but only 0 B \(0 bytes\) may be used/,
      );
      expect(readdirSync(mount)).toEqual([".other"]);
    } finally {
      await node.stop();
      execFileSync("umount", [mount]);
    }
  }, 60_000);
});
