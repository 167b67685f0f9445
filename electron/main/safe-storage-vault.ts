import { chmodSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { writePrivateJson } from "../../coordinator/secrets/private-json-file";
import { FileTokenVault, type TokenVault } from "../../coordinator/secrets/token-vault";

/** What the vault needs of Electron's `safeStorage` (a fake in tests). */
export interface SafeStorageLike {
  isEncryptionAvailable(): boolean;
  /** Linux only: which secret store backs the key. */
  getSelectedStorageBackend(): string;
  encryptString(plain: string): Buffer;
  decryptString(sealed: Buffer): string;
}

const SealedFile = z.record(z.string(), z.string());

/**
 * Node tokens encrypted with the OS keychain's key (Keychain, DPAPI, libsecret or
 * KWallet through `safeStorage`), stored base64 in a file only the user can read.
 */
export class SafeStorageVault implements TokenVault {
  private sealed: Record<string, string>;

  constructor(
    private readonly file: string,
    private readonly storage: Pick<SafeStorageLike, "encryptString" | "decryptString">,
  ) {
    try {
      this.sealed = SealedFile.parse(JSON.parse(readFileSync(file, "utf8")));
      chmodSync(file, 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") {
        throw new Error(`${file} is unreadable (${(error as Error).message}); delete it and pair the nodes again`);
      }
      this.sealed = {};
    }
  }

  /** A token the keychain can no longer open (a new OS profile, a reset keyring) reads as missing: pair again. */
  get(nodeId: string): string | null {
    const sealed = this.sealed[nodeId];
    if (sealed === undefined) return null;
    try {
      return this.storage.decryptString(Buffer.from(sealed, "base64"));
    } catch {
      return null;
    }
  }

  set(nodeId: string, token: string): void {
    this.sealed[nodeId] = this.storage.encryptString(token).toString("base64");
    this.save();
  }

  delete(nodeId: string): void {
    delete this.sealed[nodeId];
    this.save();
  }

  private save(): void {
    writePrivateJson(this.file, this.sealed);
  }
}

/**
 * The keychain-backed vault when the OS offers one. On Linux without a secret
 * service, Electron falls back to a hard-coded key ("basic_text"), which hides
 * nothing: then the plain 0600 file of the CLI is used, which is honest about it.
 */
export function openTokenVault(dataDir: string, storage: SafeStorageLike, platform: NodeJS.Platform): TokenVault {
  const keychain =
    storage.isEncryptionAvailable() && (platform !== "linux" || storage.getSelectedStorageBackend() !== "basic_text");
  return keychain
    ? new SafeStorageVault(join(dataDir, "node-tokens.sealed.json"), storage)
    : new FileTokenVault(join(dataDir, "node-tokens.json"));
}
