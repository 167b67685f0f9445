import { execFileSync } from "node:child_process";

/** The test process's own address on a test LAN (see Lan.joinRoot). */
const ROOT_ADDRESS = "10.77.0.250";

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

/**
 * A LAN of network namespaces on one machine: a bridge in its own namespace and a
 * namespace per host on 10.77.0.0/24 with multicast routed over its veth, so real
 * mDNS and TCP cross between hosts and never touch the machine's own network.
 */
export class Lan {
  private readonly bridge: Netns;
  private readonly hosts = new Map<string, { ns: Netns; address: string }>();
  private readonly tag: string;
  private rootLink: string | null = null;

  constructor(label: string, hostNames: string[]) {
    this.tag = `${label.slice(0, 3)}${process.pid % 10000}`;
    this.bridge = new Netns(`${label}-br`);
    this.bridge.in(["ip", "link", "add", "br0", "type", "bridge"]);
    this.bridge.in(["ip", "link", "set", "br0", "up"]);
    hostNames.forEach((name, i) => {
      const ns = new Netns(`${label}-${name}`);
      const inside = `v${this.tag}${i}`;
      const outside = `b${this.tag}${i}`;
      const address = `10.77.0.${i + 1}`;
      ip(["link", "add", inside, "type", "veth", "peer", "name", outside]);
      ip(["link", "set", inside, "netns", ns.name]);
      ip(["link", "set", outside, "netns", this.bridge.name]);
      this.bridge.in(["ip", "link", "set", outside, "master", "br0"]);
      this.bridge.in(["ip", "link", "set", outside, "up"]);
      ns.in(["ip", "addr", "add", `${address}/24`, "dev", inside]);
      ns.in(["ip", "link", "set", inside, "up"]);
      ns.in(["ip", "route", "del", "224.0.0.0/4", "dev", "lo"]);
      ns.in(["ip", "route", "add", "224.0.0.0/4", "dev", inside]);
      this.hosts.set(name, { ns, address });
    });
  }

  /**
   * Puts the test process's own namespace on the LAN at 10.77.0.250 through a
   * veth into the bridge (only 10.77.0.0/24 is routed there), so the test can
   * reach services on the hosts. Nothing leaves through the machine's interfaces.
   */
  joinRoot(): string {
    const inside = `r${this.tag}`;
    const outside = `q${this.tag}`;
    ip(["link", "add", inside, "type", "veth", "peer", "name", outside]);
    ip(["link", "set", outside, "netns", this.bridge.name]);
    this.bridge.in(["ip", "link", "set", outside, "master", "br0"]);
    this.bridge.in(["ip", "link", "set", outside, "up"]);
    ip(["addr", "add", `${ROOT_ADDRESS}/24`, "dev", inside]);
    ip(["link", "set", inside, "up"]);
    this.rootLink = inside;
    return ROOT_ADDRESS;
  }

  /** Pulls (or plugs back) a host's cable: its end of the link goes down or up. */
  setLink(name: string, up: boolean): void {
    const { ns, link } = this.require(name);
    ns.in(["ip", "link", "set", link, up ? "up" : "down"]);
    if (up) {
      // Bringing a link down drops its routes; the multicast route comes back with it.
      try {
        ns.in(["ip", "route", "add", "224.0.0.0/4", "dev", link]);
      } catch {
        // Still there.
      }
    }
  }

  /**
   * Makes a host's link lossy (and slow where the kernel has netem): `percent`
   * of packets dropped each way. Returns what was applied, for the report.
   */
  impair(name: string, percent: number, delayMs: number): string {
    const { ns, link } = this.require(name);
    try {
      ns.in(["tc", "qdisc", "add", "dev", link, "root", "netem", "delay", `${delayMs}ms`, "loss", `${percent}%`]);
      return `netem: ${delayMs} ms delay, ${percent}% loss`;
    } catch {
      // No sch_netem in this kernel: nftables drops at random instead; no added delay.
      ns.in(["nft", "add", "table", "inet", "kilnlab"]);
      for (const [chain, hook, dir] of [
        ["in", "input", "iifname"],
        ["out", "output", "oifname"],
      ] as const) {
        ns.in(["nft", "add", "chain", "inet", "kilnlab", chain, `{ type filter hook ${hook} priority 0; }`]);
        ns.in([
          "nft",
          "add",
          "rule",
          "inet",
          "kilnlab",
          chain,
          dir,
          link,
          "numgen",
          "random",
          "mod",
          "100",
          "<",
          String(percent),
          "drop",
        ]);
      }
      return `nftables: ${percent}% loss each way (this kernel has no netem, so no added delay)`;
    }
  }

