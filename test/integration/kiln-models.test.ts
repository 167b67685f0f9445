import { cpSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ModelsReport } from "../../coordinator/models/models-report";
import { formatFingerprint } from "../../shared/fingerprint";
import { NodeInfo } from "../../shared/node-info";
import { TINY_PACKS, writeTinyPacks } from "../fixtures/tiny-packs/write-tiny-packs";
import { freePort } from "../support/free-port";
import { spawnKiln } from "../support/kiln-cli-process";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { api } from "../support/node-client";
import { tempDir } from "../support/temp-dir";

/** Runs the real `kiln` CLI without mDNS; `env` replaces the variables it names. */
function kiln(args: string[], env: Record<string, string | undefined> = {}) {
  return spawnKiln([...args, "--no-discovery"], { env: { KILN_MODELS: undefined, ...env } }).done;
}

let dir: string;
let library: string;
let node: RunningNode;
let nodeArgs: string[];

beforeAll(async () => {
  dir = tempDir("kiln-models-cli-");
  const made = writeTinyPacks(join(dir, "made"));
  // The node: tiny-sd and tiny-sdxl-turbo as made, and a pack the library never had.
  const nodeModels = join(dir, "node-models");
  cpSync(made.sd, join(nodeModels, TINY_PACKS.sd), { recursive: true });
  cpSync(made.sdxl, join(nodeModels, TINY_PACKS.sdxl), { recursive: true });
  cpSync(made.sd, join(nodeModels, "sd-from-elsewhere"), { recursive: true });
  // The library: tiny-sd with the same bytes, tiny-sdxl-turbo with other bytes, tiny-flow the node lacks, a stray folder.
  library = join(dir, "library");
  cpSync(made.sd, join(library, TINY_PACKS.sd), { recursive: true });
  cpSync(made.sdxl, join(library, TINY_PACKS.sdxl), { recursive: true });
  const scheduler = join(library, TINY_PACKS.sdxl, "scheduler", "scheduler_config.json");
  writeFileSync(scheduler, readFileSync(scheduler, "utf8").replace("1000", "999"));
  cpSync(made.flow, join(library, TINY_PACKS.flow), { recursive: true });
  cpSync(join(made.sd, "tokenizer"), join(library, "just-a-tokenizer"), { recursive: true });

  node = await startNode(["--devices", "cpu", "--models", nodeModels]);
  const nowhere = await freePort();
  nodeArgs = [
    "--no-local",
    "--node",
    `127.0.0.1:${node.port}`,
    "--token",
    node.token,
    "--fingerprint",
    formatFingerprint(node.pin.fingerprint),
    // A node that is not there: shown unreachable, the command still answers.
    "--node",
    `127.0.0.1:${nowhere}`,
    "--token",
    "t".repeat(48),
    "--fingerprint",
    "ab".repeat(32),
  ];
}, 60_000);

afterAll(async () => {
  await node?.stop();
});

