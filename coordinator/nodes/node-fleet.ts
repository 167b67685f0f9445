import { join } from "node:path";
import type { Logger } from "pino";
import { KilnError } from "../../shared/errors";
import { formatFingerprint, normalizeFingerprint } from "../../shared/fingerprint";
import type { NodeEvent } from "../../shared/node-events";
import type { ModelInfo } from "../../shared/node-info";
import type { NodeSummary, UiEvent } from "../../shared/ui-api";
import type { ChangeFeed } from "../change-feed";
import type { Clock } from "../clock";
import { FARM_APP_FILE, farmNodeSummaries, loadFarmApp } from "../farm/farm-app";
import type { FarmClient, FarmPackLibrary } from "../farm/farm-client";
import type { CertificatePins } from "../secrets/certificate-pins";
import type { TokenVault } from "../secrets/token-vault";
import type { Ledger } from "../store/ledger";
import { type DiscoveredNode, Discovery } from "./discovery";
import { LocalNode } from "./local-node";
import { NodeClient, type NodePin } from "./node-client";
import { NodeConnection } from "./node-connection";
import type { NodeLink } from "./node-link";
import { pairWithCode, parsePairingCode } from "./pairing-client";

/** What a person said about the certificate of a node added by token: its fingerprint, or trust whatever answers. */
export type ExpectedCertificate = { fingerprint: string } | "trust-first-use";

/**
 * How the fleet reaches nodes: their certificate read at an address, and a
 * link to a paired node. Real HTTPS/WSS by default; bench:scheduler puts
 * simulated nodes behind the same seam.
 */
export interface NodeLinks {
  probe(host: string, port: number): Promise<NodePin>;
  open(baseUrl: string, token: string, pin: NodePin): NodeLink;
}

export const networkLinks: NodeLinks = {
  probe: (host, port) => NodeClient.probe(host, port),
  open: (baseUrl, token, pin) => new NodeClient(baseUrl, token, pin),
};

export interface NodeFleetOptions {
  ledger: Ledger;
  vault: TokenVault;
  pins: CertificatePins;
  changes: ChangeFeed;
  clock: Clock;
  log: Logger;
  /** How this app introduces itself when pairing. */
  clientName: string;
  dataDir: string;
  links?: NodeLinks;
  /** Every event of every node, and a node's (re)connection. */
  onEvent(node: NodeConnection, event: NodeEvent): void;
  onConnected(node: NodeConnection): void;
  /** A node's (or a farm node's) devices as the farm panel shows them. */
  onTelemetry(update: TelemetryUpdate): void;
}

export type TelemetryUpdate = Omit<Extract<UiEvent, { type: "telemetry" }>, "type">;

export interface FleetStart {
  localNode: false | { args: string[] };
  discovery: boolean;
  farm?: string;
  /** Farm mode: the studio's library, served to nodes that lack a queued task's pack. */
  farmLibrary?: FarmPackLibrary;
}

/** A node listing no models is asked again after this, then twice as long each time up to the most. */
const FIRST_INFO_RETRY_MS = 250;
const MAX_INFO_RETRY_MS = 10_000;

/**
 * The nodes this app works with and its links to them: paired LAN nodes (and
 * "This computer"), nodes found by mDNS and not paired yet, or in farm mode the
 * farm behind Redis as one node. Owns pairing, adding by token, draining,
 * removing, identity conflicts and the node list the farm panel shows.
 */
export class NodeFleet {
  private readonly nodes = new Map<string, NodeConnection>();
  private readonly discovered = new Map<string, DiscoveredNode>();
  private discovery: Discovery | null = null;
  private localNode: LocalNode | null = null;
  private farmClient: FarmClient | null = null;
  private farmNodesSeen = "";
  private farmModelsSeen = "";
  private stopped = false;
  /** Per node listing no models yet: how long until its info is read again (doubling while none come). */
  private readonly infoRetryMs = new Map<string, number>();

  constructor(private readonly opts: NodeFleetOptions) {}

