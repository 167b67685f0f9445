import { z } from "zod";
import { readPrivateJson, writePrivateJson } from "./private-json-file";

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
  private readonly tokens: Record<string, string>;

  constructor(private readonly file: string) {
    this.tokens = readPrivateJson(file, VaultFile, {});
  }

  get(nodeId: string): string | null {
    return this.tokens[nodeId] ?? null;
  }

  set(nodeId: string, token: string): void {
    this.tokens[nodeId] = token;
    writePrivateJson(this.file, this.tokens);
  }

  delete(nodeId: string): void {
    delete this.tokens[nodeId];
    writePrivateJson(this.file, this.tokens);
  }
}