describe("kiln models", () => {
  it("says per node which library packs are present, missing or different, by the same content hash", async () => {
    const { code, stdout, stderr } = await kiln([
      "models",
      "--json",
      "--models",
      library,
      "--data-dir",
      tempDir("kiln-models-data-"),
      ...nodeArgs,
    ]);
    expect(code, stderr).toBe(0);
    const report = ModelsReport.parse(JSON.parse(stdout));
    expect(report.library.dir).toBe(library);
    const [real, gone] = report.nodes;
    expect(real).toMatchObject({ id: node.nodeId, reachable: true });
    expect(gone).toMatchObject({ reachable: false, port: expect.any(Number) });
    expect(gone?.problem).toBeTruthy();

    const on = (name: string, nodeId: string) =>
      report.packs.find((p) => p.name === name)?.onNodes.find((o) => o.nodeId === nodeId)?.status;
    expect(on(TINY_PACKS.sd, node.nodeId)).toEqual({ state: "present" });
    expect(on(TINY_PACKS.flow, node.nodeId)).toEqual({ state: "missing" });
    expect(on(TINY_PACKS.sdxl, node.nodeId)).toMatchObject({ state: "different" });
    expect(on(TINY_PACKS.sd, gone?.id as string)).toMatchObject({ state: "unreachable" });
    expect(report.packs.find((p) => p.folder === "just-a-tokenizer")).toMatchObject({
      status: { state: "unreadable" },
      onNodes: [],
    });
    expect(report.nodesOnly).toEqual([expect.objectContaining({ name: "sd-from-elsewhere", nodeIds: [node.nodeId] })]);

    // The app's hash of the library's bytes is the node's hash of the same bytes, and only of the same bytes.
    const info = NodeInfo.parse(await (await api(node).get("/v1/node")).json());
    const nodeHash = (name: string) => info.models.find((m) => m.name === name)?.hash;
    const libraryHash = (name: string) => report.packs.find((p) => p.name === name)?.hash;
    expect(libraryHash(TINY_PACKS.sd)).toMatch(/^[0-9a-f]{64}$/);
    expect(libraryHash(TINY_PACKS.sd)).toBe(nodeHash(TINY_PACKS.sd));
    expect(nodeHash("sd-from-elsewhere")).toBe(nodeHash(TINY_PACKS.sd));
    expect(libraryHash(TINY_PACKS.sdxl)).not.toBe(nodeHash(TINY_PACKS.sdxl));
    expect(on(TINY_PACKS.sdxl, node.nodeId)).toEqual({ state: "different", nodeHash: nodeHash(TINY_PACKS.sdxl) });
  }, 60_000);

  it("prints a table with a column per node, reasons under their rows, and what only nodes have", async () => {
    const { code, stdout, stderr } = await kiln(["models", "--data-dir", tempDir("kiln-models-data-"), ...nodeArgs], {
      KILN_MODELS: library,
    });
    expect(code, stderr).toBe(0);
    const lines = stdout.split("\n");
    const row = (name: string) => lines.find((l) => l.startsWith(`${name} `)) ?? "";
    expect(stdout).toContain(`library ${library}: 4 packs`);
    expect(lines.find((l) => l.startsWith("NAME"))).toMatch(
      /NAME\s+KIND\s+HASH\s+SIZE\s+STATUS\s+\S+\s+127\.0\.0\.1:\d+/,
    );
    expect(row(TINY_PACKS.sd)).toMatch(/ sd\s+[0-9a-f]{12}\s+[\d.]+ (kB|MB)\s+ok\s+present\s+unreachable$/);
    expect(row(TINY_PACKS.flow)).toMatch(/ flow .* ok\s+missing\s+unreachable$/);
    expect(row(TINY_PACKS.sdxl)).toMatch(/ sdxl .* ok\s+different\s+unreachable$/);
    expect(row("just-a-tokenizer")).toMatch(/unreadable\s+-\s+-$/);
    expect(stdout).toMatch(/↳ unreadable \(not a model pack: no kiln-model\.json/);
    expect(stdout).toMatch(/↳ \S+ has other bytes under this name \(content hash [0-9a-f]{12}\)/);
    expect(stdout).toMatch(/127\.0\.0\.1:\d+ {2}unreachable: /);
    expect(stdout).toMatch(/on nodes only \(not in the library\):\nNAME.*\nsd-from-elsewhere\s+sd\s+[0-9a-f]{12}/);
  }, 60_000);

  it("refuses a library folder that is not there, naming it and how to fix it", async () => {
    const missing = join(dir, "no-such-library");
    const flag = await kiln(["models", "--no-local", "--models", missing, "--data-dir", tempDir("kiln-models-data-")]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain(`kiln: model library ${missing} does not exist`);
    expect(flag.stderr).toContain("--models");
    const env = await kiln(["models", "--no-local", "--data-dir", tempDir("kiln-models-data-")], {
      KILN_MODELS: missing,
    });
    expect(env.code).toBe(2);
    expect(env.stderr).toMatch(/\$KILN_MODELS/);
    // kiln render refuses it the same way, before anything starts.
    const render = await kiln(["render", "x", "--models", missing, "--data-dir", tempDir("kiln-models-data-")]);
    expect(render.code).toBe(2);
    expect(render.stderr).toContain(`model library ${missing} does not exist`);
  }, 60_000);

  it("creates the default library under XDG_DATA_HOME and lists it empty", async () => {
    const xdg = tempDir("kiln-models-xdg-");
    const { code, stdout, stderr } = await kiln(["models", "--no-local", "--data-dir", tempDir("kiln-models-data-")], {
      XDG_DATA_HOME: xdg,
    });
    expect(code, stderr).toBe(0);
    expect(existsSync(join(xdg, "kiln", "models"))).toBe(true);
    expect(stdout).toContain(`library ${join(xdg, "kiln", "models")}: 0 packs`);
    expect(stdout).toContain("no paired nodes");
    expect(stdout).toContain("no model packs in the library yet");
  }, 60_000);
});