  /**
   * Caps what reaches a host over its cable at `mbit` Mbit/s (a token bucket
   * on the bridge's end of its veth), so that a transfer to it lasts long
   * enough to act on mid-way. Returns what was applied, for the report.
   */
  limitRateTo(name: string, mbit: number): string {
    const index = [...this.hosts.keys()].indexOf(name);
    this.require(name);
    const qdisc = `root tbf rate ${mbit}mbit burst 256kb latency 100ms`.split(" ");
    try {
      this.bridge.in(["tc", "qdisc", "add", "dev", `b${this.tag}${index}`, ...qdisc]);
      return `tbf: ${mbit} Mbit/s to ${name}`;
    } catch {
      return `no sch_tbf in this kernel: ${name}'s link runs at full speed`;
    }
  }

  /**
   * ARP spoofing, as an attacker on the LAN does it: `victim`'s neighbour
   * entry for `spoofed`'s address points at `attacker`'s link, and the
   * attacker takes the packets meant for that address (DNAT to itself), so
   * whatever `victim` sends to `spoofed` reaches a program on `attacker`.
   */
  poisonArp(victim: string, spoofed: string, attacker: string): void {
    const target = this.require(victim);
    const mitm = this.require(attacker);
    const spoofedAddress = this.host(spoofed).address;
    const mac = execFileSync("ip", ["netns", "exec", mitm.ns.name, "cat", `/sys/class/net/${mitm.link}/address`], {
      encoding: "utf8",
    }).trim();
    mitm.ns.in(["nft", "add", "table", "ip", "kilnmitm"]);
    mitm.ns.in(["nft", "add", "chain", "ip", "kilnmitm", "pre", "{ type nat hook prerouting priority -100; }"]);
    mitm.ns.in([
      "nft",
      "add",
      "rule",
      "ip",
      "kilnmitm",
      "pre",
      "ip",
      "daddr",
      spoofedAddress,
      "dnat",
      "to",
      this.host(attacker).address,
    ]);
    target.ns.in(["ip", "neigh", "replace", spoofedAddress, "lladdr", mac, "dev", target.link, "nud", "permanent"]);
  }

  /** Ends an ARP spoofing: `victim` learns `spoofed`'s real address again. */
  healArp(victim: string, spoofed: string, attacker: string): void {
    const target = this.require(victim);
    target.ns.in(["ip", "neigh", "del", this.host(spoofed).address, "dev", target.link]);
    this.require(attacker).ns.in(["nft", "delete", "table", "ip", "kilnmitm"]);
  }

  host(name: string): { prefix: string[]; address: string; ns: Netns } {
    const host = this.hosts.get(name);
    if (!host) throw new Error(`no host ${name} on this test LAN`);
    return { prefix: host.ns.prefix(), address: host.address, ns: host.ns };
  }

  destroy(): void {
    for (const { ns } of this.hosts.values()) ns.destroy();
    this.bridge.destroy();
    if (this.rootLink) {
      try {
        ip(["link", "del", this.rootLink]);
      } catch {
        // Gone with the bridge namespace.
      }
    }
  }

  private require(name: string): { ns: Netns; link: string } {
    const index = [...this.hosts.keys()].indexOf(name);
    const host = this.hosts.get(name);
    if (!host) throw new Error(`no host ${name} on this test LAN`);
    return { ns: host.ns, link: `v${this.tag}${index}` };
  }
}
