import { contextBridge, ipcRenderer } from "electron";
import { createBridge } from "./bridge";

// The renderer's only way out: one object, `window.kiln` (see shared/desktop-bridge.ts).
contextBridge.exposeInMainWorld("kiln", createBridge(ipcRenderer));
