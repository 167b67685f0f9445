import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { CERT_FILE, certificateFingerprint } from "./node-certificate";

/** Written by the daemon: its pid, and the code of the pairing window it opened. */
export const PID_FILE = "daemon.pid";
export const PAIRING_FILE = "pairing.json";
const PairingFile = z.object({ code: z.string(), closesAt: z.number() });

/**
 * Signals the daemon that runs with this state dir (found by its pid file);
 * returns its pid. Only its user or root can, which is the point.
 */
export function signalDaemon(stateDir: string, signal: NodeJS.Signals): number {
  let pid: number;
  try {
    pid = Number(readFileSync(join(stateDir, PID_FILE), "utf8").trim());
  } catch {
    throw new Error(
      `no kiln-node is running with state dir ${stateDir} (no ${PID_FILE}); start it, or give --state-dir`,
    );
  }
  try {
    process.kill(pid, signal);
  } catch (error) {
    throw new Error(`the kiln-node of ${stateDir} (pid ${pid}) is not running: ${(error as Error).message}`);
  }
  return pid;
}

/**
 * `kiln-node pair`: asks the daemon running on this machine (found by the pid
 * file in its state dir) to open a pairing window, by SIGUSR1, and waits for
 * the code it writes. Only someone who can signal the daemon's process, i.e.
 * its user or root on the node itself, can open pairing.
 */
export async function requestPairingWindow(
  stateDir: string,
  timeoutMs = 5000,
): Promise<{ code: string; closesAt: number; fingerprint: string }> {
  const pairingFile = join(stateDir, PAIRING_FILE);
  const before = mtime(pairingFile);
  const pid = signalDaemon(stateDir, "SIGUSR1");
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (mtime(pairingFile) > before) {
      const { code, closesAt } = PairingFile.parse(JSON.parse(readFileSync(pairingFile, "utf8")));
      const fingerprint = certificateFingerprint(readFileSync(join(stateDir, CERT_FILE), "utf8"));
      return { code, closesAt, fingerprint };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the kiln-node (pid ${pid}) did not open a pairing window within ${timeoutMs / 1000} s`);
}

function mtime(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}
