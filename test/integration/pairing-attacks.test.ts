import { copyFileSync, mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as opaque from "@serenity-kit/opaque";
import pino from "pino";
import { fetch } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { Coordinator } from "../../coordinator/coordinator";
import { KilnError } from "../../shared/errors";
import { PAIRING_KEY_STRETCHING, PairStartResponse, pairingIdentifiers } from "../../shared/pairing";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { agentFrom, loopbackAddress } from "../support/loopback-addresses";
import { startTlsRelay } from "../support/tls-relay";

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function node(args: string[] = [], opts: Parameters<typeof startNode>[1] = {}): Promise<RunningNode> {
  const n = await startNode(["--simulate", "1x24GB@10", "--pair", ...args], opts);
  cleanups.push(() => n.stop());
  return n;
}

async function coordinator(name = "studio"): Promise<{ c: Coordinator; dataDir: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-pairing-attack-"));
  const c = new Coordinator({
    dataDir,
    outputDir: join(dataDir, "out"),
    localNode: false,
    discovery: false,
    clientName: name,
    log: pino({ level: "silent" }),
  });
  await c.start();
  cleanups.push(() => c.stop());
  return { c, dataDir };
}

/** The pairing window as the node shows it right now (`kiln-node pair` reads the same file). */
function pairingFile(n: RunningNode): { code: string; closesAt: number } | null {
  try {
    return JSON.parse(readFileSync(join(n.stateDir, "pairing.json"), "utf8")) as { code: string; closesAt: number };
  } catch {
    return null;
  }
}

const currentCode = (n: RunningNode) => pairingFile(n)?.code ?? null;

/**
 * One wrong guess at the pairing code from `address`, as a prober on the LAN
 * would make it: a key exchange started with a wrong code. The answer alone
 * tells the prober its guess was wrong; it never needs to finish.
 */
async function wrongGuess(n: RunningNode, address: string): Promise<number> {
  const shown = currentCode(n)?.replace("-", "") ?? "000000";
  const wrong = shown === "999999" ? "999998" : "999999";
  await opaque.ready;
  const login = opaque.client.startLogin({ password: wrong });
  const dispatcher = agentFrom(address, n.pin);
  try {
    const res = await fetch(`${n.url}/v1/pair/start`, {
      dispatcher,
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ client: `prober ${address}`, request: login.startLoginRequest }),
    });
    const body = await res.json();
    if (res.status === 200) {
      const finished = opaque.client.finishLogin({
        clientLoginState: login.clientLoginState,
        loginResponse: PairStartResponse.parse(body).response,
        password: wrong,
        identifiers: pairingIdentifiers(n.pin.fingerprint),
        keyStretching: PAIRING_KEY_STRETCHING,
      });
      expect(finished).toBeUndefined();
    }
    return res.status;
  } finally {
    await dispatcher.close();
  }
}

describe("pairing under attack", () => {
  it("a machine in the middle during pairing (a TLS relay that reads everything) gets no token, no pin, and the app pins nothing", async () => {
    const n = await node();
    const relay = await startTlsRelay({ target: { host: "127.0.0.1", port: n.port, fingerprint: n.pin.fingerprint } });
    cleanups.push(() => relay.close());
    const { c, dataDir } = await coordinator();
    const code = n.pairingCode();

    const attempt = c.pairNode(relay.host, relay.port, code);
    await expect(attempt).rejects.toThrow(KilnError);
    await expect(attempt).rejects.toThrow(/something between this app and the node/);

    expect(relay.connections()).toBeGreaterThan(0);
    const seen = relay.seen();
    expect(seen).not.toMatch(/"token"/);
    expect(seen).not.toContain(code.replace("-", ""));
    expect(seen).not.toContain(code);
    // Nothing paired on either side: no node in the app, no pin on disk, no client on the node.
    expect(c.listNodes()).toEqual([]);
    expect(() => readFileSync(join(dataDir, "node-certificates.json"), "utf8")).toThrow();
    expect(n.logs.some((l) => l.msg === "paired a new client")).toBe(false);

    // The same app pairs directly with the same code afterwards: the relay burnt nothing.
    const paired = await c.pairNode("127.0.0.1", n.port, code);
    expect(paired.fingerprint).toBe(n.pin.fingerprint);
  });

  it("guesses from many addresses share one budget per window: the code changes after 20 and the window closes after 50, said in the node's log", async () => {
    const n = await node();
    const first = currentCode(n);
    expect(first).toMatch(/^\d{3}-\d{3}$/);
    const statuses: number[] = [];
    // 30 addresses of a /24, two guesses each: well under the per-address limit of 10.
    for (let i = 0; i < 60; i++) statuses.push(await wrongGuess(n, loopbackAddress(i % 30)));

    await n.waitForLog((l) => typeof l.msg === "string" && /pairing code changed after 20 wrong attempts/.test(l.msg));
    await n.waitForLog((l) => typeof l.msg === "string" && /pairing closed after 50 wrong attempts/.test(l.msg));
    expect(statuses.slice(0, 50).every((s) => s === 200)).toBe(true);
    // Closed: every attempt after the 50th is told so, whatever the code.
    expect(new Set(statuses.slice(50))).toEqual(new Set([403]));
    expect(currentCode(n)).not.toBe(first);

    // A person reopens the window on the node; a studio app then pairs with the new code.
    n.proc.kill("SIGUSR1");
    await expect.poll(() => pairingFile(n)?.closesAt ?? 0, { timeout: 10_000 }).toBeGreaterThan(0);
    const { c } = await coordinator();
    const paired = await c.pairNode("127.0.0.1", n.port, currentCode(n) as string);
    expect(paired.id).toBe(n.nodeId);
  });

  it("a second node claiming a paired node's id with another certificate is refused as a conflict; the first stays paired", async () => {
    const genuine = await node();
    // The impostor copies the genuine node's id file (it is advertised in the clear anyway) and has its own key.
    const impostorDir = mkdtempSync(join(tmpdir(), "kiln-impostor-"));
    mkdirSync(impostorDir, { recursive: true });
    copyFileSync(join(genuine.stateDir, "node.json"), join(impostorDir, "node.json"));
    const impostor = await node([], { stateDir: impostorDir });
    expect(impostor.nodeId).toBe(genuine.nodeId);
    expect(impostor.pin.fingerprint).not.toBe(genuine.pin.fingerprint);

    const { c } = await coordinator();
    await c.pairNode("127.0.0.1", genuine.port, genuine.pairingCode());
    const takeover = c.pairNode("127.0.0.1", impostor.port, impostor.pairingCode());
    await expect(takeover).rejects.toThrow(/already paired/);
    await expect(takeover).rejects.toMatchObject({ code: "E_CONFLICT" });

    const listed = c.listNodes().filter((x) => x.id === genuine.nodeId && x.status !== "conflict");
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ port: genuine.port, fingerprint: genuine.pin.fingerprint });
    // The token the impostor issued during the refused pairing is revoked again.
    const pairedApps = () =>
      (JSON.parse(readFileSync(join(impostorDir, "tokens.json"), "utf8")) as { tokens: unknown[] }).tokens.length;
    await expect.poll(pairedApps, { timeout: 10_000 }).toBe(0);
  });
});
