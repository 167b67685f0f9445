import type { IpcRendererEvent } from "electron";
import { type BridgeReply, type DesktopBridge, IPC_CHANNELS } from "../../shared/desktop-bridge";
import type { UiEvent } from "../../shared/ui-api";

/** The part of `ipcRenderer` the bridge uses (a fake in tests). */
export interface IpcRendererLike {
  invoke(channel: string, payload: unknown): Promise<unknown>;
  on(channel: string, listener: (event: IpcRendererEvent, payload: unknown) => void): unknown;
  removeListener(channel: string, listener: (event: IpcRendererEvent, payload: unknown) => void): unknown;
}

/**
 * `window.kiln`: six functions over fixed channels, nothing generic. The main
 * process validates everything; this side only numbers requests and turns a
 * failed invoke (arguments that cannot be cloned, no handler) into an `{error}`,
 * so a call never throws across the bridge. Listeners get the event alone, never
 * Electron's IPC event (its `sender` is ipcRenderer itself).
 */
export function createBridge(ipc: IpcRendererLike): DesktopBridge {
  let nextId = 0;
  const invoke = async <T>(channel: string, payload: unknown): Promise<BridgeReply<T>> => {
    try {
      return (await ipc.invoke(channel, payload)) as BridgeReply<T>;
    } catch (error) {
      return { error: { code: "E_INTERNAL", message: (error as Error).message } };
    }
  };
  return {
    call: (command, args) => invoke(IPC_CHANNELS.command, { id: nextId++, command, args }),
    shell: (request) => invoke(IPC_CHANNELS.shell, request),
    chooseFolder: () => invoke(IPC_CHANNELS.chooseFolder, null),
    a1111Api: () => invoke(IPC_CHANNELS.a1111Api, null),
    setA1111Api: (settings) => invoke(IPC_CHANNELS.setA1111Api, settings),
    onEvent(listener) {
      const forward = (_event: IpcRendererEvent, payload: unknown) => listener(payload as UiEvent);
      ipc.on(IPC_CHANNELS.event, forward);
      return () => {
        ipc.removeListener(IPC_CHANNELS.event, forward);
      };
    },
  };
}
