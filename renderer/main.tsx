import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { createActions } from "./api/actions";
import { ActionsContext } from "./api/actions-context";
import { startLiveUpdates } from "./api/live-updates";
import { pickTransport } from "./api/pick-transport";
import { randomSeed } from "./model/random-seed";
import { useConnectionStore } from "./stores/connection-store";
import { draftFromPreferences, usePromptStore } from "./stores/prompt-store";
import { useSettingsStore } from "./stores/settings-store";
import "./styles/theme.css";
import "./styles/layout.css";

usePromptStore.setState({ draft: draftFromPreferences(useSettingsStore.getState().preferences, randomSeed()) });

let started = false;
const transport = pickTransport((status) => {
  useConnectionStore.setState({ status });
  // Every reconnection reloads everything: events sent while we were away are gone.
  if (status.state === "open" && started) void actions.refresh();
});
const actions = createActions(transport);
startLiveUpdates(transport, actions, (flush) => requestAnimationFrame(flush));
started = true;
if (useConnectionStore.getState().status.state === "open") void actions.refresh();

const root = document.getElementById("root");
if (!root) throw new Error("index.html lost its #root element");
createRoot(root).render(
  <StrictMode>
    <ActionsContext.Provider value={actions}>
      <App />
    </ActionsContext.Provider>
  </StrictMode>,
);
