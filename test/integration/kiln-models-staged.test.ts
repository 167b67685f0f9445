import { cpSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileHashCache } from "../../coordinator/models/file-hash-cache";
import { readPackFiles } from "../../coordinator/models/library-scan";
import { ModelsReport } from "../../coordinator/models/models-report";
import { NodeClient } from "../../coordinator/nodes/node-client";
import { formatFingerprint } from "../../shared/fingerprint";
import { TINY_PACKS, writeTinyPacks } from "../fixtures/tiny-packs/write-tiny-packs";
import { spawnKiln } from "../support/kiln-cli-process";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { tempDir } from "../support/temp-dir";

/**
 * `kiln models` run on its own, while a push is staged on a node (an app was
 * pushing, or stopped mid-way): it asks the nodes, so the pack shows as
 * `pushing N%` by the bytes that node holds, and a node whose owner turned
 * pushes off shows `refused` with its reason (issue 16, item 1).
 */

let dir: string;
let library: string;
let staged: RunningNode;
let closed: RunningNode;

function kiln(args: string[]) {
  return spawnKiln([...args, "--no-discovery"]).done;
}

const nodeArgs = (n: RunningNode) => [
  "--node",
  `127.0.0.1:${n.port}`,
  "--token",
  n.token,
  "--fingerprint",
  formatFingerprint(n.pin.fingerprint),
];

beforeAll(async () => {
  dir = tempDir("kiln-models-staged-");
  const made = writeTinyPacks(join(dir, "made"));
  library = join(dir, "library");
  cpSync(made.flow, join(library, TINY_PACKS.flow), { recursive: true });
  const empty = (name: string) => {
    mkdirSync(join(dir, name));
    return join(dir, name);
  };
  [staged, closed] = await Promise.all([
    startNode(["--simulate", "1x24GB@4", "--models", empty("staged-models")]),
    startNode(["--simulate", "1x24GB@4", "--models", empty("closed-models"), "--no-model-push"]),
  ]);
}, 60_000);

afterAll(async () => {
  await Promise.all([staged?.stop(), closed?.stop()]);
});

describe("kiln models with a push staged on a node", () => {
  it("shows the pack as pushing by the share of its bytes the node holds, and refused where pushes are off", async () => {
    const packDir = join(library, TINY_PACKS.flow);
    const { hash, files } = await readPackFiles(packDir, new FileHashCache(join(dir, "hashes.json")));
    const client = new NodeClient(staged.url, staged.token, staged.pin);
    try {
      await client.pushOffer({ name: TINY_PACKS.flow, hash, files });
      // Half of the largest file arrives; then the app that sent it stops.
      const index = files.reduce((best, f, i) => (f.size > (files[best]?.size ?? 0) ? i : best), 0);
      const largest = files[index] as (typeof files)[number];
      const half = Math.floor(largest.size / 2);
      await client.pushChunk(hash, index, { path: join(packDir, largest.path), start: 0, end: half });
      const total = files.reduce((s, f) => s + f.size, 0);
      const expected = Math.floor((half * 100) / total);

      const { code, stdout, stderr } = await kiln([
        "models",
        "--json",
        "--no-local",
        "--models",
        library,
        "--data-dir",
        tempDir("kiln-models-staged-data-"),
        ...nodeArgs(staged),
        ...nodeArgs(closed),
      ]);
      expect(code, stderr).toBe(0);
      const report = ModelsReport.parse(JSON.parse(stdout));
      const on = (node: RunningNode) =>
        report.packs.find((p) => p.name === TINY_PACKS.flow)?.onNodes.find((o) => o.nodeId === node.nodeId)?.status;
      expect(on(staged)).toEqual({ state: "pushing", percent: expected, bytesPerSecond: 0 });
      expect(on(closed)).toMatchObject({ state: "refused", reason: expect.stringMatching(/push/i) });

      const table = await kiln([
        "models",
        "--no-local",
        "--models",
        library,
        "--data-dir",
        tempDir("kiln-models-staged-data-"),
        ...nodeArgs(staged),
      ]);
      expect(table.stdout).toContain(`pushing ${expected}%`);
    } finally {
      client.close();
    }
  }, 90_000);
});
