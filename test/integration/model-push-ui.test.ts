import { randomBytes } from "node:crypto";
import { closeSync, cpSync, existsSync, mkdirSync, openSync, readdirSync, writeSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Coordinator } from "../../coordinator/coordinator";
import { createCommandRouter } from "../../coordinator/ui-api/command-router";
import { NodeInfo } from "../../shared/node-info";
import type { LibrarySettings, NodeModelStatus, UiCommandName, UiResponse } from "../../shared/ui-api";
import { TINY_PACKS, writeTinyPacks } from "../fixtures/tiny-packs/write-tiny-packs";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { api } from "../support/node-client";
import { startSlowTcpRelay } from "../support/slow-tcp-relay";
import { tempDir } from "../support/temp-dir";
import { waitUntil } from "../support/wait-until";

/**
 * Pushes as a person drives them from the farm panel (issue 16, item 6),
 * through the UI API's command router with real kiln-node processes: a push
 * started by hand shows its progress and rate, a cancel drops the node's
 * staging and is not undone by the next on-demand tick, and pushing again
 * installs the pack. One node sits behind a slow link so its push can be seen.
 */

const MODEL = TINY_PACKS.flow;
const PADDING_MB = 12;
let library: string;
let near: RunningNode;
let far: RunningNode;
let farModels: string;
let relay: Awaited<ReturnType<typeof startSlowTcpRelay>>;
let coordinator: Coordinator;
let route: ReturnType<typeof createCommandRouter>;

async function call(command: UiCommandName, args: unknown = {}): Promise<UiResponse> {
  return route({ id: 1, command, args });
}

function resultOf(response: UiResponse): unknown {
  if ("error" in response) throw new Error(`${response.error.code}: ${response.error.message}`);
  return response.result;
}

function statusOn(nodeId: string): NodeModelStatus | undefined {
  return coordinator
    .listNodes()
    .find((n) => n.id === nodeId)
    ?.library?.find((m) => m.model === MODEL)?.status;
}

async function lists(node: RunningNode): Promise<boolean> {
  const info = NodeInfo.parse(await (await api(node).get("/v1/node")).json());
  return info.models.some((m) => m.name === MODEL);
}

/** What the node keeps of pushes under way (its staging folder's entries). */
function staged(modelsDir: string): string[] {
  const incoming = join(modelsDir, ".incoming");
  return existsSync(incoming) ? readdirSync(incoming) : [];
}

beforeAll(async () => {
  const dir = tempDir("kiln-push-ui-");
  const made = writeTinyPacks(join(dir, "made"));
  library = join(dir, "library");
  cpSync(made.flow, join(library, MODEL), { recursive: true });
  // Incompressible weights beside the graphs: a pack that takes seconds over the slow link.
  const fd = openSync(join(library, MODEL, "padding.onnx_data"), "w");
  for (let i = 0; i < PADDING_MB; i++) writeSync(fd, randomBytes(1 << 20));
  closeSync(fd);
  const nearModels = join(dir, "near-models");
  farModels = join(dir, "far-models");
  mkdirSync(nearModels);
  mkdirSync(farModels);
  [near, far] = await Promise.all([
    startNode(["--devices", "cpu", "--name", "near", "--models", nearModels]),
    startNode(["--devices", "cpu", "--name", "far", "--models", farModels]),
  ]);
  relay = await startSlowTcpRelay({ host: "127.0.0.1", port: far.port }, 2 * 1024 * 1024);
  coordinator = new Coordinator({
    dataDir: tempDir("kiln-push-ui-coord-"),
    outputDir: tempDir("kiln-push-ui-out-"),
    outputLayout: "flat",
    localNode: false,
    discovery: false,
    clientName: "test",
    log: pino({ level: "silent" }),
    modelLibrary: library,
    modelPushes: { push: { chunkBytes: 256 * 1024, retries: 1, retryDelayMs: () => 50 } },
  });
  await coordinator.start();
  route = createCommandRouter(coordinator);
  await coordinator.addNode("127.0.0.1", near.port, near.token, { fingerprint: near.pin.fingerprint });
  await coordinator.addNode("127.0.0.1", relay.port, far.token, { fingerprint: far.pin.fingerprint });
  await waitUntil(
    () => statusOn(near.nodeId)?.state === "missing" && statusOn(far.nodeId)?.state === "missing",
    30_000,
    "both nodes online, each lacking the library's pack",
  );
}, 90_000);

afterAll(async () => {
  await coordinator?.stop();
  await relay?.close();
  await Promise.all([near?.stop(), far?.stop()]);
});

