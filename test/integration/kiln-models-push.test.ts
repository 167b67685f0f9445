import { cpSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileHashCache } from "../../coordinator/models/file-hash-cache";
import { readPackFiles } from "../../coordinator/models/library-scan";
import { ModelsReport } from "../../coordinator/models/models-report";
import { type PushProgress, pushPack } from "../../coordinator/models/pack-pusher";
import { NodeClient } from "../../coordinator/nodes/node-client";
import { formatFingerprint } from "../../shared/fingerprint";
import { NodeInfo } from "../../shared/node-info";
import { TINY_PACKS, writeTinyPacks } from "../fixtures/tiny-packs/write-tiny-packs";
import { spawnKiln } from "../support/kiln-cli-process";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { api } from "../support/node-client";
import { tempDir } from "../support/temp-dir";

function kiln(args: string[]) {
  return spawnKiln([...args, "--no-discovery", "--no-local"], { env: { KILN_MODELS: undefined } }).done;
}

function nodeArgs(node: RunningNode): string[] {
  return [
    "--node",
    `127.0.0.1:${node.port}`,
    "--token",
    node.token,
    "--fingerprint",
    formatFingerprint(node.pin.fingerprint),
  ];
}

let library: string;
let made: ReturnType<typeof writeTinyPacks>;
let node: RunningNode;
let closed: RunningNode;

beforeAll(async () => {
  const dir = tempDir("kiln-models-push-");
  made = writeTinyPacks(join(dir, "made"));
  library = join(dir, "library");
  cpSync(made.flow, join(library, TINY_PACKS.flow), { recursive: true });
  cpSync(made.sd, join(library, TINY_PACKS.sd), { recursive: true });
  const empty = (name: string) => {
    const d = join(dir, name);
    mkdirSync(d, { recursive: true });
    return d;
  };
  [node, closed] = await Promise.all([
    startNode(["--devices", "cpu", "--models", empty("node-models")]),
    startNode(["--devices", "cpu", "--models", empty("closed-models"), "--no-model-push"]),
  ]);
}, 60_000);

afterAll(async () => {
  await Promise.all([node?.stop(), closed?.stop()]);
});

describe("kiln models push", () => {
  it("pushes a pack to a node that lacks it; then it is present with the same hash, and a second push says already there", async () => {
    const data = tempDir("kiln-push-data-");
    const first = await kiln([
      "models",
      "push",
      TINY_PACKS.flow,
      "--models",
      library,
      "--data-dir",
      data,
      ...nodeArgs(node),
    ]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(
      new RegExp(`^${TINY_PACKS.flow}:\\n  \\S+ 127\\.0\\.0\\.1:\\d+  installed: sent [\\d.]+ kB of [\\d.]+ kB\\n$`),
    );
    expect(first.stderr).toMatch(/pushing tiny-flow \(\d+ files/);

    const models = await kiln(["models", "--json", "--models", library, "--data-dir", data, ...nodeArgs(node)]);
    const report = ModelsReport.parse(JSON.parse(models.stdout));
    const flow = report.packs.find((p) => p.name === TINY_PACKS.flow);
    expect(flow?.onNodes).toEqual([{ nodeId: node.nodeId, status: { state: "present" } }]);
    const info = NodeInfo.parse(await (await api(node).get("/v1/node")).json());
    expect(info.models.find((m) => m.name === TINY_PACKS.flow)).toMatchObject({ hash: flow?.hash, available: true });

    for (const all of [[], ["--all"]]) {
      const again = await kiln([
        "models",
        "push",
        TINY_PACKS.flow,
        ...all,
        "--models",
        library,
        "--data-dir",
        data,
        ...nodeArgs(node),
      ]);
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout).toMatch(/ {2}already there\n$/);
    }
  }, 90_000);

  it("resumes a stopped push from the bytes the node kept, sending only the rest", async () => {
    const dir = join(library, TINY_PACKS.sd);
    const cache = new FileHashCache(join(tempDir("kiln-push-cache-"), "hashes.json"));
    const { hash, files } = await readPackFiles(dir, cache);
    const pack = { dir, offer: { name: TINY_PACKS.sd, hash, files } };
    const total = files.reduce((s, f) => s + f.size, 0);
    const client = new NodeClient(node.url, node.token, node.pin);
    try {
      // The app stops after its first chunk (an exit, not a person's cancel): the node keeps those bytes.
      const stop = new AbortController();
      const first: PushProgress[] = [];
      await expect(
        pushPack(client, pack, {
          chunkBytes: 4096,
          signal: stop.signal,
          onProgress: (p) => {
            first.push(p);
            if (p.sentBytes > 0) stop.abort(new Error("app exit"));
          },
        }),
      ).rejects.toThrow("app exit");
      const kept = first.at(-1)?.sentBytes ?? 0;
      // One chunk: the first file's first 4096 bytes (or all of it, if smaller).
      expect(kept).toBe(Math.min(4096, files[0]?.size ?? 0));
      expect(kept).toBeGreaterThan(0);
      expect((await client.pushStatus(hash)).bytesToSend).toBe(total - kept);

      const second: PushProgress[] = [];
      const outcome = await pushPack(client, pack, { chunkBytes: 4096, onProgress: (p) => second.push(p) });
      expect(outcome).toMatchObject({
        kind: "installed",
        sentBytes: total - kept,
        bytesToSend: total - kept,
        totalBytes: total,
      });
      expect(second.at(-1)?.sentBytes).toBe(total - kept);
    } finally {
      client.close();
    }
    const info = NodeInfo.parse(await (await api(node).get("/v1/node")).json());
    expect(info.models.find((m) => m.name === TINY_PACKS.sd)).toMatchObject({ hash, available: true });
  }, 60_000);

  it("reports a node's refusal with its message and exit code 1", async () => {
    const data = tempDir("kiln-push-data-");
    const result = await kiln([
      "models",
      "push",
      TINY_PACKS.flow,
      "--models",
      library,
      "--data-dir",
      data,
      ...nodeArgs(closed),
    ]);
    expect(result.code).toBe(1);
    // The node's own words, not a status code.
    expect(result.stdout).toMatch(
      / {2}failed: this node.s owner turned model pushes off \(kiln-node --no-model-push\)/,
    );
  }, 60_000);

  it("refuses a name the library does not have", async () => {
    const result = await kiln([
      "models",
      "push",
      "no-such-pack",
      "--models",
      library,
      "--data-dir",
      tempDir("kiln-push-data-"),
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('no pack called "no-such-pack" in the model library');
  }, 30_000);
});
