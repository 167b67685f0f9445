import { EventEmitter } from "node:events";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import sharp from "sharp";
import { fetch as undiciFetch } from "undici";
import { afterAll, describe, expect, it, vi } from "vitest";
import { pinFromPem, pinnedAgent } from "../../../coordinator/nodes/node-client";
import { IPC_CHANNELS } from "../../../shared/desktop-bridge";
import { waitUntil } from "../../support/wait-until";

/**
 * The whole main process (electron/main/main.ts) against a fake `electron` module:
 * the Electron binary cannot run here. The coordinator and its local kiln-node
 * child are real (the child runs under this Node instead of Electron-as-Node).
 */
function fakeElectron() {
  const root = mkdtempSync(join(tmpdir(), "kiln-main-"));
  const paths: Record<string, string> = {
    appData: join(root, "appData"),
    pictures: join(root, "pictures"),
    logs: join(root, "logs"),
  };
  const state = { quitDone: false };
  const app = Object.assign(new EventEmitter(), {
    isPackaged: true,
    setPath: (name: string, path: string) => {
      paths[name] = path;
    },
    getPath: (name: string) => paths[name] as string,
    enableSandbox: () => undefined,
    requestSingleInstanceLock: () => true,
    whenReady: () => Promise.resolve(),
    // Like Electron: before-quit may be prevented; otherwise the app quits.
    quit: () => {
      let prevented = false;
      app.emit("before-quit", { preventDefault: () => (prevented = true) });
      if (!prevented) state.quitDone = true;
    },
  });
  const windows: FakeWindow[] = [];
  class FakeWindow extends EventEmitter {
    readonly webContents = Object.assign(new EventEmitter(), {
      id: 41,
      setWindowOpenHandler: () => undefined,
      isDestroyed: () => false,
      send: (..._args: unknown[]) => undefined,
    });
    focused = 0;
    constructor(readonly options: Record<string, unknown>) {
      super();
      windows.push(this);
    }
    loadFile = async (_file: string) => undefined;
    loadURL = async (_url: string) => undefined;
    show = () => undefined;
    maximize = () => undefined;
    isMinimized = () => false;
    restore = () => undefined;
    focus = () => {
      this.focused++;
    };
    isMaximized = () => false;
    getNormalBounds = () => ({ x: 10, y: 20, width: 1200, height: 800 });
  }
  const handlers = new Map<string, (event: unknown, payload: unknown) => Promise<unknown>>();
  const protocols = new Map<string, (request: { url: string }) => Promise<Response>>();
  const workArea = { x: 0, y: 0, width: 1920, height: 1080 };
  return {
    root,
    app,
    state,
    windows,
    handlers,
    protocols,
    privileged: [] as unknown[],
    electron: {
      app,
      BrowserWindow: FakeWindow,
      ipcMain: {
        handle: (channel: string, listener: (event: unknown, payload: unknown) => Promise<unknown>) =>
          handlers.set(channel, listener),
        removeHandler: (channel: string) => handlers.delete(channel),
      },
      protocol: {
        registerSchemesAsPrivileged: (schemes: unknown[]) => fake.privileged.push(...schemes),
        handle: (scheme: string, handler: (request: { url: string }) => Promise<Response>) =>
          protocols.set(scheme, handler),
      },
      session: {
        defaultSession: {
          webRequest: { onHeadersReceived: () => undefined },
          setPermissionRequestHandler: () => undefined,
          setPermissionCheckHandler: () => undefined,
        },
      },
      safeStorage: {
        isEncryptionAvailable: () => false,
        getSelectedStorageBackend: () => "basic_text",
        encryptString: () => Buffer.alloc(0),
        decryptString: () => "",
      },
      screen: { getAllDisplays: () => [{ workArea }], getPrimaryDisplay: () => ({ workArea }) },
      shell: { openPath: async () => "", showItemInFolder: () => undefined, openExternal: async () => undefined },
      dialog: {
        showErrorBox: (title: string, message: string) => fake.errors.push(`${title}: ${message}`),
        showOpenDialog: async (..._args: unknown[]) => ({ canceled: false, filePaths: [join(root, "picked")] }),
      },
    },
    errors: [] as string[],
  };
}
const fake = fakeElectron();
// The outermost seams; a factory runs at the first import of its module, after `fake` exists.
vi.mock("electron", () => fake.electron);
// Discovery is on in the app: a fake mDNS stack keeps this test off the machine's network.
const browsed: unknown[] = [];
vi.mock("bonjour-service", () => ({
  Bonjour: class {
    find(query: unknown) {
      browsed.push(query);
      return Object.assign(new EventEmitter(), { stop: () => undefined, update: () => undefined });
    }
    destroy(callback: () => void) {
      callback();
    }
  },
}));

