import { z } from "zod";
import { Fingerprint } from "../../shared/node-info";
import type { NodePin } from "../nodes/node-client";
import { readPrivateJson, writePrivateJson } from "./private-json-file";

const PinFile = z.record(z.string(), z.object({ certPem: z.string().max(16_384), fingerprint: Fingerprint }));

/**
 * The certificate each paired node was pinned to at pairing. Not secret, but
 * whoever can change it can redirect the studio's tokens, so it is written
 * like the token file: owner-only, atomically.
 */
export class CertificatePins {
  private readonly pins: Record<string, NodePin>;

  constructor(private readonly file: string) {
    this.pins = readPrivateJson(file, PinFile, {});
  }

  get(nodeId: string): NodePin | null {
    return this.pins[nodeId] ?? null;
  }

  set(nodeId: string, pin: NodePin): void {
    this.pins[nodeId] = pin;
    writePrivateJson(this.file, this.pins);
  }

  delete(nodeId: string): void {
    delete this.pins[nodeId];
    writePrivateJson(this.file, this.pins);
  }
}
