import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { Coordinator } from "../../coordinator/coordinator";
import { pairWithCode } from "../../coordinator/nodes/pairing-client";
import { PAIRING_WINDOW_MS } from "../../farm-node/auth/pairing-window";
import { ApiError } from "../../shared/errors";
import { formatFingerprint } from "../../shared/fingerprint";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { api } from "../support/node-client";
import { waitUntil } from "../support/wait-until";

const KILN_NODE = fileURLToPath(new URL("../../bin/kiln-node.js", import.meta.url));
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function node(args: string[], opts: Parameters<typeof startNode>[1] = {}): Promise<RunningNode> {
  const n = await startNode(["--simulate", "1x24GB@10", ...args], opts);
  cleanups.push(() => n.stop());
  return n;
}

/** A started coordinator with no local node, stopped after the test. */
async function studio(extra: { leaseMs?: number } = {}): Promise<Coordinator> {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-identity-coord-"));
  const c = new Coordinator({
    dataDir,
    outputDir: join(dataDir, "out"),
    localNode: false,
    discovery: false,
    clientName: "identity-test",
    log: pino({ level: "silent" }),
    ...extra,
  });
  await c.start();
  cleanups.push(() => c.stop());
  return c;
}

describe("the node's identity: TLS, pairing window, pinned certificate", () => {
  it("serves only TLS: a plain HTTP request gets no API answer", async () => {
    const n = await node([]);
    await expect(fetch(`http://127.0.0.1:${n.port}/health`)).rejects.toThrow();
    expect((await api(n, null).get("/health")).status).toBe(200);
  });

  it("keeps pairing closed on a paired node until a person runs `kiln-node pair` on it", async () => {
    const n = await node([]);
    const closed = await api(n, null).post("/v1/pair/start", { client: "x", request: "A".repeat(128) });
    expect(closed.status).toBe(403);
    expect(ApiError.parse(await closed.json()).error.code).toBe("E_PAIRING_CLOSED");

    const out = execFileSync(process.execPath, [KILN_NODE, "pair", "--state-dir", n.stateDir], { encoding: "utf8" });
    const code = /code (\d{3}-\d{3})/.exec(out)?.[1] as string;
    expect(code).toMatch(/^\d{3}-\d{3}$/);
    expect(out).toContain(formatFingerprint(n.pin.fingerprint));
    const paired = await pairWithCode(n.url, n.pin, code, "studio");
    expect(paired.nodeId).toBe(n.nodeId);
  });

  it("keeps a window that a person opens open for the daemon's pairing window, the 10 minutes the README promises", async () => {
    const n = await node([]);
    const before = Date.now();
    execFileSync(process.execPath, [KILN_NODE, "pair", "--state-dir", n.stateDir], { encoding: "utf8" });
    const after = Date.now();
    // What `kiln-node pair` read back from the daemon: when this window closes.
    const { closesAt } = JSON.parse(readFileSync(join(n.stateDir, "pairing.json"), "utf8")) as { closesAt: number };
    expect(closesAt).toBeGreaterThanOrEqual(before + PAIRING_WINDOW_MS);
    expect(closesAt).toBeLessThanOrEqual(after + PAIRING_WINDOW_MS);
    expect(PAIRING_WINDOW_MS).toBe(10 * 60_000);
  });

  it("a node that comes back with another certificate is shown as identity changed and gets no work until removed and paired again", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "kiln-identity-"));
    const first = await startNode(["--simulate", "1x24GB@10", "--pair"], { stateDir });
    const c = await studio();
    const summary = await c.pairNode("127.0.0.1", first.port, first.pairingCode());
    expect(summary.fingerprint).toBe(first.pin.fingerprint);
    await waitUntil(() => c.listNodes()[0]?.status === "online", 20_000, "node online");

    // The node is "reinstalled": same id and port, a new key and certificate.
    await first.stop();
    rmSync(join(stateDir, "tls-cert.pem"));
    rmSync(join(stateDir, "tls-key.pem"));
    const second = await node(["--port", String(first.port)], { stateDir });
    expect(second.nodeId).toBe(first.nodeId);
    expect(second.pin.fingerprint).not.toBe(first.pin.fingerprint);

    await waitUntil(() => c.listNodes()[0]?.status === "identity-changed", 20_000, "identity changed");
    expect(c.listNodes()[0]?.problem).toMatch(/identity changed: the node presents another certificate/);
    const { jobId } = c.submitJob({ prompts: ["x"], count: 2, width: 256, height: 256 });
    await new Promise((r) => setTimeout(r, 1500));
    expect(c.listJobs().find((j) => j.id === jobId)?.counts.done).toBe(0);
    // The reinstalled node never saw the studio's token.
    expect(second.logs.some((l) => l.msg === "refused a request without a valid token")).toBe(false);

    // Pairing it again as it is would let any machine take over a paired id: refused as a conflict.
    const out = execFileSync(process.execPath, [KILN_NODE, "pair", "--state-dir", stateDir], { encoding: "utf8" });
    const code = /code (\d{3}-\d{3})/.exec(out)?.[1] as string;
    await expect(c.pairNode("127.0.0.1", second.port, code)).rejects.toMatchObject({ code: "E_CONFLICT" });
    // A person removes the old entry and pairs the reinstalled node: the new certificate is pinned and work flows.
    c.removeNode(first.nodeId);
    const again = execFileSync(process.execPath, [KILN_NODE, "pair", "--state-dir", stateDir], { encoding: "utf8" });
    await c.pairNode("127.0.0.1", second.port, /code (\d{3}-\d{3})/.exec(again)?.[1] as string);
    const { jobId: after } = c.submitJob({ prompts: ["x"], count: 2, width: 256, height: 256 });
    await waitUntil(() => c.listJobs().find((j) => j.id === after)?.counts.done === 2, 30_000, "job done");
    expect(c.listNodes()[0]?.fingerprint).toBe(second.pin.fingerprint);
  });

  it("puts a node's in-flight images back in the queue once it comes back with another certificate, without waiting for a lease that no longer watches it", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "kiln-identity-inflight-"));
    // 0.2 images/s: the job's images are still in flight when the node is killed.
    const first = await startNode(["--simulate", "1x24GB@0.2", "--pair"], { stateDir });
    cleanups.push(() => first.stop());
    // A lease far longer than the test: only the identity change can send the images back.
    const c = await studio({ leaseMs: 120_000 });
    await c.pairNode("127.0.0.1", first.port, first.pairingCode());
    await waitUntil(() => c.listNodes()[0]?.status === "online", 20_000, "node online");
    let rendering = false;
    c.on("ui", (event) => {
      if (event.type === "image.progress") rendering = true;
    });
    const { jobId } = c.submitJob({ prompts: ["x"], count: 3, width: 256, height: 256 });
    const counts = () => c.listJobs().find((j) => j.id === jobId)?.counts;
    // The node took the task and is rendering it (a step done), not merely about to be sent it.
    await waitUntil(() => rendering, 20_000, "the node rendering the job");

    // Killed mid-task and "reinstalled" at once: same id and port, a new key and certificate.
    first.proc.kill("SIGKILL");
    await first.exited;
    rmSync(join(stateDir, "tls-cert.pem"));
    rmSync(join(stateDir, "tls-key.pem"));
    await node(["--port", String(first.port)], { stateDir });
    await waitUntil(() => c.listNodes()[0]?.status === "identity-changed", 20_000, "identity changed");
    await waitUntil(() => counts()?.running === 0, 5_000, "in-flight images back in the queue");
    expect(counts()).toMatchObject({ queued: 3, running: 0, done: 0, failed: 0 });
    expect(c.ledger.attemptOutcomes(jobId).active).toBe(0);
  });
});
