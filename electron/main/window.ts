import { BrowserWindow, type BrowserWindowConstructorOptions, screen, shell } from "electron";
import type { Logger } from "pino";
import { guardNavigation, type RendererSource } from "./security";
import { loadWindowState, MIN_SIZE, placeWindow, saveWindowState } from "./window-state";

/**
 * The one window's options. The renderer is a web page with no Node: isolated from
 * the preload's world, sandboxed, same-origin policy on, no <webview>; it reaches
 * the app only through `window.kiln`.
 */
export function windowOptions(preloadPath: string): BrowserWindowConstructorOptions {
  return {
    title: "Kiln",
    minWidth: MIN_SIZE.width,
    minHeight: MIN_SIZE.height,
    // Shown once the first paint is ready, so the window never flashes white.
    show: false,
    backgroundColor: "#15161a",
    autoHideMenuBar: true,
    webPreferences: {
      preload: preloadPath,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      navigateOnDragDrop: false,
      spellcheck: false,
    },
  };
}

export interface MainWindowOptions {
  preloadPath: string;
  renderer: RendererSource;
  /** Bounds and maximised state between runs (in userData). */
  stateFile: string;
  log: Logger;
}

export function createMainWindow(opts: MainWindowOptions): BrowserWindow {
  const saved = loadWindowState(opts.stateFile);
  const bounds = placeWindow(
    saved,
    screen.getAllDisplays().map((d) => d.workArea),
    screen.getPrimaryDisplay().workArea,
  );
  const win = new BrowserWindow({ ...windowOptions(opts.preloadPath), ...bounds });
  guardNavigation(win.webContents, (url) => shell.openExternal(url));
  win.once("ready-to-show", () => {
    if (saved?.maximized) win.maximize();
    win.show();
  });
  win.on("close", () => {
    try {
      saveWindowState(opts.stateFile, { ...win.getNormalBounds(), maximized: win.isMaximized() });
    } catch (error) {
      opts.log.warn({ err: error }, "could not save the window's position");
    }
  });
  const loaded = opts.renderer.kind === "dev" ? win.loadURL(opts.renderer.url) : win.loadFile(opts.renderer.indexHtml);
  loaded.catch((error: unknown) => opts.log.error({ err: error }, "the window could not load the UI"));
  return win;
}