describe("model pushes from the farm panel", () => {
  it("shows a push a person started with its progress and rate; a cancel drops the node's bytes and sticks until the person pushes again", async () => {
    const library = resultOf(await call("modelLibrary")) as { packs: Array<{ name: string; info: unknown }> };
    expect(library.packs.map((p) => p.name)).toEqual([MODEL]);
    expect(library.packs[0]?.info).toMatchObject({ name: MODEL, kind: "flow" });

    expect(resultOf(await call("pushModel", { nodeId: far.nodeId, model: MODEL }))).toEqual({ ok: true });
    await waitUntil(
      () => {
        const s = statusOn(far.nodeId);
        return s?.state === "pushing" && s.percent > 0 && s.bytesPerSecond > 0;
      },
      20_000,
      "the far node receiving the pack, with progress and a rate",
    );
    expect(staged(farModels).length).toBe(1);
    // One push per node: another model, or a second start of the same, does not start a second.
    expect(resultOf(await call("pushModel", { nodeId: far.nodeId, model: MODEL }))).toEqual({ ok: true });

    expect(resultOf(await call("cancelModelPush", { nodeId: far.nodeId, model: MODEL }))).toEqual({ ok: true });
    expect(statusOn(far.nodeId)).toEqual({ state: "cancelled" });
    await waitUntil(() => staged(farModels).length === 0, 10_000, "the far node's staging removed");
    const again = await call("cancelModelPush", { nodeId: far.nodeId, model: MODEL });
    expect("error" in again && again.error.code).toBe("E_NOT_FOUND");

    // A job for the pack: the near node receives it on demand; the far one, cancelled, is left alone.
    const { jobId } = coordinator.submitJob({ prompts: ["a lighthouse"], model: MODEL, count: 2, seed: 1 });
    await waitUntil(() => statusOn(near.nodeId)?.state === "present", 60_000, "the near node given the pack on demand");
    await new Promise((r) => setTimeout(r, 1500));
    expect(statusOn(far.nodeId)).toEqual({ state: "cancelled" });
    expect(staged(farModels)).toEqual([]);
    expect(await lists(far)).toBe(false);
    coordinator.cancelJob(jobId);

    // The person pushes again: it goes through and the node lists the library's pack.
    expect(resultOf(await call("pushModel", { nodeId: far.nodeId, model: MODEL }))).toEqual({ ok: true });
    await waitUntil(() => statusOn(far.nodeId)?.state === "present", 60_000, "the far node given the pack");
    expect(await lists(far)).toBe(true);
  }, 180_000);

  it("says why a push cannot start, and refuses library settings where the app was started with them", async () => {
    const unknown = await call("pushModel", { nodeId: near.nodeId, model: "no-such-pack" });
    expect("error" in unknown && unknown.error).toMatchObject({ code: "E_NOT_FOUND" });
    const settings: LibrarySettings = { dir: library, onDemand: false };
    const refused = await call("setModelLibrary", settings);
    expect("error" in refused && refused.error).toMatchObject({ code: "E_FORBIDDEN" });
    expect(refused).toMatchObject({ error: { message: expect.stringMatching(/--models/) } });
  });
});

describe("the desktop app's library settings", () => {
  it("applies another folder and the switch, hands them over to be saved, and refuses a folder that is not there", async () => {
    const saved: LibrarySettings[] = [];
    const other = tempDir("kiln-other-library-");
    const app = new Coordinator({
      dataDir: tempDir("kiln-settings-coord-"),
      outputDir: tempDir("kiln-settings-out-"),
      localNode: false,
      discovery: false,
      clientName: "test",
      log: pino({ level: "silent" }),
      modelLibrary: other,
      libraryChangeable: true,
      onLibraryChanged: (s) => saved.push(s),
    });
    await app.start();
    try {
      const router = createCommandRouter(app);
      const before = await router({ id: 1, command: "modelLibrary", args: {} });
      expect(before).toMatchObject({ result: { dir: other, onDemand: true, changeable: true, packs: [] } });
      const missing = await router({
        id: 2,
        command: "setModelLibrary",
        args: { dir: join(other, "nope"), onDemand: true },
      });
      expect(missing).toMatchObject({
        error: { code: "E_BAD_REQUEST", message: expect.stringMatching(/nope does not exist/) },
      });
      const set = await router({ id: 3, command: "setModelLibrary", args: { dir: library, onDemand: false } });
      expect(set).toMatchObject({ result: { dir: library, onDemand: false, packs: [{ name: MODEL, problem: null }] } });
      expect(saved).toEqual([{ dir: library, onDemand: false }]);
      // With the switch off a job for a model only the library has is refused, as with --no-push.
      expect(() => app.submitJob({ prompts: ["x"], model: MODEL, count: 1 })).toThrow();
    } finally {
      await app.stop();
    }
  });
});
