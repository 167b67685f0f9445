import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { z } from "zod";
import { Fingerprint } from "../../shared/node-info";
import type { NodePin } from "../nodes/node-client";

const PinFile = z.record(z.string(), z.object({ certPem: z.string().max(16_384), fingerprint: Fingerprint }));

/**
 * The certificate each paired node was pinned to at pairing. Not secret, but
 * whoever can change it can redirect the studio's tokens, so it is written
 * like the token file: owner-only, atomically.
 */
export class CertificatePins {
  private pins: Record<string, NodePin>;

  constructor(private readonly file: string) {
    try {
      this.pins = PinFile.parse(JSON.parse(readFileSync(file, "utf8")));
      chmodSync(file, 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") {
        throw new Error(`${file} is unreadable (${(error as Error).message}); delete it and pair the nodes again`);
      }
      this.pins = {};
    }
  }

  get(nodeId: string): NodePin | null {
    return this.pins[nodeId] ?? null;
  }

  set(nodeId: string, pin: NodePin): void {
    this.pins[nodeId] = pin;
    this.save();
  }

  delete(nodeId: string): void {
    delete this.pins[nodeId];
    this.save();
  }

  private save(): void {
    mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.pins, null, 2), { mode: 0o600 });
    renameSync(tmp, this.file);
  }
}
