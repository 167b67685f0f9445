import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { IpcRendererEvent } from "electron";
import pino from "pino";
import sharp from "sharp";
import { afterEach, beforeEach, describe, expect, it, type Mock, vi } from "vitest";
import { Coordinator } from "../../../coordinator/coordinator";
import {
  forwardUiEvents,
  type InvokeEvent,
  type IpcMainLike,
  registerIpcRouter,
} from "../../../electron/main/ipc-router";
import { isAllowedSender } from "../../../electron/main/security";
import { createBridge, type IpcRendererLike } from "../../../electron/preload/bridge";
import { type BridgeReply, type ChosenFolder, IPC_CHANNELS, type ShellRequest } from "../../../shared/desktop-bridge";

/**
 * The Electron binary cannot run here, so ipcMain is a fake that behaves like the
 * real one where it matters: one handler per channel, and an invoke on a channel
 * without a handler is rejected.
 */
class FakeIpcMain implements IpcMainLike {
  readonly handlers = new Map<string, (event: InvokeEvent, payload: unknown) => Promise<BridgeReply>>();

  handle(channel: string, listener: (event: InvokeEvent, payload: unknown) => Promise<BridgeReply>): void {
    if (this.handlers.has(channel)) throw new Error(`Attempted to register a second handler for '${channel}'`);
    this.handlers.set(channel, listener);
  }

  removeHandler(channel: string): void {
    this.handlers.delete(channel);
  }

  async invoke(channel: string, event: InvokeEvent, payload: unknown): Promise<unknown> {
    const handler = this.handlers.get(channel);
    if (!handler)
      throw new Error(`Error invoking remote method '${channel}': Error: No handler registered for '${channel}'`);
    // IPC arguments are structured-cloned on the way in.
    return handler(event, structuredClone(payload));
  }
}

const INDEX_HTML = "/opt/Kiln/resources/app/out/renderer/index.html";
const WINDOW_ID = 7;
const ours: InvokeEvent = { sender: { id: WINDOW_ID }, senderFrame: { url: `file://${INDEX_HTML}`, parent: null } };

let dirs: string[] = [];
let coordinator: Coordinator;
let ipcMain: FakeIpcMain;
let shell: Mock<(request: ShellRequest) => Promise<BridgeReply<{ ok: true }>>>;
let chooseFolder: Mock<() => Promise<BridgeReply<ChosenFolder>>>;
let unregister: () => void;

function tempDir(label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `kiln-ipc-${label}-`));
  dirs.push(dir);
  return dir;
}

beforeEach(() => {
  coordinator = new Coordinator({
    dataDir: tempDir("data"),
    outputDir: tempDir("out"),
    localNode: false,
    discovery: false,
    clientName: "test",
    log: pino({ level: "silent" }),
  });
  ipcMain = new FakeIpcMain();
  shell = vi.fn(async () => ({ result: { ok: true as const } }));
  chooseFolder = vi.fn(async () => ({ result: { path: "/srv/kiln-models" } }));
  unregister = registerIpcRouter({
    ipcMain,
    coordinator,
    isAllowedUrl: (url) => isAllowedSender(url, { kind: "file", indexHtml: INDEX_HTML }),
    windowContentsId: () => WINDOW_ID,
    shell,
    chooseFolder,
  });
});

afterEach(async () => {
  unregister();
  await coordinator.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs = [];
});

const command = (payload: unknown, event: InvokeEvent = ours) => ipcMain.invoke(IPC_CHANNELS.command, event, payload);

