import { EventEmitter } from "node:events";
import type { Clock } from "../../coordinator/clock";
import type { NodeClientEvents, NodePin, SubmitOutcome } from "../../coordinator/nodes/node-client";
import type { NodeLinks } from "../../coordinator/nodes/node-fleet";
import type { NodeLink } from "../../coordinator/nodes/node-link";
import { KilnError } from "../../shared/errors";
import { NodeEvent, type NodeEventBody } from "../../shared/node-events";
import { NodeInfo } from "../../shared/node-info";
import { TaskAccepted, type TaskRequest } from "../../shared/task";
import type { SimulatedNode } from "./simulated-node";

/** What the real client waits for an answer before it calls a node unreachable (node-client.ts). */
const REQUEST_TIMEOUT_MS = 10_000;

/**
 * The coordinator's link to a simulated node, in place of the HTTPS/WSS
 * client: requests reach the node a network trip after they are made and
 * answers come back a trip later; events arrive a trip after the node sends
 * them and are parsed with the protocol's schema, as the real client does
 * (an event the schema refuses throws). A dead node answers nothing: requests
 * end as unreachable after the real client's timeout. PNG downloads take no
 * virtual time: their bytes are checked and stored with real I/O.
 */
export class SimulatedNodeLink extends EventEmitter<NodeClientEvents> implements NodeLink {
  private closed = false;
  private readonly listener = (event: NodeEventBody & { seq: number }) => {
    if (!this.closed) this.emit("event", NodeEvent.parse(event));
  };

  constructor(
    private readonly node: SimulatedNode,
    readonly pin: NodePin,
    private readonly clock: Clock,
    private readonly networkMs: number,
    private readonly onSubmit: (images: number) => void,
  ) {
    super();
  }

  info(): Promise<NodeInfo> {
    if (this.node.dead) return this.noAnswer();
    return Promise.resolve(NodeInfo.parse(this.node.info()));
  }

  submit(task: TaskRequest): Promise<SubmitOutcome> {
    this.onSubmit(task.images.length);
    return new Promise((resolve) => {
      this.clock.setTimeout(() => {
        const answer = this.node.submit(task);
        if (answer === null) {
          this.clock.setTimeout(
            () => resolve({ kind: "unreachable", error: new Error("the node did not answer (simulated timeout)") }),
            REQUEST_TIMEOUT_MS - this.networkMs,
          );
          return;
        }
        const outcome: SubmitOutcome =
          answer.kind === "accepted" ? { kind: "accepted", accepted: TaskAccepted.parse(answer.accepted) } : answer;
        this.clock.setTimeout(() => resolve(outcome), this.networkMs);
      }, this.networkMs);
    });
  }

  cancel(taskId: string): Promise<void> {
    if (this.node.dead) return this.noAnswer();
    return new Promise((resolve) => {
      this.clock.setTimeout(() => {
        this.node.cancel(taskId);
        this.clock.setTimeout(resolve, this.networkMs);
      }, this.networkMs);
    });
  }

  image(imageId: string, bytes: number): Promise<Buffer> {
    const png = this.node.image(imageId);
    if (!png) return Promise.reject(new KilnError("E_NOT_FOUND", `no image ${imageId} on the simulated node`));
    if (png.length !== bytes)
      return Promise.reject(new KilnError("E_INTERNAL", `image ${imageId} is not ${bytes} bytes`));
    return Promise.resolve(png);
  }

  unpair(): Promise<void> {
    return Promise.resolve();
  }

  connect(): void {
    this.clock.setTimeout(() => {
      if (this.closed || this.node.dead) return;
      this.node.attach(this.listener);
      this.emit("connected");
    }, this.networkMs);
  }

  ack(delivery: number, status: 200 | 409): void {
    this.clock.setTimeout(() => this.node.ack(delivery, status), this.networkMs);
  }

  close(): void {
    this.closed = true;
    this.node.detach(this.listener);
  }

  private noAnswer<T>(): Promise<T> {
    return new Promise((_, reject) => {
      this.clock.setTimeout(() => reject(new Error("the node did not answer (simulated timeout)")), REQUEST_TIMEOUT_MS);
    });
  }
}

export interface SimulatedAddress {
  host: string;
  port: number;
  fingerprint: string;
  node: SimulatedNode;
}

/**
 * The coordinator's NodeLinks over simulated nodes at made-up addresses: what
 * `addNode(host, port, …)` probes and opens. Counts the tasks sent, the
 * coordinator's dispatch decisions.
 */
export class SimulatedNodeLinks implements NodeLinks {
  submitted = 0;
  /** Images in the tasks submitted. */
  submittedImages = 0;
  private readonly byAddress = new Map<string, SimulatedAddress>();

  constructor(
    addresses: readonly SimulatedAddress[],
    private readonly clock: Clock,
    private readonly networkMs: number,
  ) {
    for (const a of addresses) this.byAddress.set(`${a.host}:${a.port}`, a);
  }

  probe(host: string, port: number): Promise<NodePin> {
    const found = this.byAddress.get(`${host}:${port}`);
    if (!found) return Promise.reject(new KilnError("E_INTERNAL", `cannot reach ${host}:${port}`));
    return Promise.resolve({ certPem: "", fingerprint: found.fingerprint });
  }

  open(baseUrl: string, _token: string, pin: NodePin): NodeLink {
    const found = this.byAddress.get(new URL(baseUrl).host);
    if (!found) throw new KilnError("E_INTERNAL", `no simulated node at ${baseUrl}`);
    return new SimulatedNodeLink(found.node, pin, this.clock, this.networkMs, (images) => {
      this.submitted++;
      this.submittedImages += images;
    });
  }
}
