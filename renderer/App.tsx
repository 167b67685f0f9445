import { useEffect } from "react";
import { ConnectionBanner } from "./components/ConnectionBanner";
import { NavRail } from "./components/NavRail";
import { NoticeArea } from "./components/NoticeArea";
import { useNavStore, type View } from "./stores/nav-store";
import { useSettingsStore } from "./stores/settings-store";
import { CreateView } from "./views/CreateView";
import { FarmView } from "./views/FarmView";
import { GalleryView } from "./views/GalleryView";

/** By key position, not the character: on a Mac, Option+1 types "¡", and the shortcut never fired there. */
const SHORTCUTS: Record<string, View> = { Digit1: "create", Digit2: "gallery", Digit3: "farm" };

/** The shell: rail, one view at a time (hidden views are unmounted, so they never render on updates), banners. */
export function App() {
  const view = useNavStore((s) => s.view);
  const theme = useSettingsStore((s) => s.preferences.theme);

  useEffect(() => {
    // "system" leaves the choice to prefers-color-scheme (theme.css).
    if (theme === "system") delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = theme;
  }, [theme]);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const target = SHORTCUTS[e.code];
      // In a text field, an Option+digit that types a character (# and € on a UK Mac) is typing, not a shortcut.
      if (target && isTyping(e)) return;
      if (target && e.altKey && !e.ctrlKey && !e.metaKey) {
        e.preventDefault();
        useNavStore.getState().show(target);
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

  return (
    <div className="app">
      <NavRail />
      <main className="app-main" id="view" role="tabpanel" aria-labelledby={`tab-${view}`}>
        {view === "create" && <CreateView />}
        {view === "gallery" && <GalleryView />}
        {view === "farm" && <FarmView />}
      </main>
      <ConnectionBanner />
      <NoticeArea />
    </div>
  );
}

/** Whether the key types a character other than its digit into a field that takes text. */
function isTyping(e: KeyboardEvent): boolean {
  const el = e.target instanceof HTMLElement ? e.target : null;
  const field =
    el !== null && (el.isContentEditable || el instanceof HTMLTextAreaElement || el instanceof HTMLInputElement);
  return field && e.key.length === 1 && e.key !== e.code.slice("Digit".length);
}
