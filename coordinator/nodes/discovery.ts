import { EventEmitter } from "node:events";
import { Bonjour, type Browser, type Service } from "bonjour-service";
import { MDNS_SERVICE } from "../../shared/constants";
import { MdnsTxt } from "../../shared/node-info";

export interface DiscoveredNode {
  id: string;
  name: string;
  host: string;
  port: number;
  /** Certificate fingerprint from the advert: checked against what the node presents when pairing. */
  fingerprint: string;
  protocol: number;
  gpus: number;
  seenAt: number;
}

export interface DiscoveryEvents {
  up: [DiscoveredNode];
  down: [DiscoveredNode];
}

/** Advertised names and TXT fields are bounded so a hostile advert cannot bloat memory or the UI. */
const MAX_TRACKED = 1000;

/**
 * Browses `_kiln._tcp`. What it finds is a hint only: an advert with a malformed
 * TXT is ignored, and a node is trusted after pairing, by its id, through what it
 * answers on the API, never through the advert.
 */
export class Discovery extends EventEmitter<DiscoveryEvents> {
  private readonly bonjour = new Bonjour();
  private readonly browser: Browser;
  private readonly seen = new Map<string, DiscoveredNode>();

  constructor(now: () => number = Date.now) {
    super();
    this.browser = this.bonjour.find({ type: MDNS_SERVICE.type, protocol: MDNS_SERVICE.protocol });
    this.browser.on("up", (service: Service) => {
      const node = parse(service, now());
      if (!node || (this.seen.size >= MAX_TRACKED && !this.seen.has(key(node)))) return;
      this.seen.set(key(node), node);
      this.emit("up", node);
    });
    this.browser.on("down", (service: Service) => {
      const node = parse(service, now());
      if (node && this.seen.delete(key(node))) this.emit("down", node);
    });
  }

  nodes(): DiscoveredNode[] {
    return [...this.seen.values()];
  }

  /** Asks the LAN again (nodes answer within a second or so). */
  refresh(): void {
    this.browser.update();
  }

  close(): Promise<void> {
    this.browser.stop();
    return new Promise((resolve) => this.bonjour.destroy(() => resolve()));
  }
}

function key(node: DiscoveredNode): string {
  return `${node.id}@${node.host}:${node.port}`;
}

function parse(service: Service, seenAt: number): DiscoveredNode | null {
  const txt = MdnsTxt.safeParse(service.txt);
  const host = service.addresses?.find((a) => a.includes(".")) ?? service.referer?.address;
  if (!txt.success || !host || !Number.isInteger(service.port) || service.port <= 0 || service.port > 65535)
    return null;
  return {
    id: txt.data.id,
    name: txt.data.name,
    host,
    port: service.port,
    fingerprint: txt.data.fp,
    protocol: txt.data.v,
    gpus: txt.data.gpus,
    seenAt,
  };
}
