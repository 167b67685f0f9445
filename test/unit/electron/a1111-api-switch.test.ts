import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Coordinator } from "../../../coordinator/coordinator";
import { A1111_SETTINGS_FILE, A1111ApiSwitch, loadA1111Settings } from "../../../electron/main/a1111-api-switch";
import { type InvokeEvent, registerIpcRouter } from "../../../electron/main/ipc-router";
import { createBridge } from "../../../electron/preload/bridge";
import type { BridgeReply, DesktopBridge } from "../../../shared/desktop-bridge";
import { freePort } from "../../support/free-port";

/**
 * The desktop app's switch for the A1111 API (issue 17, item 1), from the
 * preload's `window.kiln` through IPC to the main process and a real
 * coordinator, with the Electron binary replaced at its outermost seam: a fake
 * ipcMain/ipcRenderer pair that routes invokes as Electron does. What is checked
 * is what a person sees: the API answers an A1111 client on 127.0.0.1 at the
 * port they picked, stops when they turn it off, and is on again after a restart.
 */

const PAGE = "file:///app/out/renderer/index.html";
const WINDOW_ID = 41;

let dir: string;
let coordinator: Coordinator;
const log = pino({ level: "silent" });

/** The main process's side of a window: the switch and the IPC router, as main.ts wires them. */
function openApp(frameUrl = PAGE): { bridge: DesktopBridge; api: A1111ApiSwitch; close(): Promise<unknown> } {
  const handlers = new Map<string, (event: InvokeEvent, payload: unknown) => Promise<BridgeReply>>();
  const api = new A1111ApiSwitch({ coordinator, dataDir: dir, file: join(dir, A1111_SETTINGS_FILE), log });
  const unregister = registerIpcRouter({
    ipcMain: {
      handle: (channel, listener) => handlers.set(channel, listener),
      removeHandler: (channel) => handlers.delete(channel),
    },
    coordinator,
    isAllowedUrl: (url) => url === PAGE,
    windowContentsId: () => WINDOW_ID,
    shell: async () => ({ result: { ok: true } }),
    chooseFolder: async () => ({ result: { path: null } }),
    a1111Api: api,
  });
  const bridge = createBridge({
    invoke: async (channel, payload) => {
      const handler = handlers.get(channel);
      if (!handler) throw new Error(`No handler registered for '${channel}'`);
      return handler(
        { sender: { id: WINDOW_ID }, senderFrame: { url: frameUrl, parent: null } },
        structuredClone(payload),
      );
    },
    on: () => undefined,
    removeListener: () => undefined,
  });
  return {
    bridge,
    api,
    close: async () => {
      unregister();
      return api.stop();
    },
  };
}

