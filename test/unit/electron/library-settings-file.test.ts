import { mkdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  LIBRARY_SETTINGS_FILE,
  loadLibrarySettings,
  saveLibrarySettings,
  startupLibrary,
} from "../../../electron/main/library-settings-file";
import { tempDir } from "../../support/temp-dir";

describe("the desktop app's model library settings", () => {
  it("come back as saved, in a file only its user reads; a fresh install gets the default library with pushes on", () => {
    const file = join(tempDir("kiln-settings-"), LIBRARY_SETTINGS_FILE);
    expect(loadLibrarySettings(file)).toEqual({ dir: null, onDemand: true });
    saveLibrarySettings(file, { dir: "/srv/kiln-models", onDemand: false });
    expect(loadLibrarySettings(file)).toEqual({ dir: "/srv/kiln-models", onDemand: false });
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it("keep each field on its own when the other is damaged", () => {
    const file = join(tempDir("kiln-settings-"), LIBRARY_SETTINGS_FILE);
    writeFileSync(file, JSON.stringify({ dir: 42, onDemand: false }));
    expect(loadLibrarySettings(file)).toEqual({ dir: null, onDemand: false });
    writeFileSync(file, "{ not json");
    expect(loadLibrarySettings(file)).toEqual({ dir: null, onDemand: true });
  });

  it("start with the saved folder; a folder gone since falls back to the default, with the reason", () => {
    const home = tempDir("kiln-home-");
    const saved = join(home, "packs");
    mkdirSync(saved);
    expect(startupLibrary({ dir: saved, onDemand: true }, {}, home)).toEqual({ dir: saved, problem: null });
    const gone = startupLibrary({ dir: join(home, "unplugged"), onDemand: true }, {}, home);
    expect(gone.dir).toBe(join(home, ".local", "share", "kiln", "models"));
    expect(statSync(gone.dir as string).isDirectory()).toBe(true);
    expect(gone.problem).toMatch(/unplugged does not exist \(choose the folder that holds your model packs/);
  });
});
