import { describe, expect, it } from "vitest";
import type { StateStorage } from "zustand/middleware";
import { createSettingsStore, defaultPreferences, SETTINGS_KEY } from "../../../renderer/stores/settings-store";

function memoryStorage(initial: Record<string, string> = {}): StateStorage & { data: Map<string, string> } {
  const data = new Map(Object.entries(initial));
  return {
    data,
    getItem: (key) => data.get(key) ?? null,
    setItem: (key, value) => {
      data.set(key, value);
    },
    removeItem: (key) => {
      data.delete(key);
    },
  };
}

describe("settings store", () => {
  it("persists the preferences and nothing else", () => {
    const storage = memoryStorage();
    const store = createSettingsStore(() => storage);
    store.getState().setPreferences({ width: 768, theme: "light", density: "compact" });
    // Anything else that lands in the store (here, live telemetry by mistake) is never written.
    store.setState({ telemetry: { gpu: 99 } } as never);
    const saved = JSON.parse(storage.data.get(SETTINGS_KEY) ?? "null");
    expect(Object.keys(saved.state)).toEqual(["preferences"]);
    expect(saved.state.preferences).toEqual({ ...defaultPreferences, width: 768, theme: "light", density: "compact" });
  });

  it("restores saved preferences, and falls back field by field on stale or hand-edited values", () => {
    const storage = memoryStorage({
      [SETTINGS_KEY]: JSON.stringify({
        state: { preferences: { width: 1024, height: "tall", theme: "neon", count: 8, extra: 1 } },
        version: 1,
      }),
    });
    const store = createSettingsStore(() => storage);
    expect(store.getState().preferences).toEqual({ ...defaultPreferences, width: 1024, count: 8 });
  });

  it("works in memory without storage", () => {
    const store = createSettingsStore(() => {
      throw new Error("no localStorage");
    });
    store.getState().setPreferences({ steps: 12 });
    expect(store.getState().preferences.steps).toBe(12);
  });
});
