import { describe, expect, it, vi } from "vitest";
import { createIpcTransport } from "../../../renderer/api/ipc-transport";
import { UiError } from "../../../renderer/api/ui-error";
import type { BridgeReply, DesktopBridge, ShellRequest } from "../../../shared/desktop-bridge";
import type { UiCommandName, UiEvent } from "../../../shared/ui-api";
import { job } from "./ui-fixtures";

/** What the preload exposes as window.kiln, with the main process's answers scripted. */
function fakeBridge(answer: (command: UiCommandName, args: unknown) => BridgeReply) {
  const listeners = new Set<(event: UiEvent) => void>();
  const calls: [UiCommandName, unknown][] = [];
  const shells: ShellRequest[] = [];
  const bridge: DesktopBridge = {
    call: async (command, args) => {
      calls.push([command, args]);
      return answer(command, args);
    },
    shell: async (request) => {
      shells.push(request);
      return request.target.startsWith("/")
        ? { result: { ok: true } }
        : { error: { code: "E_BAD_REQUEST", message: "not a file of the studio's output folder" } };
    },
    onEvent: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    chooseFolder: async () => ({ result: { path: "/srv/kiln-models" } }),
    a1111Api: async () => ({ result: { enabled: false, port: 7860, url: null, problem: null } }),
    setA1111Api: async (settings) => ({ result: { ...settings, url: null, problem: null } }),
  };
  const emit = (event: unknown) => {
    for (const listener of listeners) listener(event as UiEvent);
  };
  return { bridge, calls, shells, emit };
}

describe("IPC transport", () => {
  it("calls through window.kiln and returns validated results", async () => {
    const fake = fakeBridge(() => ({ result: [job({ id: "a" })] }));
    const transport = createIpcTransport(fake.bridge);
    expect((await transport.call("listJobs", { includeFinished: false })).map((j) => j.id)).toEqual(["a"]);
    expect(fake.calls).toEqual([["listJobs", { includeFinished: false }]]);
  });

  it("rebuilds an Error with code and fields from {error}", async () => {
    const fake = fakeBridge(() => ({
      error: {
        code: "E_MODEL_MISSING",
        message: "no node has sdxl",
        fields: [{ path: "model", message: "is not installed" }],
      },
    }));
    const error = await createIpcTransport(fake.bridge)
      .call("submitJob", { prompts: ["x"], model: "sdxl" })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UiError);
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({
      code: "E_MODEL_MISSING",
      message: "no node has sdxl",
      fields: [{ path: "model", message: "is not installed" }],
    });
  });

  it("validates events at the boundary and unsubscribes", () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    const fake = fakeBridge(() => ({ result: null }));
    const transport = createIpcTransport(fake.bridge);
    const seen: UiEvent[] = [];
    const stop = transport.subscribe((e) => seen.push(e));
    fake.emit({ type: "image.progress", jobId: "a", imageId: "i", step: 1, steps: 4, device: "g" });
    fake.emit({ type: "image.progress", jobId: "a" });
    stop();
    fake.emit({ type: "nodes.changed", nodes: [] });
    expect(seen).toEqual([{ type: "image.progress", jobId: "a", imageId: "i", step: 1, steps: 4, device: "g" }]);
    expect(warn).toHaveBeenCalledOnce();
    warn.mockRestore();
  });

  it("serves images through kiln-image://image/?path= and reveals files through the shell", async () => {
    const fake = fakeBridge(() => ({ result: null }));
    const transport = createIpcTransport(fake.bridge);
    expect(transport.imageUrl("/home/ana/Kiln/job 1/0001.png")).toBe(
      "kiln-image://image/?path=%2Fhome%2Fana%2FKiln%2Fjob%201%2F0001.png",
    );
    expect(transport.thumbnailUrl("/home/ana/Kiln/job 1/0001.png", 512)).toBe(
      "kiln-image://image/?path=%2Fhome%2Fana%2FKiln%2Fjob%201%2F0001.png&size=512",
    );
    expect(transport.initImageUrl("ab".repeat(32))).toBe(`kiln-image://init-image/${"ab".repeat(32)}.png`);
    await transport.shell?.({ action: "revealPath", target: "/home/ana/Kiln/0001.png" });
    await expect(transport.shell?.({ action: "revealPath", target: "relative.png" })).rejects.toMatchObject({
      code: "E_BAD_REQUEST",
    });
    expect(fake.shells).toHaveLength(2);
  });

  it("reads and sets the A1111 API switch, and refuses an answer that is not its status", async () => {
    const fake = fakeBridge(() => ({ result: null }));
    const transport = createIpcTransport(fake.bridge);
    expect(await transport.a1111Api?.()).toEqual({ enabled: false, port: 7860, url: null, problem: null });
    expect(await transport.setA1111Api?.({ enabled: true, port: 7861 })).toEqual({
      enabled: true,
      port: 7861,
      url: null,
      problem: null,
    });
    const broken = createIpcTransport({
      ...fake.bridge,
      a1111Api: async () => ({ result: { enabled: "yes" } }) as never,
    });
    await expect(broken.a1111Api?.()).rejects.toThrow();
    const refused = createIpcTransport({
      ...fake.bridge,
      setA1111Api: async () => ({
        error: {
          code: "E_BAD_REQUEST",
          message: "port: must be 1024 or above",
          fields: [{ path: "port", message: "must be 1024 or above" }],
        },
      }),
    });
    await expect(refused.setA1111Api?.({ enabled: true, port: 80 })).rejects.toMatchObject({
      code: "E_BAD_REQUEST",
      fields: [{ path: "port", message: "must be 1024 or above" }],
    });
  });

  it("returns the folder a person picked in the desktop's dialog, and null when they closed it", async () => {
    const fake = fakeBridge(() => ({ result: [] }));
    const transport = createIpcTransport(fake.bridge);
    expect(await transport.chooseFolder?.()).toBe("/srv/kiln-models");
    fake.bridge.chooseFolder = async () => ({ result: { path: null } });
    expect(await transport.chooseFolder?.()).toBeNull();
  });
});
