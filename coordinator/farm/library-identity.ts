import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { writePrivateText } from "../secrets/private-json-file";
import { loadOrCreateSelfSigned } from "../secrets/self-signed-identity";

const KEY_FILE = "farm-library-tls-key.pem";
const CERT_FILE = "farm-library-tls-cert.pem";
const SECRET_FILE = "farm-library-secret";

/**
 * What the app's library server on the farm is known by, kept in the data
 * dir (0600): an EC P-256 key with a self-signed certificate, whose SHA-256
 * every task for a library pack carries (nodes pin it, no CA involved), and
 * the secret pack keys are HMACs under. Kept across restarts, so tasks still
 * on Redis after one keep their pin and keys.
 */
export class LibraryIdentity {
  private constructor(
    readonly key: string,
    readonly cert: string,
    /** SHA-256 of the DER certificate, 64 lowercase hex digits. */
    readonly fingerprint: string,
    private readonly secret: Buffer,
  ) {}

  static async load(dataDir: string): Promise<LibraryIdentity> {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const tls = await loadOrCreateSelfSigned(
      dataDir,
      { key: KEY_FILE, cert: CERT_FILE },
      `kiln model library on ${hostname()}`,
      [
        { name: "basicConstraints", cA: true, critical: true },
        { name: "keyUsage", digitalSignature: true, keyCertSign: true },
        { name: "extKeyUsage", serverAuth: true },
      ],
    );
    const secretPath = join(dataDir, SECRET_FILE);
    if (!existsSync(secretPath)) writePrivateText(secretPath, `${randomBytes(32).toString("hex")}\n`);
    return new LibraryIdentity(
      tls.key,
      tls.cert,
      tls.fingerprint,
      Buffer.from(readFileSync(secretPath, "utf8").trim(), "hex"),
    );
  }

  /** The key that lets its holder fetch the pack with this content hash, and no other. */
  packKey(hash: string): string {
    return createHmac("sha256", this.secret).update(`kiln pack ${hash}`).digest("hex");
  }

  /** Whether `given` is the pack's key; compared in constant time. */
  keyFits(hash: string, given: unknown): boolean {
    const expected = Buffer.from(this.packKey(hash), "hex");
    const bytes = Buffer.from(typeof given === "string" && /^[0-9a-f]{64}$/.test(given) ? given : "", "hex");
    return bytes.length === expected.length && timingSafeEqual(bytes, expected);
  }
}
