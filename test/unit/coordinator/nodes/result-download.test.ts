import { randomBytes } from "node:crypto";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { Agent } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DownloadPace, downloadResult } from "../../../../coordinator/nodes/result-download";
import { KilnError } from "../../../../shared/errors";

/** How the loopback "node" sends a result: pieces of the body, with pauses before each. */
type Plan = { pieces: number; pauseMs: number; longPauseAt?: number; longPauseMs?: number };

const body = randomBytes(8 * 1024);
const plans = new Map<string, Plan>();

async function send(res: ServerResponse, plan: Plan): Promise<void> {
  res.writeHead(200, { "content-type": "image/png", "content-length": body.length });
  const size = Math.ceil(body.length / plan.pieces);
  for (let k = 0; k < plan.pieces; k++) {
    await sleep(k === plan.longPauseAt ? (plan.longPauseMs ?? 0) : plan.pauseMs);
    if (res.destroyed) return;
    res.write(body.subarray(k * size, (k + 1) * size));
  }
  res.end();
}

const server = createServer((req, res) => {
  const plan = plans.get(req.url ?? "");
  if (!plan) {
    res.writeHead(404).end();
    return;
  }
  void send(res, plan);
});
const agent = new Agent();
let base = "";

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await agent.close();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

async function download(
  path: string,
  plan: Plan,
  pace: DownloadPace,
): Promise<{ got: Buffer | KilnError; ms: number }> {
  plans.set(path, plan);
  const t0 = performance.now();
  const got = await downloadResult(`${base}${path}`, agent, { pace }, body.length, `image ${path}`).catch(
    (error: unknown) => error as KilnError,
  );
  return { got, ms: performance.now() - t0 };
}

describe("downloadResult on a real loopback HTTP server, paced by the link rather than a total timeout", () => {
  it("takes a result whose bytes keep coming for longer than the stall timeout allows any pause", async () => {
    // 10 pieces 150 ms apart: 1.5 s in all, more than 3 × the 400 ms a pause may last.
    const { got, ms } = await download("/steady", { pieces: 10, pauseMs: 150 }, { stallMs: 400, minBytesPerS: 2048 });
    expect(ms).toBeGreaterThan(1200);
    expect(Buffer.isBuffer(got) && got.equals(body)).toBe(true);
  });

  it("takes the link as cut (E_UNREACHABLE, saying why) once no byte came for the stall timeout", async () => {
    const { got } = await download(
      "/paused",
      { pieces: 4, pauseMs: 20, longPauseAt: 2, longPauseMs: 3000 },
      { stallMs: 400, minBytesPerS: 4096 },
    );
    expect(got).toBeInstanceOf(KilnError);
    expect((got as KilnError).code).toBe("E_UNREACHABLE");
    expect((got as KilnError).message).toMatch(/image \/paused: no answer \(nothing for 0\.4 s\)/);
  });

  it("ends a trickled download at its deadline, the stall timeout plus the announced bytes at the least rate", async () => {
    // 8 KiB at 16 KiB/s may take 0.4 + 0.5 s; the node sends a piece every 200 ms, 16 pieces: 3.2 s.
    const { got, ms } = await download(
      "/trickle",
      { pieces: 16, pauseMs: 200 },
      { stallMs: 400, minBytesPerS: 16_384 },
    );
    expect((got as KilnError).code).toBe("E_UNREACHABLE");
    expect((got as KilnError).message).toMatch(/8192 bytes not whole after 0\.9 s/);
    expect(ms).toBeLessThan(2500);
  });
});