  async start(how: FleetStart): Promise<void> {
    const { ledger, vault, pins, log } = this.opts;
    if (how.farm) {
      await this.connectFarm(how.farm, how.farmLibrary);
      return;
    }
    for (const node of ledger.nodes()) {
      const token = vault.get(node.id);
      const pin = pins.get(node.id);
      if (node.paired && token && pin)
        this.connect(node.id, node.name, node.host, node.port, token, pin, false, node.drained);
    }
    if (how.localNode) {
      this.localNode = new LocalNode({
        stateDir: join(this.opts.dataDir, "local-node"),
        args: how.localNode.args,
        log,
      });
      // Remote nodes still render when this computer's node cannot start.
      try {
        const local = await this.localNode.start();
        this.connect(local.nodeId, "This computer", "127.0.0.1", local.port, local.token, local.pin, true, false);
      } catch (error) {
        log.error({ err: error }, "the local node did not start; continuing with the farm's nodes");
        this.localNode = null;
      }
    }
    if (how.discovery) {
      this.discovery = new Discovery(() => this.opts.clock.now());
      this.discovery.on("up", (node) => this.onDiscovered(node));
      this.discovery.on("down", (node) => {
        this.discovered.delete(`${node.id}@${node.host}:${node.port}`);
        this.opts.changes.nodesChanged();
      });
    }
  }

  /** Closes every link (requests in flight end at once), stops discovery and the local node. */
  closeLinks(): void {
    this.stopped = true;
    for (const node of this.nodes.values()) node.client.close();
  }

  async stop(): Promise<void> {
    await this.discovery?.close();
    await this.localNode?.stop();
  }

  get(nodeId: string): NodeConnection | undefined {
    return this.nodes.get(nodeId);
  }

  all(): IterableIterator<NodeConnection> {
    return this.nodes.values();
  }

  require(nodeId: string): NodeConnection {
    const node = this.nodes.get(nodeId);
    if (!node) throw new KilnError("E_NOT_FOUND", `no paired node ${nodeId}`);
    return node;
  }

  /** A node with its models known is online. */
  anyReady(): boolean {
    return [...this.nodes.values()].some((n) => n.status === "online" && (n.info?.models.length ?? 0) > 0);
  }

  /** Every node this app knows is online with its models known (none known: false). */
  allReady(): boolean {
    const nodes = [...this.nodes.values()];
    return nodes.length > 0 && nodes.every((n) => n.status === "online" && (n.info?.models.length ?? 0) > 0);
  }

  /** Which mode this app runs in, for the UI and the CLI. */
  mode(): { mode: "lan" | "farm"; farm: string | null } {
    return this.farmClient ? { mode: "farm", farm: this.farmClient.name } : { mode: "lan", farm: null };
  }

  /** Every model some node offers, first node's entry per name. */
  models(): Map<string, ModelInfo> {
    const models = new Map<string, ModelInfo>();
    for (const node of this.nodes.values())
      for (const m of node.info?.models ?? []) if (m.available && !models.has(m.name)) models.set(m.name, m);
    return models;
  }

  /**
   * Pairs with the code the node shows. The node's certificate is read first
   * and, when the node was found by mDNS, must match its advert; the key
   * exchange on the code then proves that certificate is the node's (a machine
   * in between makes it fail before anything is sent). That certificate is
   * pinned: it is the only one trusted afterwards.
   */
  async pair(host: string, port: number, code: string): Promise<NodeSummary> {
    parsePairingCode(code);
    const pin = await this.links.probe(host, port);
    const advertised = [...this.discovered.values()].find((d) => d.host === host && d.port === port);
    if (advertised && advertised.fingerprint !== pin.fingerprint) {
      throw new KilnError(
        "E_IDENTITY_CHANGED",
        `the node at ${host}:${port} presents certificate ${formatFingerprint(pin.fingerprint)} but advertises ${formatFingerprint(advertised.fingerprint)}: something else answers at that address; not pairing`,
      );
    }
    const paired = await pairWithCode(baseUrlOf(host, port), pin, code, this.opts.clientName);
    // A node is who it proved to be, and the id it claims must not be another advertised machine's.
    const claimed = [...this.discovered.values()].find(
      (d) => d.id === paired.nodeId && d.fingerprint !== pin.fingerprint,
    );
    if ((advertised && advertised.id !== paired.nodeId) || claimed) {
      await this.revoke(host, port, paired.token, pin);
      throw new KilnError(
        "E_CONFLICT",
        advertised && advertised.id !== paired.nodeId
          ? `the node at ${host}:${port} advertises id ${advertised.id} but paired as ${paired.nodeId}; not pairing`
          : `the node at ${host}:${port} claims id ${paired.nodeId}, which ${claimed?.host}:${claimed?.port} advertises with another certificate; not pairing`,
      );
    }
    return this.adopt(paired.nodeId, host, port, paired.token, pin);
  }

