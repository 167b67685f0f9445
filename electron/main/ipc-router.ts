import type { Coordinator } from "../../coordinator/coordinator";
import { createCommandRouter } from "../../coordinator/ui-api/command-router";
import {
  A1111ApiSettings,
  type A1111ApiStatus,
  type BridgeReply,
  type ChosenFolder,
  IPC_CHANNELS,
  ShellRequest,
} from "../../shared/desktop-bridge";
import { describeFieldErrors, fieldErrors } from "../../shared/errors";
import { UiRequest } from "../../shared/ui-api";

/** What the router reads of an `ipcMain.handle` event; Electron's IpcMainInvokeEvent has it. */
export interface InvokeEvent {
  sender: { id: number };
  senderFrame: { url: string; parent: unknown } | null;
}

/** The part of `ipcMain` the router uses (a fake in tests). */
export interface IpcMainLike {
  handle(channel: string, listener: (event: InvokeEvent, payload: unknown) => Promise<BridgeReply>): void;
  removeHandler(channel: string): void;
}

export interface IpcRouterOptions {
  ipcMain: IpcMainLike;
  coordinator: Coordinator;
  /** Whether a frame URL is our renderer (see `isAllowedSender`). */
  isAllowedUrl: (url: string) => boolean;
  /** The id of our window's webContents, or null while there is no window. */
  windowContentsId: () => number | null;
  shell: (request: ShellRequest) => Promise<BridgeReply<{ ok: true }>>;
  /** Shows the OS's folder dialog over the window; takes nothing from the renderer. */
  chooseFolder: () => Promise<BridgeReply<ChosenFolder>>;
  /** The settings' switch for the A1111 API (electron/main/a1111-api-switch.ts); its channels only when given. */
  a1111Api?: { current(): Promise<A1111ApiStatus>; set(settings: A1111ApiSettings): Promise<A1111ApiStatus> };
}

/**
 * The UI API over IPC: the same contract and the same command router as `kiln
 * serve`. Only the channels of IPC_CHANNELS get a handler (Electron rejects an
 * invoke on any other); every call is checked for its sender (our window, its top
 * frame, our page) and validated before it reaches the coordinator. Handlers answer
 * `{result}` or `{error}` and never throw, so no stack crosses the bridge.
 * Returns a function that removes the handlers.
 */
export function registerIpcRouter(opts: IpcRouterOptions): () => void {
  const route = createCommandRouter(opts.coordinator);

  const guarded =
    (handler: (payload: unknown) => Promise<BridgeReply>) =>
    async (event: InvokeEvent, payload: unknown): Promise<BridgeReply> => {
      if (!isOurRenderer(event, opts)) {
        return { error: { code: "E_UNAUTHORIZED", message: "this IPC channel answers only the Kiln window" } };
      }
      try {
        return await handler(payload);
      } catch (error) {
        return { error: { code: "E_INTERNAL", message: (error as Error).message } };
      }
    };

  opts.ipcMain.handle(
    IPC_CHANNELS.command,
    guarded(async (payload) => {
      const request = UiRequest.safeParse(payload);
      if (!request.success) return badRequest("not a UI API request", request.error);
      const response = await route(request.data);
      return "error" in response ? { error: response.error } : { result: response.result };
    }),
  );
  opts.ipcMain.handle(
    IPC_CHANNELS.shell,
    guarded(async (payload) => {
      const request = ShellRequest.safeParse(payload);
      if (!request.success) return badRequest("not a shell request", request.error);
      return opts.shell(request.data);
    }),
  );
  opts.ipcMain.handle(
    IPC_CHANNELS.chooseFolder,
    guarded(() => opts.chooseFolder()),
  );
  const a1111Api = opts.a1111Api;
  if (a1111Api) {
    opts.ipcMain.handle(
      IPC_CHANNELS.a1111Api,
      guarded(async () => ({ result: await a1111Api.current() })),
    );
    opts.ipcMain.handle(
      IPC_CHANNELS.setA1111Api,
      guarded(async (payload) => {
        const settings = A1111ApiSettings.safeParse(payload);
        if (!settings.success) return badRequest("not A1111 API settings", settings.error);
        return { result: await a1111Api.set(settings.data) };
      }),
    );
  }
  return () => {
    opts.ipcMain.removeHandler(IPC_CHANNELS.a1111Api);
    opts.ipcMain.removeHandler(IPC_CHANNELS.setA1111Api);
    opts.ipcMain.removeHandler(IPC_CHANNELS.command);
    opts.ipcMain.removeHandler(IPC_CHANNELS.shell);
    opts.ipcMain.removeHandler(IPC_CHANNELS.chooseFolder);
  };
}

function isOurRenderer(event: InvokeEvent, opts: IpcRouterOptions): boolean {
  const frame = event.senderFrame;
  return (
    event.sender.id === opts.windowContentsId() &&
    frame !== null &&
    frame.parent === null &&
    opts.isAllowedUrl(frame.url)
  );
}

function badRequest(what: string, error: Parameters<typeof fieldErrors>[0]): BridgeReply {
  const fields = fieldErrors(error);
  return { error: { code: "E_BAD_REQUEST", message: `${what}: ${describeFieldErrors(fields)}`, fields } };
}

/** The part of a webContents that events are sent to. */
export interface UiEventSink {
  isDestroyed(): boolean;
  send(channel: string, payload: unknown): void;
}

/** Sends every coordinator `ui` event to the window; returns the unsubscribe. */
export function forwardUiEvents(coordinator: Coordinator, target: () => UiEventSink | null): () => void {
  const forward = (event: unknown) => {
    const contents = target();
    if (contents && !contents.isDestroyed()) contents.send(IPC_CHANNELS.event, event);
  };
  coordinator.on("ui", forward);
  return () => coordinator.off("ui", forward);
}
