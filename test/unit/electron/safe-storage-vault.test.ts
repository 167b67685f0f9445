import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileTokenVault } from "../../../coordinator/secrets/token-vault";
import { openTokenVault, type SafeStorageLike, SafeStorageVault } from "../../../electron/main/safe-storage-vault";

/** Stands in for safeStorage: a reversible scramble with a key, so a wrong key fails like the real one. */
function fakeSafeStorage(key = 42, opts: { available?: boolean; backend?: string } = {}): SafeStorageLike {
  return {
    isEncryptionAvailable: () => opts.available ?? true,
    getSelectedStorageBackend: () => opts.backend ?? "gnome_libsecret",
    encryptString: (plain) => Buffer.from(Buffer.from(`v10${plain}`, "utf8").map((b) => b ^ key)),
    decryptString: (sealed) => {
      const text = Buffer.from(sealed.map((b) => b ^ key)).toString("utf8");
      if (!text.startsWith("v10"))
        throw new Error("Error while decrypting the ciphertext provided to safeStorage.decryptString.");
      return text.slice(3);
    },
  };
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "kiln-vault-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("SafeStorageVault", () => {
  it("keeps tokens encrypted in a 0600 file and reads them back after a restart", () => {
    const file = join(dir, "node-tokens.sealed.json");
    const vault = new SafeStorageVault(file, fakeSafeStorage());
    vault.set("node-a", "secret-token-a");
    vault.set("node-b", "secret-token-b");
    vault.delete("node-b");

    const text = readFileSync(file, "utf8");
    expect(text).not.toContain("secret-token");
    expect(Object.keys(JSON.parse(text))).toEqual(["node-a"]);
    expect(statSync(file).mode & 0o777).toBe(0o600);

    const reopened = new SafeStorageVault(file, fakeSafeStorage());
    expect(reopened.get("node-a")).toBe("secret-token-a");
    expect(reopened.get("node-b")).toBeNull();
  });

  it("reads a token the keychain can no longer open as missing (pair again)", () => {
    const file = join(dir, "node-tokens.sealed.json");
    new SafeStorageVault(file, fakeSafeStorage(42)).set("node-a", "secret");
    expect(new SafeStorageVault(file, fakeSafeStorage(7)).get("node-a")).toBeNull();
  });

  it("refuses a corrupt file with a message that says what to do", () => {
    const file = join(dir, "node-tokens.sealed.json");
    writeFileSync(file, "{oops");
    expect(() => new SafeStorageVault(file, fakeSafeStorage())).toThrow(/delete it and pair the nodes again/);
  });
});

describe("openTokenVault", () => {
  it("uses the keychain where the OS has one", () => {
    expect(openTokenVault(dir, fakeSafeStorage(), "darwin")).toBeInstanceOf(SafeStorageVault);
    expect(openTokenVault(dir, fakeSafeStorage(), "win32")).toBeInstanceOf(SafeStorageVault);
    expect(openTokenVault(dir, fakeSafeStorage(42, { backend: "kwallet6" }), "linux")).toBeInstanceOf(SafeStorageVault);
  });

  it("falls back to the 0600 file without encryption, or with Linux's hard-coded basic_text key", () => {
    expect(openTokenVault(dir, fakeSafeStorage(42, { available: false }), "darwin")).toBeInstanceOf(FileTokenVault);
    expect(openTokenVault(dir, fakeSafeStorage(42, { backend: "basic_text" }), "linux")).toBeInstanceOf(FileTokenVault);
  });
});