  /**
   * A node given with its token (scripted deployments). The token goes only to
   * the certificate the person names by fingerprint (the node prints it at
   * start); with `trust-first-use` whatever certificate answers now is pinned.
   */
  async add(host: string, port: number, token: string, expected: ExpectedCertificate): Promise<NodeSummary> {
    const pin = await this.links.probe(host, port);
    if (expected !== "trust-first-use" && normalizeFingerprint(expected.fingerprint) !== pin.fingerprint) {
      throw new KilnError(
        "E_IDENTITY_CHANGED",
        `the node at ${host}:${port} presents certificate ${formatFingerprint(pin.fingerprint)}, not the ${formatFingerprint(expected.fingerprint)} you gave: something else answers at that address; the token was not sent`,
      );
    }
    const client = this.link(baseUrlOf(host, port), token, pin);
    try {
      const info = await client.info();
      return await this.adopt(info.id, host, port, token, pin);
    } finally {
      client.close();
    }
  }

  drain(nodeId: string, drained: boolean): void {
    const node = this.require(nodeId);
    node.drained = drained;
    this.opts.ledger.setDrained(nodeId, drained);
    this.opts.changes.nodesChanged();
  }

  /** Forgets a node; its token is revoked on the node too when the node can be reached. */
  remove(nodeId: string): void {
    const node = this.require(nodeId);
    if (!node.local && node.status !== "identity-changed") {
      node.client
        .unpair()
        .catch((error) => this.opts.log.warn({ node: nodeId, err: error }, "could not revoke the token on the node"))
        .finally(() => node.client.close());
    } else {
      node.client.close();
    }
    this.nodes.delete(nodeId);
    this.infoRetryMs.delete(nodeId);
    this.opts.ledger.removeNode(nodeId);
    this.opts.vault.delete(nodeId);
    this.opts.pins.delete(nodeId);
    this.opts.changes.nodesChanged();
  }

  /**
   * A node's event arrived: it is alive. A node marked lost is back (its info
   * is read again); telemetry updates its devices.
   */
  heard(node: NodeConnection, event: NodeEvent): void {
    node.lastHeard = this.opts.clock.now();
    if (node.status === "lost") {
      this.opts.log.info({ node: node.id }, "node is back");
      void this.refreshInfo(node);
    }
    if (event.type !== "telemetry") return;
    node.telemetry(event.devices, this.opts.clock.now());
    if (this.farmClient && node.client === this.farmClient) this.farmTelemetry(node, this.farmClient);
    else this.opts.onTelemetry({ nodeId: node.id, devices: event.devices, samples: node.latestSamples() });
  }

  /** A node silent past its lease: marked lost (its work is the dispatcher's to requeue). */
  markLost(node: NodeConnection, now: number): void {
    node.status = "lost";
    node.problem = `no heartbeat for ${((now - node.lastHeard) / 1000).toFixed(1)} s`;
    this.opts.changes.nodesChanged();
  }

  /** The farm panel's list: paired nodes (each farm node in farm mode), then discovered and conflicting adverts. */
  list(blocked: ReturnType<Ledger["blocklist"]>): NodeSummary[] {
    const known: NodeSummary[] = [...this.nodes.values()].flatMap((n) =>
      this.farmClient && n.client === this.farmClient ? farmNodeSummaries(this.farmClient) : [nodeSummary(n, blocked)],
    );
    const unpaired: NodeSummary[] = [...this.discovered.values()]
      .filter((d) => !this.nodes.has(d.id) || this.isConflict(d))
      .map((d) => ({
        id: d.id,
        name: d.name,
        host: d.host,
        port: d.port,
        status: this.isConflict(d) ? "conflict" : "unpaired",
        version: null,
        local: false,
        drained: false,
        devices: [],
        you: null,
        models: [],
        problem: this.isConflict(d)
          ? `another machine (${d.host}:${d.port}) advertises the id of paired node "${this.nodes.get(d.id)?.name}"; it gets no work and no token until a person re-pairs`
          : null,
        fingerprint: d.fingerprint,
        blockedModels: [],
        history: {},
      }));
    return [...known, ...unpaired];
  }

  /**
   * A client of its own for bulk transfers to a paired node (model pushes): its
   * own connections, so gigabytes in flight never hold up the tasks and events
   * on the node's link. Null for a node this app has not paired.
   */
  transferClient(nodeId: string): NodeClient | null {
    const node = this.nodes.get(nodeId);
    const token = this.opts.vault.get(nodeId);
    const pin = this.opts.pins.get(nodeId);
    if (!node || node.local || !token || !pin) return null;
    return new NodeClient(baseUrlOf(node.host, node.port), token, pin);
  }

  /** Reads a paired node's info again (its models after a push), as on a reconnect. */
  async refresh(nodeId: string): Promise<void> {
    const node = this.nodes.get(nodeId);
    if (node && !this.stopped) await this.refreshInfo(node);
  }