/** A GET as an A1111 client sends it (Host may be set, as a DNS-rebinding page's would be). */
function get(port: number, path: string, host?: string): Promise<{ status: number; body: string } | string> {
  return new Promise((resolve) => {
    const req = httpRequest({ host: "127.0.0.1", port, path, headers: host ? { host } : {}, agent: false }, (res) => {
      let body = "";
      res.on("data", (c) => {
        body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    req.end();
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "kiln-a1111-switch-"));
  coordinator = new Coordinator({
    dataDir: dir,
    outputDir: join(dir, "out"),
    localNode: false,
    discovery: false,
    clientName: "switch-test",
    log,
  });
  await coordinator.start();
});

afterAll(async () => {
  await coordinator?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("the desktop app's A1111 API switch", () => {
  it("is off by default; turned on it serves the API on 127.0.0.1 at the chosen port, and off it stops", async () => {
    const app = openApp();
    expect(await app.api.start()).toEqual({ enabled: false, port: 7860, url: null, problem: null });
    expect(await app.bridge.a1111Api()).toEqual({ result: { enabled: false, port: 7860, url: null, problem: null } });

    const port = await freePort();
    expect(await get(port, "/sdapi/v1/sd-models")).toBe("ECONNREFUSED");
    const on = await app.bridge.setA1111Api({ enabled: true, port });
    expect(on).toEqual({ result: { enabled: true, port, url: `http://127.0.0.1:${port}`, problem: null } });
    // An A1111 client gets the farm's models (none here) and the API's flags; a page under another name does not.
    expect(await get(port, "/sdapi/v1/sd-models")).toEqual({ status: 200, body: "[]" });
    const flags = await get(port, "/sdapi/v1/cmd-flags");
    expect(typeof flags === "object" && JSON.parse(flags.body)).toMatchObject({ api: true, listen: false, port });
    expect(await get(port, "/sdapi/v1/sd-models", "rebound.evil.example")).toMatchObject({ status: 403 });
    // Kept where the next start reads it, readable by its owner only.
    const file = join(dir, A1111_SETTINGS_FILE);
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({ enabled: true, port });
    expect(statSync(file).mode & 0o077).toBe(0);

    // Another port: the old one is let go.
    const other = await freePort();
    expect((await app.bridge.setA1111Api({ enabled: true, port: other })) as unknown).toMatchObject({
      result: { url: `http://127.0.0.1:${other}` },
    });
    expect(await get(port, "/sdapi/v1/sd-models")).toBe("ECONNREFUSED");
    expect(await get(other, "/sdapi/v1/sd-models")).toMatchObject({ status: 200 });

    expect(await app.bridge.setA1111Api({ enabled: false, port: other })).toEqual({
      result: { enabled: false, port: other, url: null, problem: null },
    });
    expect(await get(other, "/sdapi/v1/sd-models")).toBe("ECONNREFUSED");
    await app.close();
  });

  it("serves again after a restart when it was left on", async () => {
    const port = await freePort();
    const first = openApp();
    await first.api.start();
    await first.bridge.setA1111Api({ enabled: true, port });
    await first.close();
    expect(await get(port, "/sdapi/v1/sd-models")).toBe("ECONNREFUSED");

    const next = openApp();
    const starting = next.api.start();
    // The settings opened while the app's start still listens: they show what it serves once up, not "Off".
    expect(await next.bridge.a1111Api()).toEqual({
      result: { enabled: true, port, url: `http://127.0.0.1:${port}`, problem: null },
    });
    expect(await starting).toEqual({ enabled: true, port, url: `http://127.0.0.1:${port}`, problem: null });
    expect(await get(port, "/sdapi/v1/sd-models")).toMatchObject({ status: 200 });
    await next.bridge.setA1111Api({ enabled: false, port });
    await next.close();
  });

  it("says when another program holds the port, and keeps the switch on for the next start", async () => {
    const taken: Server = createServer();
    const port = await new Promise<number>((resolve) =>
      taken.listen(0, "127.0.0.1", () => resolve((taken.address() as { port: number }).port)),
    );
    const app = openApp();
    await app.api.start();
    const refused = await app.bridge.setA1111Api({ enabled: true, port });
    expect(refused).toEqual({
      result: {
        enabled: true,
        port,
        url: null,
        problem: `port ${port} is in use by another program: pick another port`,
      },
    });
    expect(loadA1111Settings(join(dir, A1111_SETTINGS_FILE))).toEqual({ enabled: true, port });
    await new Promise((resolve) => taken.close(resolve));
    await app.bridge.setA1111Api({ enabled: false, port });
    await app.close();
  });

  it("refuses settings that are not, naming each field, and answers only the Kiln window", async () => {
    const app = openApp();
    await app.api.start();
    const bad = await app.bridge.setA1111Api({ enabled: "yes", port: 80 } as never);
    expect(bad).toMatchObject({ error: { code: "E_BAD_REQUEST" } });
    const fields = "error" in bad ? (bad.error.fields ?? []).map((f) => f.path).sort() : [];
    expect(fields).toEqual(["enabled", "port"]);
    expect("error" in bad && bad.error.message).toMatch(/1024 or above/);
    await app.close();

    const foreign = openApp("https://evil.example/");
    expect(await foreign.bridge.setA1111Api({ enabled: true, port: 7860 })).toMatchObject({
      error: { code: "E_UNAUTHORIZED" },
    });
    await foreign.close();
    // A file that is not ours falls back to off, field by field.
    writeFileSync(join(dir, A1111_SETTINGS_FILE), '{"enabled":"sure","port":99999}');
    expect(loadA1111Settings(join(dir, A1111_SETTINGS_FILE))).toEqual({ enabled: false, port: 7860 });
    writeFileSync(join(dir, A1111_SETTINGS_FILE), "not json");
    expect(loadA1111Settings(join(dir, A1111_SETTINGS_FILE))).toEqual({ enabled: false, port: 7860 });
  });
});
