import type { KeyboardEvent } from "react";
import { useFarmStore } from "../stores/farm-store";
import { useNavStore, type View } from "../stores/nav-store";
import { Theme, useSettingsStore } from "../stores/settings-store";
import { Icon } from "./Icon";

const TABS: { view: View; label: string; key: string }[] = [
  { view: "create", label: "Create", key: "1" },
  { view: "gallery", label: "Gallery", key: "2" },
  { view: "farm", label: "Farm", key: "3" },
];

const THEME_LABELS: Record<Theme, string> = { system: "System", dark: "Dark", light: "Light" };

/** Left rail: the three views as tabs (arrow keys move between them, Alt+1…3 from anywhere), and the theme. */
export function NavRail() {
  const view = useNavStore((s) => s.view);
  const show = useNavStore((s) => s.show);
  const lost = useFarmStore((s) => s.nodes.filter((n) => n.status === "lost" || n.status === "conflict").length);
  const theme = useSettingsStore((s) => s.preferences.theme);
  const setPreferences = useSettingsStore((s) => s.setPreferences);

  function onKeyDown(e: KeyboardEvent<HTMLDivElement>) {
    const at = TABS.findIndex((t) => t.view === view);
    const step = e.key === "ArrowDown" ? 1 : e.key === "ArrowUp" ? -1 : 0;
    if (step === 0) return;
    e.preventDefault();
    const next = TABS[(at + step + TABS.length) % TABS.length] as (typeof TABS)[number];
    show(next.view);
    document.getElementById(`tab-${next.view}`)?.focus();
  }

  return (
    <nav className="rail" aria-label="Kiln">
      <div className="rail-brand" aria-hidden="true">
        Kiln
      </div>
      <div role="tablist" aria-label="Views" aria-orientation="vertical" className="rail-tabs" onKeyDown={onKeyDown}>
        {TABS.map((tab) => (
          <button
            key={tab.view}
            id={`tab-${tab.view}`}
            type="button"
            role="tab"
            aria-selected={view === tab.view}
            aria-controls="view"
            aria-keyshortcuts={`Alt+${tab.key}`}
            tabIndex={view === tab.view ? 0 : -1}
            className="rail-tab"
            onClick={() => show(tab.view)}
          >
            <Icon name={tab.view} />
            <span>{tab.label}</span>
            {tab.view === "farm" && lost > 0 && (
              <span className="rail-alert" aria-hidden="true" title={`${lost} node(s) need attention`} />
            )}
          </button>
        ))}
      </div>
      <div className="rail-settings">
        <label htmlFor="theme">Theme</label>
        <select id="theme" value={theme} onChange={(e) => setPreferences({ theme: Theme.parse(e.target.value) })}>
          {Theme.options.map((t) => (
            <option key={t} value={t}>
              {THEME_LABELS[t]}
            </option>
          ))}
        </select>
      </div>
    </nav>
  );
}
