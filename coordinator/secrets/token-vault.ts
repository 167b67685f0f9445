import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { z } from "zod";

/**
 * Where node tokens live. The desktop app plugs in a vault that encrypts with the
 * OS keychain (Electron's safeStorage); headless, tokens sit in a file only the
 * user can read (0600), never in the queue database.
 */
export interface TokenVault {
  get(nodeId: string): string | null;
  set(nodeId: string, token: string): void;
  delete(nodeId: string): void;
}

const VaultFile = z.record(z.string(), z.string());

export class FileTokenVault implements TokenVault {
  private tokens: Record<string, string>;

  constructor(private readonly file: string) {
    try {
      this.tokens = VaultFile.parse(JSON.parse(readFileSync(file, "utf8")));
      chmodSync(file, 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") {
        throw new Error(`${file} is unreadable (${(error as Error).message}); delete it and pair the nodes again`);
      }
      this.tokens = {};
    }
  }

  get(nodeId: string): string | null {
    return this.tokens[nodeId] ?? null;
  }

  set(nodeId: string, token: string): void {
    this.tokens[nodeId] = token;
    this.save();
  }

  delete(nodeId: string): void {
    delete this.tokens[nodeId];
    this.save();
  }

  private save(): void {
    mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.tokens, null, 2), { mode: 0o600 });
    renameSync(tmp, this.file);
  }
}
