import { z } from "zod";
import { create } from "zustand";
import { createJSONStorage, persist, type StateStorage } from "zustand/middleware";

export const Theme = z.enum(["system", "dark", "light"]);
export type Theme = z.infer<typeof Theme>;

/** Gallery cell size. */
export const Density = z.enum(["compact", "comfortable", "large"]);
export type Density = z.infer<typeof Density>;

/**
 * What an artist chose and expects back tomorrow. Each field falls back on its
 * own, so one stale or hand-edited value never resets the rest.
 */
export const Preferences = z.object({
  width: z.number().int().catch(512),
  height: z.number().int().catch(512),
  /** null: the model's default. */
  steps: z.number().int().nullable().catch(null),
  cfg: z.number().nullable().catch(null),
  count: z.number().int().catch(4),
  model: z.string().nullable().catch(null),
  theme: Theme.catch("system"),
  density: Density.catch("comfortable"),
  /** The mask brush's diameter in screen pixels. */
  brushSize: z.number().int().min(2).max(200).catch(40),
  /** The last img2img denoising strength (A1111's 0.75 at first). */
  strength: z.number().gt(0).max(1).catch(0.75),
});
export type Preferences = z.infer<typeof Preferences>;

export const defaultPreferences: Preferences = Preferences.parse({});

export interface SettingsState {
  preferences: Preferences;
  setPreferences(patch: Partial<Preferences>): void;
}

export const SETTINGS_KEY = "kiln.settings";

/**
 * Preferences persisted to `storage` (localStorage in the app). `partialize`
 * writes the preferences only: nothing live (telemetry, jobs, images) is ever
 * saved, whatever else this store grows later.
 */
export function createSettingsStore(storage: () => StateStorage) {
  return create<SettingsState>()(
    persist(
      (set) => ({
        preferences: defaultPreferences,
        setPreferences: (patch) => set((s) => ({ preferences: { ...s.preferences, ...patch } })),
      }),
      {
        name: SETTINGS_KEY,
        version: 1,
        storage: createJSONStorage(storage),
        partialize: (s) => ({ preferences: s.preferences }),
        merge: (persisted, current) => ({
          ...current,
          preferences: Preferences.parse((persisted as { preferences?: unknown } | undefined)?.preferences ?? {}),
        }),
      },
    ),
  );
}

/** Without localStorage (tests, locked-down browsers) zustand keeps preferences in memory only. */
function localStorageOrThrow(): StateStorage {
  const storage = (globalThis as { localStorage?: StateStorage }).localStorage;
  if (!storage) throw new Error("no localStorage here");
  return storage;
}

export const useSettingsStore = createSettingsStore(localStorageOrThrow);
