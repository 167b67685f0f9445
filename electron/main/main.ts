import { mkdirSync } from "node:fs";
import { homedir, hostname } from "node:os";
import { join } from "node:path";
import { app, type BrowserWindow, dialog, ipcMain, protocol, safeStorage, session, shell } from "electron";
import pino from "pino";
import { Coordinator } from "../../coordinator/coordinator";
import { ThumbnailCache } from "../../coordinator/ui-api/thumbnail-cache";
import { warmThumbnails } from "../../coordinator/ui-api/thumbnail-warmer";
import { A1111_SETTINGS_FILE, A1111ApiSwitch } from "./a1111-api-switch";
import { createImageProtocol, IMAGE_SCHEME, IMAGE_SCHEME_PRIVILEGES } from "./image-protocol";
import { forwardUiEvents, registerIpcRouter } from "./ipc-router";
import {
  LIBRARY_SETTINGS_FILE,
  loadLibrarySettings,
  saveLibrarySettings,
  startupLibrary,
} from "./library-settings-file";
import { openTokenVault } from "./safe-storage-vault";
import { CSP, DEV_CSP, hardenSession, isAllowedSender, type RendererSource } from "./security";
import { createShellActions } from "./shell-actions";
import { createMainWindow } from "./window";

/**
 * The desktop app's main process: one window, the coordinator in-process (it starts
 * "This computer", a kiln-node child run by this same binary with
 * ELECTRON_RUN_AS_NODE), the IPC bridge between them, and a clean quit that stops
 * the node and leaves the queue on disk.
 */

// The same folder in development (package name "kiln") and packaged (product name "Kiln").
app.setPath("userData", join(app.getPath("appData"), "Kiln"));
app.enableSandbox();

// electron-vite dev serves the renderer and says where; a packaged app never trusts that variable.
const rendererSource: RendererSource =
  !app.isPackaged && process.env.ELECTRON_RENDERER_URL
    ? { kind: "dev", url: process.env.ELECTRON_RENDERER_URL }
    : { kind: "file", indexHtml: join(import.meta.dirname, "../renderer/index.html") };
// electron-vite emits the preload as CommonJS (a sandboxed preload cannot be ESM).
const preloadPath = join(import.meta.dirname, "../preload/index.cjs");

const log = app.isPackaged
  ? pino(pino.destination({ dest: join(app.getPath("logs"), "kiln.log"), mkdir: true }))
  : pino(pino.destination(2));

let window: BrowserWindow | null = null;
let coordinator: Coordinator | null = null;
let a1111Api: A1111ApiSwitch | null = null;
let stopping: Promise<void> | null = null;
let stopped = false;

function openWindow(): void {
  window = createMainWindow({
    preloadPath,
    renderer: rendererSource,
    stateFile: join(app.getPath("userData"), "window-state.json"),
    log,
  });
  window.on("closed", () => {
    window = null;
  });
}

async function start(): Promise<void> {
  const dataDir = app.getPath("userData");
  const outputDir = join(app.getPath("pictures"), "Kiln");
  mkdirSync(outputDir, { recursive: true });
  hardenSession(session.defaultSession, rendererSource.kind === "dev" ? DEV_CSP : CSP, rendererSource);
  const thumbnails = new ThumbnailCache({ dataDir });
  protocol.handle(
    IMAGE_SCHEME,
    createImageProtocol(outputDir, thumbnails, async (sha256) => (await coordinator?.initImages.get(sha256)) ?? null),
  );

  const settingsFile = join(dataDir, LIBRARY_SETTINGS_FILE);
  const saved = loadLibrarySettings(settingsFile);
  const library = startupLibrary(saved, process.env, homedir());
  if (library.problem)
    log.warn({ library: saved.dir, reason: library.problem }, "the saved model library is not usable");
  const running = new Coordinator({
    dataDir,
    outputDir,
    // "This computer" renders from the library it starts with, as `kiln serve`'s embedded node does.
    localNode: { args: library.dir ? ["--models", library.dir] : [] },
    ...(library.dir ? { modelLibrary: library.dir } : {}),
    modelPushOnDemand: saved.onDemand,
    libraryChangeable: true,
    onLibraryChanged: (settings) => saveLibrarySettings(settingsFile, settings),
    discovery: true,
    clientName: `Kiln on ${hostname()}`,
    log,
    vault: openTokenVault(dataDir, safeStorage, process.platform),
  });
  coordinator = running;
  // The A1111 API, when its switch in the settings is on: 127.0.0.1 only, at the port the person picked.
  const api = new A1111ApiSwitch({ coordinator: running, dataDir, file: join(dataDir, A1111_SETTINGS_FILE), log });
  a1111Api = api;
  warmThumbnails(running, outputDir, thumbnails, log);
  registerIpcRouter({
    ipcMain,
    coordinator: running,
    isAllowedUrl: (url) => isAllowedSender(url, rendererSource),
    windowContentsId: () => window?.webContents.id ?? null,
    shell: createShellActions(outputDir, shell),
    chooseFolder: async () => {
      const options = {
        title: "Model library folder",
        properties: ["openDirectory" as const, "createDirectory" as const],
      };
      const picked = window ? await dialog.showOpenDialog(window, options) : await dialog.showOpenDialog(options);
      return { result: { path: picked.canceled ? null : (picked.filePaths[0] ?? null) } };
    },
    a1111Api: api,
  });
  forwardUiEvents(running, () => window?.webContents ?? null);
  // The window first: the queue is usable while the local node loads its models.
  openWindow();
  await running.start();
  log.info({ dataDir, outputDir }, "coordinator started");
  await api.start();
}

if (!app.requestSingleInstanceLock()) {
  // Another Kiln runs: it gets the "second-instance" event and comes to the front.
  app.quit();
} else {
  protocol.registerSchemesAsPrivileged([IMAGE_SCHEME_PRIVILEGES]);

  app.on("second-instance", () => {
    if (!window) {
      if (coordinator && !stopping) openWindow();
      return;
    }
    if (window.isMinimized()) window.restore();
    window.focus();
  });

  // On macOS the app (and the farm) keeps running with its window closed, as Mac apps do.
  app.on("window-all-closed", () => {
    if (process.platform !== "darwin") app.quit();
  });
  app.on("activate", () => {
    if (!window && coordinator && !stopping) openWindow();
  });

  // Stop the coordinator (and with it the embedded node) before the process goes;
  // the queue is already on disk, so anything in flight simply runs again next time.
  app.on("before-quit", (event) => {
    if (stopped || !coordinator) return;
    event.preventDefault();
    const running = coordinator;
    stopping ??= (a1111Api?.stop() ?? Promise.resolve())
      .then(() => running.stop())
      .catch((error: unknown) => log.error({ err: error }, "the coordinator did not stop cleanly"))
      .finally(() => {
        stopped = true;
        app.quit();
      });
  });
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => app.quit());

  app
    .whenReady()
    .then(start)
    .catch((error: unknown) => {
      log.error({ err: error }, "Kiln could not start");
      dialog.showErrorBox("Kiln could not start", (error as Error).message);
      app.quit();
    });
}
