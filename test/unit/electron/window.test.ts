import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { windowOptions } from "../../../electron/main/window";
import { loadWindowState, placeWindow, saveWindowState } from "../../../electron/main/window-state";

// The outermost seam: the `electron` package itself (its binary cannot run here).
vi.mock("electron", () => ({ BrowserWindow: class {}, screen: {}, shell: {} }));

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function stateFile(): string {
  const dir = mkdtempSync(join(tmpdir(), "kiln-window-"));
  dirs.push(dir);
  return join(dir, "window-state.json");
}

describe("windowOptions", () => {
  it("isolates and sandboxes the renderer, with no Node and the same-origin policy on", () => {
    const { webPreferences, show } = windowOptions("/app/out/preload/index.cjs");
    expect(webPreferences).toMatchObject({
      preload: "/app/out/preload/index.cjs",
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
    });
    expect(show).toBe(false);
  });
});

describe("window state", () => {
  const primary = { x: 0, y: 0, width: 1920, height: 1040 };
  const right = { x: 1920, y: 0, width: 2560, height: 1400 };

  it("round-trips through its file", () => {
    const file = stateFile();
    const state = { x: 100, y: 80, width: 1400, height: 900, maximized: true };
    saveWindowState(file, state);
    expect(loadWindowState(file)).toEqual(state);
  });

  it("ignores a missing, corrupt or foreign file", () => {
    const file = stateFile();
    expect(loadWindowState(file)).toBeNull();
    for (const text of [
      "{not json",
      "[]",
      JSON.stringify({ x: 1, y: 2, width: 1200 }),
      JSON.stringify({ x: 1, y: 2, width: 10, height: 10, maximized: false }),
      JSON.stringify({ x: "1", y: 2, width: 1200, height: 800, maximized: false }),
      JSON.stringify({ x: 1.5, y: 2, width: 1200, height: 800, maximized: false }),
    ]) {
      writeFileSync(file, text);
      expect(loadWindowState(file), text).toBeNull();
    }
  });

  it("keeps a window whose title bar is on a display, shrunk to that display", () => {
    const saved = { x: 2000, y: 100, width: 1600, height: 1000, maximized: false };
    expect(placeWindow(saved, [primary, right], primary)).toEqual({ x: 2000, y: 100, width: 1600, height: 1000 });
    const huge = { x: 10, y: 10, width: 5000, height: 3000, maximized: false };
    expect(placeWindow(huge, [primary], primary)).toEqual({ x: 10, y: 10, width: 1920, height: 1040 });
  });

  it("brings back a window left on an unplugged monitor or above the screen, centred on the primary display", () => {
    const onGoneMonitor = { x: 2200, y: 100, width: 1200, height: 800, maximized: false };
    expect(placeWindow(onGoneMonitor, [primary], primary)).toEqual({ x: 360, y: 120, width: 1200, height: 800 });
    const titleBarAbove = { x: 100, y: -300, width: 1200, height: 800, maximized: false };
    expect(placeWindow(titleBarAbove, [primary], primary)).toEqual({ x: 360, y: 120, width: 1200, height: 800 });
    const barelyVisible = { x: -1150, y: 100, width: 1200, height: 800, maximized: false };
    expect(placeWindow(barelyVisible, [primary], primary).x).toBe(360);
  });

  it("opens a first window at the default size, centred", () => {
    expect(placeWindow(null, [primary], primary)).toEqual({ x: 320, y: 110, width: 1280, height: 820 });
    const small = { x: 0, y: 0, width: 1024, height: 700 };
    expect(placeWindow(null, [small], small)).toEqual({ x: 0, y: 0, width: 1024, height: 700 });
  });

  it("writes the file whole (no temp file left behind)", () => {
    const file = stateFile();
    saveWindowState(file, { x: 1, y: 2, width: 1000, height: 700, maximized: false });
    expect(JSON.parse(readFileSync(file, "utf8"))).toMatchObject({ width: 1000 });
    expect(readdirSync(dirname(file))).toEqual(["window-state.json"]);
  });
});
