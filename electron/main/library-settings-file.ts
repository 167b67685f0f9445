import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { z } from "zod";
import { chooseLibrary, openLibrary } from "../../coordinator/models/library-folder";
import type { LibrarySettings } from "../../shared/ui-api";

/**
 * The desktop app's model library settings (its `--models DIR` and
 * `--no-push`), kept by the main process in `userData/library-settings.json`
 * beside window-state.json, not in the renderer's localStorage with the
 * artist's preferences: the coordinator needs them when it starts, before any
 * window has loaded, and keeps them while no window is open (macOS).
 */
export const LIBRARY_SETTINGS_FILE = "library-settings.json";

/** Each field falls back on its own: a hand-edited or older file never loses the other. */
const SavedSettings = z.object({
  /** Null: the default library (`$KILN_MODELS`, else ~/.local/share/kiln/models). */
  dir: z.string().min(1).nullable().catch(null),
  onDemand: z.boolean().catch(true),
});
export type SavedSettings = z.infer<typeof SavedSettings>;

export function loadLibrarySettings(file: string): SavedSettings {
  try {
    return SavedSettings.parse(JSON.parse(readFileSync(file, "utf8")));
  } catch {
    return SavedSettings.parse({});
  }
}

export function saveLibrarySettings(file: string, settings: LibrarySettings): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify({ dir: settings.dir, onDemand: settings.onDemand }), { mode: 0o600 });
  renameSync(tmp, file);
}

/**
 * The library the app starts with: the saved folder; when it is gone (an
 * unplugged disk), the default one, with the reason to log; null when neither
 * can be used (the settings then show no folder until one is chosen).
 */
export function startupLibrary(
  saved: SavedSettings,
  env: NodeJS.ProcessEnv,
  home: string,
): { dir: string | null; problem: string | null } {
  let problem: string | null = null;
  if (saved.dir !== null) {
    try {
      return { dir: openLibrary({ dir: saved.dir, from: "setting" }), problem };
    } catch (error) {
      problem = (error as Error).message;
    }
  }
  try {
    return { dir: openLibrary(chooseLibrary(undefined, env, home)), problem };
  } catch (error) {
    return { dir: null, problem: problem ?? (error as Error).message };
  }
}
