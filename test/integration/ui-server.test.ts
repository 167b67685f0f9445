import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { Coordinator } from "../../coordinator/coordinator";
import { startUiServer, UI_CSP } from "../../coordinator/ui-api/ui-server";
import { connectUi } from "../support/ui-client";

let coordinator: Coordinator;
let server: Awaited<ReturnType<typeof startUiServer>>;
const token = "t0ken-for-the-ui-api-test";
const outputDir = mkdtempSync(join(tmpdir(), "kiln-ui-out-"));
const secret = join(mkdtempSync(join(tmpdir(), "kiln-ui-secret-")), "secret.png");

beforeAll(async () => {
  coordinator = new Coordinator({
    dataDir: mkdtempSync(join(tmpdir(), "kiln-ui-data-")),
    outputDir,
    localNode: false,
    discovery: false,
    clientName: "test",
    log: pino({ level: "silent" }),
  });
  await coordinator.start();
  mkdirSync(join(outputDir, "2026-01-01", "job"), { recursive: true });
  writeFileSync(join(outputDir, "2026-01-01", "job", "00000-1.png"), Buffer.from("png-bytes"));
  writeFileSync(secret, "outside the output folder");
  symlinkSync(secret, join(outputDir, "escape.png"));
  server = await startUiServer({
    coordinator,
    host: "127.0.0.1",
    port: 0,
    token,
    log: pino({ level: "silent" }),
    outputDir,
    uiDir: null,
  });
});

afterAll(async () => {
  await server.app.close();
  await coordinator.stop();
});

describe("UI API server (kiln serve) on 127.0.0.1", () => {
  it("refuses a WebSocket without the right token", async () => {
    const socket = new WebSocket(`ws://127.0.0.1:${server.port}/api?token=wrong`);
    const code = await new Promise<number>((resolve) => socket.on("close", (c) => resolve(c)));
    expect(code).toBe(4401);
  });

  it("answers contract calls and reports invalid arguments by field", async () => {
    const ui = await connectUi(server.port, token);
    expect(await ui.call("listJobs", { includeFinished: true })).toEqual([]);
    await expect(ui.call("submitJob", { prompts: ["x"], width: 500 })).rejects.toMatchObject({
      code: "E_BAD_REQUEST",
      fields: [{ path: "width", message: expect.stringMatching(/multiple of 8/) }],
    });
    await expect(ui.call("submitJob", { prompts: ["x"] })).rejects.toMatchObject({ code: "E_MODEL_MISSING" });
    ui.close();
  });

  it("pauses and resumes the whole queue: queueState answers, queue.changed carries it", async () => {
    const ui = await connectUi(server.port, token);
    expect(await ui.call("queueState", {})).toEqual({ paused: false, reason: null });
    expect(await ui.call("pauseQueue", {})).toEqual({ ok: true });
    expect(await ui.call("queueState", {})).toEqual({ paused: true, reason: null });
    await ui.events.waitFor(
      (e) => e.type === "queue.changed" && e.queuePaused,
      5000,
      () => "no queue.changed with queuePaused: true",
    );
    await ui.call("resumeQueue", {});
    expect(await ui.call("queueState", {})).toEqual({ paused: false, reason: null });
    await ui.events.waitFor(
      (e) => e.type === "queue.changed" && !e.queuePaused,
      5000,
      () => "no queue.changed with queuePaused: false",
    );
    ui.close();
  });

  it("serves stored images only from the output folder, with the token", async () => {
    const base = `http://127.0.0.1:${server.port}/images`;
    const inside = join(outputDir, "2026-01-01", "job", "00000-1.png");
    const ok = await fetch(`${base}?path=${encodeURIComponent(inside)}&token=${token}`);
    expect(ok.status).toBe(200);
    expect(ok.headers.get("content-security-policy")).toBe(UI_CSP);
    expect((await fetch(`${base}?path=${encodeURIComponent(inside)}&token=nope`)).status).toBe(401);
    for (const trick of [
      secret,
      join(outputDir, "..", "x.png"),
      join(outputDir, "escape.png"),
      "relative.png",
      `${inside}\0`,
    ]) {
      expect((await fetch(`${base}?path=${encodeURIComponent(trick)}&token=${token}`)).status, trick).toBe(404);
    }
  });
});