// A failed test must not leave the local node running: quit the app the normal way.
afterAll(async () => {
  if (!fake.state.quitDone && fake.windows.length > 0) {
    fake.app.quit();
    await waitUntil(() => fake.state.quitDone, 30_000, "the app quit").catch(() => undefined);
  }
  rmSync(fake.root, { recursive: true, force: true });
});

describe("main process (fake electron: the Electron binary cannot run here)", () => {
  it("starts the window and the coordinator with its local node, bridges IPC, and quits cleanly", async () => {
    const signalsBefore = process.listenerCount("SIGTERM");
    // The default model library goes under XDG_DATA_HOME: here, not in this machine's home.
    const xdgBefore = process.env.XDG_DATA_HOME;
    process.env.XDG_DATA_HOME = join(fake.root, "xdg");
    await import("../../../electron/main/main");
    const userData = join(fake.root, "appData", "Kiln");

    // One window, secure options, the preload that electron-vite emits (CommonJS).
    const window = await waitUntil(() => fake.windows[0], 30_000, "the window");
    expect(fake.windows).toHaveLength(1);
    const prefs = window.options.webPreferences as Record<string, unknown>;
    expect(prefs).toMatchObject({ contextIsolation: true, sandbox: true, nodeIntegration: false, webSecurity: true });
    expect(prefs.preload).toBe(resolve("electron/preload/index.cjs"));
    expect(fake.privileged).toEqual([{ scheme: "kiln-image", privileges: { standard: true, secure: true } }]);
    expect(existsSync(join(fake.root, "pictures", "Kiln"))).toBe(true);

    // The bridge answers our page only, with the real coordinator behind it.
    expect([...fake.handlers.keys()].sort()).toEqual(
      [
        IPC_CHANNELS.command,
        IPC_CHANNELS.shell,
        IPC_CHANNELS.chooseFolder,
        IPC_CHANNELS.a1111Api,
        IPC_CHANNELS.setA1111Api,
      ].sort(),
    );
    // The A1111 API is off until a person turns it on in the settings.
    expect(
      await fake.handlers.get(IPC_CHANNELS.a1111Api)?.(
        {
          sender: { id: 41 },
          senderFrame: { url: pathToFileURL(resolve("electron/renderer/index.html")).href, parent: null },
        },
        null,
      ),
    ).toEqual({ result: { enabled: false, port: 7860, url: null, problem: null } });
    const page = pathToFileURL(resolve("electron/renderer/index.html")).href;
    const invoke = (payload: unknown, url = page) =>
      fake.handlers.get(IPC_CHANNELS.command)?.({ sender: { id: 41 }, senderFrame: { url, parent: null } }, payload);
    expect(await invoke({ id: 1, command: "listJobs", args: {} })).toEqual({ result: [] });

    // The model library: the default one (created), pushes on demand, changeable from the window; a change is
    // applied and saved where the next start reads it; the folder dialog hands back what a person picked.
    const library = join(fake.root, "xdg", "kiln", "models");
    expect(await invoke({ id: 10, command: "modelLibrary", args: {} })).toEqual({
      result: { dir: library, onDemand: true, changeable: true, packs: [] },
    });
    const picked = (await fake.handlers.get(IPC_CHANNELS.chooseFolder)?.(
      { sender: { id: 41 }, senderFrame: { url: page, parent: null } },
      null,
    )) as { result: { path: string } };
    expect(picked).toEqual({ result: { path: join(fake.root, "picked") } });
    mkdirSync(picked.result.path);
    expect(
      await invoke({ id: 11, command: "setModelLibrary", args: { dir: picked.result.path, onDemand: false } }),
    ).toMatchObject({ result: { dir: picked.result.path, onDemand: false, changeable: true } });
    expect(JSON.parse(readFileSync(join(userData, "library-settings.json"), "utf8"))).toEqual({
      dir: picked.result.path,
      onDemand: false,
    });
    if (xdgBefore === undefined) delete process.env.XDG_DATA_HOME;
    else process.env.XDG_DATA_HOME = xdgBefore;
    expect(await invoke({ id: 2, command: "listJobs", args: {} }, "https://evil.example/")).toMatchObject({
      error: { code: "E_UNAUTHORIZED" },
    });

    // "This computer" comes online: the kiln-node child started and answered.
    const local = await waitUntil(
      async () => {
        const reply = (await invoke({ id: 3, command: "listNodes", args: {} })) as {
          result: { local: boolean; status: string; port: number }[];
        };
        return reply.result.find((n) => n.local && n.status === "online");
      },
      30_000,
      '"This computer" online',
    );
    // Over TLS, trusting the certificate in the local node's state dir, as the coordinator does.
    const pin = pinFromPem(readFileSync(join(userData, "local-node", "tls-cert.pem"), "utf8"));
    const health = () => undiciFetch(`https://127.0.0.1:${local.port}/health`, { dispatcher: pinnedAgent(pin) });
    expect((await health()).ok).toBe(true);
    // Then discovery browses the LAN for nodes.
    expect(browsed).toEqual([{ type: "kiln", protocol: "tcp" }]);
    expect(existsSync(join(userData, "kiln.sqlite"))).toBe(true);
    expect(existsSync(join(userData, "node-tokens.json"))).toBe(false);

    // Images come from the output folder only; their thumbnails are cached in the data dir.
    const serve = fake.protocols.get("kiln-image");
    expect((await serve?.({ url: "kiln-image://image/?path=%2Fetc%2Fpasswd" }))?.status).toBe(404);
    const stored = join(fake.root, "pictures", "Kiln", "0001.png");
    writeFileSync(
      stored,
      await sharp({ create: { width: 64, height: 64, channels: 3, background: "#333" } })
        .png()
        .toBuffer(),
    );
    const thumbnail = await serve?.({ url: `kiln-image://image/?path=${encodeURIComponent(stored)}&size=256` });
    expect(thumbnail?.headers.get("content-type")).toBe("image/webp");
    expect(readdirSync(join(userData, "thumbnails"))).toHaveLength(1);

    // A second launch brings the window to the front.
    fake.app.emit("second-instance");
    expect(window.focused).toBe(1);

    // Quit: before-quit is held until the coordinator (and the local node) stopped.
    window.emit("close");
    fake.app.quit();
    expect(fake.state.quitDone).toBe(false);
    await waitUntil(() => fake.state.quitDone, 30_000, "the app quit");
    await expect(health()).rejects.toThrow();
    expect(JSON.parse(readFileSync(join(userData, "window-state.json"), "utf8"))).toEqual({
      x: 10,
      y: 20,
      width: 1200,
      height: 800,
      maximized: false,
    });
    expect(fake.errors).toEqual([]);
    expect(process.listenerCount("SIGTERM")).toBe(signalsBefore + 1);
    expect(EventEmitter.listenerCount(fake.app, "before-quit")).toBe(1);
  }, 60_000);
});