describe("IPC router (fake ipcMain: the Electron binary cannot run here)", () => {
  it("registers handlers for the command, shell and folder-dialog channels only, and unknown channels are refused", async () => {
    expect([...ipcMain.handlers.keys()].sort()).toEqual(
      [IPC_CHANNELS.command, IPC_CHANNELS.shell, IPC_CHANNELS.chooseFolder].sort(),
    );
    await expect(ipcMain.invoke("kiln:eval", ours, "process.exit()")).rejects.toThrow(/No handler registered/);
    await expect(ipcMain.invoke(IPC_CHANNELS.event, ours, {})).rejects.toThrow(/No handler registered/);
    unregister();
    expect(ipcMain.handlers.size).toBe(0);
  });

  it("valid calls reach the real coordinator and come back as {result}", async () => {
    expect(await command({ id: 1, command: "listJobs", args: {} })).toEqual({ result: [] });
    expect(await command({ id: 2, command: "listNodes", args: {} })).toEqual({ result: [] });
    expect(await command({ id: 3, command: "pauseQueue", args: {} })).toEqual({ result: { ok: true } });
    expect(coordinator.ledger.isQueuePaused()).toBe(true);
    // The preload always sends the args key; undefined takes the contract's defaults.
    expect(await command({ id: 4, command: "listJobs", args: undefined })).toEqual({ result: [] });
    // A picture for the init image store: validated here, stored by the coordinator.
    const png = await sharp({ create: { width: 40, height: 24, channels: 3, background: "#123" } })
      .png()
      .toBuffer();
    const stored = await command({ id: 5, command: "storeInitImage", args: { data: png.toString("base64") } });
    expect(stored).toEqual({ result: { sha256: expect.stringMatching(/^[0-9a-f]{64}$/), width: 40, height: 24 } });
    expect(await command({ id: 6, command: "storeInitImage", args: { data: "%%%" } })).toMatchObject({
      error: { code: "E_BAD_REQUEST", fields: [{ path: "data" }] },
    });
  });

  it("refuses foreign senders with E_UNAUTHORIZED before looking at the request", async () => {
    const spy = vi.spyOn(coordinator, "pauseQueue");
    const payload = { id: 1, command: "pauseQueue", args: {} };
    const foreign: InvokeEvent[] = [
      // Another webContents (a devtools extension, a second window).
      { ...ours, sender: { id: WINDOW_ID + 1 } },
      // Our window after navigating somewhere else.
      { ...ours, senderFrame: { url: "https://evil.example/", parent: null } },
      // Another file on disk.
      { ...ours, senderFrame: { url: "file:///tmp/evil.html", parent: null } },
      // A subframe of our page.
      { ...ours, senderFrame: { url: `file://${INDEX_HTML}`, parent: {} } },
      // A frame that is gone.
      { ...ours, senderFrame: null },
    ];
    for (const event of foreign) {
      const reply = await command(payload, event);
      expect(reply).toMatchObject({ error: { code: "E_UNAUTHORIZED" } });
      expect(await ipcMain.invoke(IPC_CHANNELS.shell, event, { action: "revealPath", target: "/x" })).toMatchObject({
        error: { code: "E_UNAUTHORIZED" },
      });
      expect(await ipcMain.invoke(IPC_CHANNELS.chooseFolder, event, null)).toMatchObject({
        error: { code: "E_UNAUTHORIZED" },
      });
    }
    expect(spy).not.toHaveBeenCalled();
    expect(shell).not.toHaveBeenCalled();
    expect(chooseFolder).not.toHaveBeenCalled();
  });

  it("refuses a sender while there is no window", async () => {
    unregister();
    ipcMain = new FakeIpcMain();
    unregister = registerIpcRouter({
      ipcMain,
      coordinator,
      isAllowedUrl: () => true,
      windowContentsId: () => null,
      shell,
      chooseFolder,
    });
    expect(await command({ id: 1, command: "listJobs", args: {} })).toMatchObject({
      error: { code: "E_UNAUTHORIZED" },
    });
  });

  it("refuses malformed requests and invalid arguments with E_BAD_REQUEST and the fields", async () => {
    const unknownCommand = (await command({ id: 1, command: "deleteEverything", args: {} })) as BridgeReply;
    expect(unknownCommand).toMatchObject({ error: { code: "E_BAD_REQUEST", fields: [{ path: "command" }] } });

    for (const garbage of [null, "listJobs", 42, [], { command: "listJobs" }]) {
      expect(await command(garbage)).toMatchObject({ error: { code: "E_BAD_REQUEST" } });
    }

    const badArgs = (await command({
      id: 2,
      command: "submitJob",
      args: { prompts: [], width: 13 },
    })) as { error: { code: string; message: string; fields: { path: string }[] } };
    expect(badArgs.error.code).toBe("E_BAD_REQUEST");
    expect(badArgs.error.fields.map((f) => f.path)).toEqual(expect.arrayContaining(["prompts", "width"]));
    expect(coordinator.listJobs()).toEqual([]);

    expect(await ipcMain.invoke(IPC_CHANNELS.shell, ours, { action: "rm", target: "/" })).toMatchObject({
      error: { code: "E_BAD_REQUEST", fields: [{ path: "action" }] },
    });
    expect(shell).not.toHaveBeenCalled();
  });

  it("returns the coordinator's errors as {error:{code,message,fields}}", async () => {
    const reply = await command({ id: 1, command: "submitJob", args: { prompts: ["a kiln"], model: "sdxl-turbo" } });
    expect(reply).toEqual({
      error: {
        code: "E_MODEL_MISSING",
        message: expect.stringContaining('no node of the farm has model "sdxl-turbo"'),
        fields: [{ path: "model", message: "is not installed on any node" }],
      },
    });
  });

  it("never throws across the bridge: a failing handler becomes E_INTERNAL", async () => {
    vi.spyOn(coordinator, "listNodes").mockImplementation(() => {
      throw new Error("disk on fire");
    });
    expect(await command({ id: 1, command: "listNodes", args: {} })).toEqual({
      error: { code: "E_INTERNAL", message: "disk on fire" },
    });
    shell.mockRejectedValueOnce(new Error("no desktop"));
    expect(
      await ipcMain.invoke(IPC_CHANNELS.shell, ours, { action: "openExternal", target: "https://a.example" }),
    ).toEqual({ error: { code: "E_INTERNAL", message: "no desktop" } });
  });

  it("passes valid shell requests to the shell actions", async () => {
    const request = { action: "openExternal", target: "https://kiln.example/docs" };
    expect(await ipcMain.invoke(IPC_CHANNELS.shell, ours, request)).toEqual({ result: { ok: true } });
    expect(shell).toHaveBeenCalledWith(request);
  });

  it("serves the preload's bridge end to end (fake ipcRenderer wired to the fake ipcMain)", async () => {
    const ipcRenderer: IpcRendererLike = {
      invoke: (channel, payload) => ipcMain.invoke(channel, ours, payload),
      on: () => undefined,
      removeListener: () => undefined,
    };
    const kiln = createBridge(ipcRenderer);
    expect(await kiln.call("listJobs", {})).toEqual({ result: [] });
    expect(await kiln.call("setPriority", { jobId: "j1", priority: 1000 })).toMatchObject({
      error: { code: "E_BAD_REQUEST", fields: [{ path: "priority" }] },
    });
    expect(await kiln.shell({ action: "openExternal", target: "https://kiln.example" })).toEqual({
      result: { ok: true },
    });
    // The folder dialog answers with the folder a person picked, whatever the renderer sends.
    expect(await kiln.chooseFolder()).toEqual({ result: { path: "/srv/kiln-models" } });
    expect(chooseFolder).toHaveBeenCalledTimes(1);
  });
});

