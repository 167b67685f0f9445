import { execFileSync } from "node:child_process";

/** Network namespaces need root; tests that use them skip with this reason otherwise. */
export const NETNS_SKIP_REASON =
  process.getuid?.() === 0 ? null : "needs root to create network namespaces (run the suite as root, as CI does)";

function ip(args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}

/**
 * A private network namespace whose loopback carries multicast, so real mDNS
 * runs without a packet ever reaching the machine's own network.
 */
export class Netns {
  readonly name: string;

  constructor(label: string) {
    this.name = `kiln-${label}-${process.pid}`;
    ip(["netns", "add", this.name]);
    this.in(["ip", "link", "set", "lo", "up"]);
    this.in(["ip", "link", "set", "lo", "multicast", "on"]);
    this.in(["ip", "route", "add", "224.0.0.0/4", "dev", "lo"]);
  }

  /** The argv prefix that runs a command inside this namespace. */
  prefix(): string[] {
    return ["ip", "netns", "exec", this.name];
  }

  in(command: string[]): void {
    ip(["netns", "exec", this.name, ...command]);
  }

  destroy(): void {
    try {
      ip(["netns", "del", this.name]);
    } catch {
      // Already gone: nothing to clean.
    }
  }
}
