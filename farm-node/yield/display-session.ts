import { execFileSync } from "node:child_process";
import type { YieldMode } from "./yield-policy";

/**
 * `--yield`'s default: auto on a machine someone works at (a display), never on a
 * headless box. A display is $DISPLAY or $WAYLAND_DISPLAY in the node's own
 * environment, or, for a node started as a service (which has neither), a
 * graphical session logged in to systemd-logind (Type x11, wayland or mir).
 */
export function defaultYieldMode(env: NodeJS.ProcessEnv, sessionTypes: readonly string[]): YieldMode {
  if (env.DISPLAY || env.WAYLAND_DISPLAY) return "auto";
  return sessionTypes.some((t) => /^(x11|wayland|mir)$/i.test(t.trim())) ? "auto" : "never";
}

/** The types of the sessions logind knows (`loginctl`); none where it is absent or does not answer. */
export function loginSessionTypes(): string[] {
  const run = (args: string[]) =>
    execFileSync("loginctl", args, { encoding: "utf8", timeout: 1000, stdio: ["ignore", "pipe", "ignore"] });
  try {
    const ids = run(["list-sessions", "--no-legend"])
      .split("\n")
      .map((line) => line.trim().split(/\s+/)[0] ?? "")
      .filter((id) => /^[\w-]+$/.test(id));
    return ids.map((id) => run(["show-session", id, "-p", "Type", "--value"]).trim());
  } catch {
    return [];
  }
}
