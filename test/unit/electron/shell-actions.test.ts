import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, type Mock, vi } from "vitest";
import { createShellActions, type DesktopShell } from "../../../electron/main/shell-actions";
import { outputEscapes } from "../../support/output-escapes";

let base: string;
let output: string;
let outside: string;
let shell: { [K in keyof DesktopShell]: Mock<DesktopShell[K]> };
let run: ReturnType<typeof createShellActions>;

beforeEach(() => {
  base = realpathSync(mkdtempSync(join(tmpdir(), "kiln-shell-")));
  output = join(base, "Kiln");
  outside = join(base, "private");
  mkdirSync(join(output, "2025-01-01 lighthouse"), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(output, "2025-01-01 lighthouse", "0001.png"), "png bytes");
  writeFileSync(join(output, "run-me.sh"), "#!/bin/sh\n");
  writeFileSync(join(outside, "secret.png"), "secret bytes");
  // A link inside the output folder that points out of it.
  symlinkSync(join(outside, "secret.png"), join(output, "escape.png"));
  symlinkSync(outside, join(output, "escape-dir"));
  shell = {
    openPath: vi.fn(async () => ""),
    showItemInFolder: vi.fn(),
    openExternal: vi.fn(async () => undefined),
  };
  run = createShellActions(output, shell);
});

afterEach(() => {
  rmSync(base, { recursive: true, force: true });
});

const image = () => join(output, "2025-01-01 lighthouse", "0001.png");
const escapes = () => outputEscapes(output, outside, image());

describe("shell actions", () => {
  it("opens and reveals images under the output folder", async () => {
    expect(await run({ action: "openPath", target: image() })).toEqual({ result: { ok: true } });
    expect(shell.openPath).toHaveBeenCalledWith(image());
    expect(await run({ action: "revealPath", target: image() })).toEqual({ result: { ok: true } });
    expect(await run({ action: "revealPath", target: join(output, "2025-01-01 lighthouse") })).toEqual({
      result: { ok: true },
    });
    expect(shell.showItemInFolder).toHaveBeenCalledTimes(2);
  });

  it("refuses ../ tricks, paths outside, relative paths and symlink escapes", async () => {
    for (const target of escapes()) {
      for (const action of ["openPath", "revealPath"] as const) {
        expect(await run({ action, target }), `${action} ${target}`).toMatchObject({
          error: { code: "E_BAD_REQUEST" },
        });
      }
    }
    expect(shell.openPath).not.toHaveBeenCalled();
    expect(shell.showItemInFolder).not.toHaveBeenCalled();
  });

  it("opens only images, never another file type (opening it could run it)", async () => {
    const reply = await run({ action: "openPath", target: join(output, "run-me.sh") });
    expect(reply).toMatchObject({ error: { code: "E_BAD_REQUEST", message: "only images open from the app" } });
    expect(await run({ action: "openPath", target: join(output, "2025-01-01 lighthouse") })).toMatchObject({
      error: { code: "E_BAD_REQUEST" },
    });
    expect(shell.openPath).not.toHaveBeenCalled();
  });

  it("reports the desktop's failure to open a file", async () => {
    shell.openPath.mockResolvedValueOnce("no application knows this file type");
    expect(await run({ action: "openPath", target: image() })).toEqual({
      error: { code: "E_INTERNAL", message: "no application knows this file type" },
    });
  });

  it("sends only http and https URLs to the browser", async () => {
    expect(await run({ action: "openExternal", target: "https://kiln.example/docs?a=1" })).toEqual({
      result: { ok: true },
    });
    expect(shell.openExternal).toHaveBeenCalledWith("https://kiln.example/docs?a=1");
    for (const target of ["file:///etc/passwd", "javascript:alert(1)", "smb://host/share", image(), "ms-settings:"]) {
      expect(await run({ action: "openExternal", target }), target).toMatchObject({ error: { code: "E_BAD_REQUEST" } });
    }
    expect(shell.openExternal).toHaveBeenCalledTimes(1);
  });

  it("refuses everything when the output folder is gone", async () => {
    rmSync(output, { recursive: true });
    expect(await run({ action: "revealPath", target: image() })).toMatchObject({ error: { code: "E_BAD_REQUEST" } });
  });
});
