import type { EventEmitter } from "node:events";
import type { NodeInfo } from "../../shared/node-info";
import type { TaskRequest } from "../../shared/task";
import type { NodeClientEvents, NodePin, SubmitOutcome } from "./node-client";

/**
 * What the coordinator asks of a node it dispatches to: a paired LAN node
 * (NodeClient), or in farm mode the whole farm behind Redis (FarmClient),
 * which takes tasks into the app's queue and reports every node's results.
 */
export interface NodeLink extends EventEmitter<NodeClientEvents> {
  readonly pin: NodePin;
  info(): Promise<NodeInfo>;
  submit(task: TaskRequest): Promise<SubmitOutcome>;
  /** img2img: stores an init image (PNG) on the node by its sha256; a LAN node only. */
  putInitImage?(sha256: string, png: Buffer): Promise<void>;
  cancel(taskId: string): Promise<void>;
  /** The PNG bytes of an image the link announced: exactly the `bytes` it announced, or a RefusedResult. */
  image(imageId: string, bytes: number): Promise<Buffer>;
  unpair(): Promise<void>;
  connect(): void;
  /** Confirms an announced outcome was handled (200) or refused as no longer this link's (409). */
  ack(delivery: number, status: 200 | 409, reason?: string): void;
  close(): void;
  /**
   * Set when the link decides how much work it takes at once (the farm: two
   * tasks per device on Redis); a LAN node's devices get the scheduler's own.
   */
  pipelineDepth?(): number;
}
