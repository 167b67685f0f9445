import { beforeAll, describe, expect, it, vi } from "vitest";
import { IPC_CHANNELS } from "../../../shared/desktop-bridge";

// The outermost seam: the `electron` package itself (its binary cannot run here).
const electron = vi.hoisted(() => {
  const listeners = new Map<string, Set<(...args: unknown[]) => void>>();
  const ipcRenderer = {
    invoke: vi.fn(async (_channel: string, _payload: unknown): Promise<unknown> => ({ result: "ok" })),
    send: vi.fn(),
    on: vi.fn((channel: string, listener: (...args: unknown[]) => void) => {
      listeners.set(channel, (listeners.get(channel) ?? new Set()).add(listener));
      return ipcRenderer;
    }),
    removeListener: vi.fn((channel: string, listener: (...args: unknown[]) => void) => {
      listeners.get(channel)?.delete(listener);
      return ipcRenderer;
    }),
    emit(channel: string, ...args: unknown[]) {
      for (const listener of listeners.get(channel) ?? []) listener(...args);
    },
  };
  const exposed: Record<string, unknown> = {};
  const contextBridge = {
    exposeInMainWorld: vi.fn((key: string, api: unknown) => {
      exposed[key] = api;
    }),
  };
  return { ipcRenderer, contextBridge, exposed };
});
vi.mock("electron", () => ({ contextBridge: electron.contextBridge, ipcRenderer: electron.ipcRenderer }));

type Kiln = {
  call: (command: string, args: unknown) => Promise<unknown>;
  shell: (request: unknown) => Promise<unknown>;
  onEvent: (listener: (...args: unknown[]) => void) => () => void;
  chooseFolder: () => Promise<unknown>;
  a1111Api: () => Promise<unknown>;
  setA1111Api: (settings: unknown) => Promise<unknown>;
};
let kiln: Kiln;

beforeAll(async () => {
  await import("../../../electron/preload/index");
  kiln = electron.exposed.kiln as Kiln;
});

/** Every value reachable from `root` (own properties, a few levels deep). */
function reachable(root: unknown, depth = 4): unknown[] {
  if (depth === 0 || root === null || (typeof root !== "object" && typeof root !== "function")) return [root];
  return [root, ...Object.values(root as object).flatMap((v) => reachable(v, depth - 1))];
}

describe("preload (fake contextBridge and ipcRenderer: the Electron binary cannot run here)", () => {
  it("exposes exactly one object, window.kiln, with call, shell, chooseFolder, the A1111 API switch and onEvent", () => {
    expect(electron.contextBridge.exposeInMainWorld).toHaveBeenCalledTimes(1);
    expect(Object.keys(electron.exposed)).toEqual(["kiln"]);
    expect(Object.keys(kiln).sort()).toEqual(["a1111Api", "call", "chooseFolder", "onEvent", "setA1111Api", "shell"]);
    for (const value of Object.values(kiln)) expect(typeof value).toBe("function");
  });

  it("does not leak ipcRenderer or any of its methods", () => {
    const values = reachable(kiln);
    expect(values).not.toContain(electron.ipcRenderer);
    for (const method of [electron.ipcRenderer.invoke, electron.ipcRenderer.send, electron.ipcRenderer.on]) {
      expect(values).not.toContain(method);
    }
  });

  it("calls the command channel with a numbered request and returns the reply", async () => {
    electron.ipcRenderer.invoke.mockClear();
    electron.ipcRenderer.invoke
      .mockResolvedValueOnce({ result: [] })
      .mockResolvedValueOnce({ error: { code: "E_BAD_REQUEST", message: "no" } });
    expect(await kiln.call("listJobs", { includeFinished: false })).toEqual({ result: [] });
    expect(await kiln.call("pauseQueue", {})).toEqual({ error: { code: "E_BAD_REQUEST", message: "no" } });
    const [first, second] = electron.ipcRenderer.invoke.mock.calls as [string, { id: number }][];
    expect(first).toEqual([
      IPC_CHANNELS.command,
      { id: expect.any(Number), command: "listJobs", args: { includeFinished: false } },
    ]);
    expect(second).toEqual([IPC_CHANNELS.command, { id: (first?.[1].id ?? -1) + 1, command: "pauseQueue", args: {} }]);
  });

  it("sends shell requests on the shell channel", async () => {
    electron.ipcRenderer.invoke.mockResolvedValueOnce({ result: { ok: true } });
    const request = { action: "revealPath", target: "/home/a/Pictures/Kiln/x.png" };
    expect(await kiln.shell(request)).toEqual({ result: { ok: true } });
    expect(electron.ipcRenderer.invoke).toHaveBeenLastCalledWith(IPC_CHANNELS.shell, request);
  });

  it("asks for the folder dialog on its own channel, sending nothing of the renderer's", async () => {
    electron.ipcRenderer.invoke.mockResolvedValueOnce({ result: { path: "/srv/kiln-models" } });
    expect(await kiln.chooseFolder()).toEqual({ result: { path: "/srv/kiln-models" } });
    expect(electron.ipcRenderer.invoke).toHaveBeenLastCalledWith(IPC_CHANNELS.chooseFolder, null);
  });

  it("reads and sets the A1111 API switch on its own channels", async () => {
    electron.ipcRenderer.invoke.mockResolvedValueOnce({
      result: { enabled: false, port: 7860, url: null, problem: null },
    });
    expect(await kiln.a1111Api()).toMatchObject({ result: { enabled: false } });
    expect(electron.ipcRenderer.invoke).toHaveBeenLastCalledWith(IPC_CHANNELS.a1111Api, null);
    electron.ipcRenderer.invoke.mockResolvedValueOnce({
      result: { enabled: true, port: 7861, url: "x", problem: null },
    });
    await kiln.setA1111Api({ enabled: true, port: 7861 });
    expect(electron.ipcRenderer.invoke).toHaveBeenLastCalledWith(IPC_CHANNELS.setA1111Api, {
      enabled: true,
      port: 7861,
    });
  });

  it("never throws: a failed invoke comes back as {error}", async () => {
    electron.ipcRenderer.invoke.mockRejectedValueOnce(new Error("An object could not be cloned."));
    expect(await kiln.call("listJobs", { f: () => 1 })).toEqual({
      error: { code: "E_INTERNAL", message: "An object could not be cloned." },
    });
  });

  it("hands listeners the event alone and unsubscribes", () => {
    const listener = vi.fn();
    const unsubscribe = kiln.onEvent(listener);
    const ipcEvent = { sender: electron.ipcRenderer, ports: [] };
    electron.ipcRenderer.emit(IPC_CHANNELS.event, ipcEvent, { type: "queue.changed", jobs: [] });
    expect(listener).toHaveBeenCalledTimes(1);
    expect(listener.mock.calls[0]).toEqual([{ type: "queue.changed", jobs: [] }]);
    unsubscribe();
    electron.ipcRenderer.emit(IPC_CHANNELS.event, ipcEvent, { type: "queue.changed", jobs: [] });
    expect(listener).toHaveBeenCalledTimes(1);
  });
});