  private get links(): NodeLinks {
    return this.opts.links ?? networkLinks;
  }

  private link(baseUrl: string, token: string, pin: NodePin): NodeLink {
    return this.links.open(baseUrl, token, pin);
  }

  private async adopt(nodeId: string, host: string, port: number, token: string, pin: NodePin): Promise<NodeSummary> {
    const conflict = this.pinnedOtherwise(nodeId, pin);
    if (conflict) {
      await this.revoke(host, port, token, pin);
      this.opts.log.error({ node: nodeId, host, port, fingerprint: pin.fingerprint }, conflict.message);
      throw conflict;
    }
    this.opts.vault.set(nodeId, token);
    this.opts.pins.set(nodeId, pin);
    const existing = this.nodes.get(nodeId);
    existing?.client.close();
    this.nodes.delete(nodeId);
    const node = this.connect(
      nodeId,
      existing?.name ?? `${host}:${port}`,
      host,
      port,
      token,
      pin,
      false,
      existing?.drained ?? false,
    );
    await this.refreshInfo(node);
    return this.list(this.opts.ledger.blocklist()).find(
      (n) => n.id === nodeId && n.status !== "conflict",
    ) as NodeSummary;
  }

  /** The machine that just gave us a token must not keep one for an app that refused it. */
  private async revoke(host: string, port: number, token: string, pin: NodePin): Promise<void> {
    const refused = this.link(baseUrlOf(host, port), token, pin);
    await refused
      .unpair()
      .catch((error) => this.opts.log.warn({ host, port, err: error }, "could not revoke the refused node's token"))
      .finally(() => refused.close());
  }

  /**
   * A node id already paired with another certificate: another machine claims
   * it (node ids are advertised in the clear). Refused until a person removes
   * the paired node, e.g. after reinstalling it with a new key.
   */
  private pinnedOtherwise(nodeId: string, pin: NodePin): KilnError | null {
    const existing = this.nodes.get(nodeId);
    const pinned = existing?.client.pin ?? this.opts.pins.get(nodeId);
    if (!pinned || pinned.fingerprint === pin.fingerprint) return null;
    const name = existing?.name ?? nodeId;
    const where = existing ? ` at ${existing.host}:${existing.port}` : "";
    return new KilnError(
      "E_CONFLICT",
      `node id ${nodeId} is already paired as "${name}"${where} with certificate ${formatFingerprint(pinned.fingerprint)}; this machine presents ${formatFingerprint(pin.fingerprint)}. If "${name}" was reinstalled, remove it first, then pair again`,
      { nodeId, pinned: pinned.fingerprint, presented: pin.fingerprint },
    );
  }

  private connect(
    id: string,
    name: string,
    host: string,
    port: number,
    token: string,
    pin: NodePin,
    local: boolean,
    drained: boolean,
  ): NodeConnection {
    const client = this.link(baseUrlOf(host, port), token, pin);
    const node = new NodeConnection(id, name, host, port, client, local, drained);
    this.nodes.set(id, node);
    if (!local) this.opts.ledger.upsertNode({ id, name, host, port, paired: true, now: this.opts.clock.now() });
    this.wire(node);
    client.on("identityChanged", (error) => {
      if (node.status !== "identity-changed") this.opts.log.error({ node: id, host, port }, error.message);
      node.status = "identity-changed";
      node.problem = error.message;
      this.opts.changes.nodesChanged();
    });
    client.connect();
    return node;
  }

  /** Farm mode: the farm is one connection whose one device is this app's queue on Redis. */
  private async connectFarm(url: string, library: FarmPackLibrary | undefined): Promise<void> {
    const app = loadFarmApp(join(this.opts.dataDir, FARM_APP_FILE), this.opts.clientName);
    // Loaded only in farm mode: BullMQ and ioredis are most of the start-up of an app on the LAN otherwise.
    const { FarmClient } = await import("../farm/farm-client");
    // Stopped while it loaded: no link is made that nothing would close.
    if (this.stopped) return;
    const client = new FarmClient(url, app, this.opts.log, library);
    const node = new NodeConnection(client.nodeId, client.name, "", 0, client, false, false);
    // BullMQ's stalled-job check recovers a dead node's tasks; a Redis restart must not requeue everything here.
    node.leased = false;
    node.farm = true;
    this.farmClient = client;
    this.nodes.set(node.id, node);
    this.wire(node);
    client.connect();
    this.opts.log.info({ farm: client.name, app: app.id }, "farm mode: tasks go to this app's queue on Redis");
  }