describe("coordinator events to the window", () => {
  it("sends every ui event on the event channel, skips a destroyed window, and unsubscribes", () => {
    const send = vi.fn();
    let destroyed = false;
    const stop = forwardUiEvents(coordinator, () => ({ isDestroyed: () => destroyed, send }));
    const event = { type: "queue.changed" as const, jobs: [], queuePaused: false };
    coordinator.emit("ui", event);
    expect(send).toHaveBeenCalledWith(IPC_CHANNELS.event, event);
    destroyed = true;
    coordinator.emit("ui", event);
    expect(send).toHaveBeenCalledTimes(1);
    destroyed = false;
    stop();
    coordinator.emit("ui", event);
    expect(send).toHaveBeenCalledTimes(1);
    expect(coordinator.listenerCount("ui")).toBe(0);
  });

  it("sends nothing while there is no window", () => {
    forwardUiEvents(coordinator, () => null);
    expect(() => coordinator.emit("ui", { type: "nodes.changed", nodes: [] })).not.toThrow();
  });

  it("delivers events to a bridge listener without Electron's IPC event", () => {
    const listeners = new Set<(event: IpcRendererEvent, payload: unknown) => void>();
    const ipcRenderer: IpcRendererLike = {
      invoke: async () => undefined,
      on: (_channel, listener) => listeners.add(listener),
      removeListener: (_channel, listener) => listeners.delete(listener),
    };
    forwardUiEvents(coordinator, () => ({
      isDestroyed: () => false,
      send: (_channel, payload) => {
        for (const l of listeners) l({ sender: ipcRenderer } as unknown as IpcRendererEvent, payload);
      },
    }));
    const received: unknown[][] = [];
    createBridge(ipcRenderer).onEvent((...args) => received.push(args));
    coordinator.emit("ui", { type: "nodes.changed", nodes: [] });
    expect(received).toEqual([[{ type: "nodes.changed", nodes: [] }]]);
  });
});
