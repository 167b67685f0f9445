import { stat } from "node:fs/promises";
import { resolveInsideRoot } from "../../coordinator/ui-api/output-files";
import type { BridgeReply, ShellRequest } from "../../shared/desktop-bridge";
import { isExternalHttpUrl } from "./security";

/** The part of Electron's `shell` the bridge uses (a fake in tests). */
export interface DesktopShell {
  openPath(path: string): Promise<string>;
  showItemInFolder(path: string): void;
  openExternal(url: string): Promise<void>;
}

/**
 * The desktop-only actions of the bridge. A compromised renderer could ask for any
 * path, so: open only PNG files under the output folder (opening an arbitrary file
 * with its default application can run it), reveal only entries under it, and send
 * only http(s) URLs to the browser.
 */
export function createShellActions(outputDir: string, shell: DesktopShell) {
  const refuse = (message: string): BridgeReply<{ ok: true }> => ({ error: { code: "E_BAD_REQUEST", message } });

  return async function run(request: ShellRequest): Promise<BridgeReply<{ ok: true }>> {
    if (request.action === "openExternal") {
      if (!isExternalHttpUrl(request.target)) return refuse("only http and https links open outside the app");
      await shell.openExternal(new URL(request.target).href);
      return { result: { ok: true } };
    }
    const file = await resolveInsideRoot(outputDir, request.target).catch(() => null);
    if (!file) return refuse(`${request.target} is not in the output folder ${outputDir}`);
    if (request.action === "revealPath") {
      shell.showItemInFolder(file);
      return { result: { ok: true } };
    }
    if (!file.endsWith(".png") || !(await stat(file)).isFile()) return refuse("only images open from the app");
    const failure = await shell.openPath(file);
    return failure ? { error: { code: "E_INTERNAL", message: failure } } : { result: { ok: true } };
  };
}