  private wire(node: NodeConnection): void {
    node.client.on("event", (event) => this.opts.onEvent(node, event));
    node.client.on("connected", () => {
      void this.refreshInfo(node);
      try {
        this.opts.onConnected(node);
      } catch (error) {
        // Thrown from the link's own event: uncaught, it would end the app.
        this.opts.log.error({ err: error, node: node.id }, "could not resume a node's work as it connected");
      }
    });
  }

  /**
   * The farm's nodes, each as its own node in the farm panel; the list again
   * when one came or went, and the farm's info again when its models changed.
   */
  private farmTelemetry(node: NodeConnection, farm: FarmClient): void {
    const now = this.opts.clock.now();
    // Nodes coming and going, and their fetches of packs changing state (or 10 % of progress): the panel and kiln render show them.
    const seen = farm
      .nodeReports()
      .map(
        (r) =>
          `${r.id}:${farm.isStale(r)}:${(r.fetches ?? []).map((f) => `${f.model}/${f.state}/${Math.floor(f.percent / 10)}`).join("+")}`,
      )
      .join(",");
    if (seen !== this.farmNodesSeen) {
      this.farmNodesSeen = seen;
      this.opts.changes.nodesChanged();
    }
    const models = farm.modelsKey();
    if (models !== this.farmModelsSeen) {
      this.farmModelsSeen = models;
      void this.refreshInfo(node);
    }
    for (const report of farm.nodeReports()) {
      if (farm.isStale(report)) continue;
      const samples = Object.fromEntries(
        report.devices.map((d) => [
          d.uuid,
          { at: now, imagesPerMin: d.imagesPerSec * 60, utilizationPct: d.utilizationPct },
        ]),
      );
      this.opts.onTelemetry({ nodeId: report.id, devices: report.devices, samples });
    }
  }

  private async refreshInfo(node: NodeConnection): Promise<void> {
    try {
      const info = await node.client.info();
      if (info.id !== node.id) {
        node.status = "conflict";
        node.problem = `the node at ${node.host}:${node.port} now answers as ${info.id}, not the paired ${node.id}; re-pair it`;
        node.client.close();
      } else {
        node.info = info;
        node.name = info.name;
        // A node still loading its workers has no models yet: ask again shortly, then less often (its workers
        // may be unable to start, and say why in its devices).
        if (info.models.length > 0) this.infoRetryMs.delete(node.id);
        else if (!this.stopped) {
          const wait = this.infoRetryMs.get(node.id) ?? FIRST_INFO_RETRY_MS;
          this.infoRetryMs.set(node.id, Math.min(wait * 2, MAX_INFO_RETRY_MS));
          this.opts.clock.setTimeout(() => void this.refreshInfo(node), wait);
        }
        node.lastHeard = this.opts.clock.now();
        node.status = "online";
        node.problem = null;
        if (!node.local && node.leased)
          this.opts.ledger.upsertNode({
            id: node.id,
            name: info.name,
            host: node.host,
            port: node.port,
            paired: true,
            now: this.opts.clock.now(),
          });
      }
    } catch (error) {
      node.problem = (error as Error).message;
    }
    this.opts.changes.nodesChanged();
  }

  private onDiscovered(found: DiscoveredNode): void {
    this.discovered.set(`${found.id}@${found.host}:${found.port}`, found);
    if (this.isConflict(found))
      this.opts.log.warn(
        { node: found.id, host: found.host, port: found.port },
        "conflicting advert for a paired node id",
      );
    this.opts.changes.nodesChanged();
  }

  /** An advert that claims a paired node's id from another address is a conflict, never obeyed. */
  private isConflict(found: DiscoveredNode): boolean {
    const paired = this.nodes.get(found.id);
    return paired !== undefined && !paired.local && (paired.host !== found.host || paired.port !== found.port);
  }
}

function nodeSummary(n: NodeConnection, blocked: ReturnType<Ledger["blocklist"]>): NodeSummary {
  return {
    id: n.id,
    name: n.info?.name ?? n.name,
    host: n.host,
    port: n.port,
    status: n.drained && n.status === "online" ? "draining" : n.status,
    version: n.info?.version ?? null,
    local: n.local,
    drained: n.drained,
    devices: n.devices,
    you: n.info?.you?.client ?? null,
    models: n.info?.models ?? [],
    problem: n.problem,
    fingerprint: n.client.pin.fingerprint,
    blockedModels: blocked.filter((b) => b.nodeId === n.id).map((b) => b.model),
    history: Object.fromEntries(n.history),
  };
}

function formatHost(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

function baseUrlOf(host: string, port: number): string {
  return `https://${formatHost(host)}:${port}`;
}
