import { createHmac, randomBytes, timingSafeEqual, X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { generate } from "selfsigned";
import { normalizeFingerprint } from "../../shared/fingerprint";

const KEY_FILE = "farm-library-tls-key.pem";
const CERT_FILE = "farm-library-tls-cert.pem";
const SECRET_FILE = "farm-library-secret";
const VALID_YEARS = 50;

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
    const keyPath = join(dataDir, KEY_FILE);
    const certPath = join(dataDir, CERT_FILE);
    if (!existsSync(keyPath) || !existsSync(certPath)) {
      const made = await generate([{ name: "commonName", value: `kiln model library on ${hostname()}` }], {
        keyType: "ec",
        curve: "P-256",
        algorithm: "sha256",
        notAfterDate: new Date(Date.now() + VALID_YEARS * 365.25 * 86_400_000),
        extensions: [
          { name: "basicConstraints", cA: true, critical: true },
          { name: "keyUsage", digitalSignature: true, keyCertSign: true },
          { name: "extKeyUsage", serverAuth: true },
        ],
      });
      writePrivate(keyPath, made.private);
      writePrivate(certPath, made.cert);
    }
    const secretPath = join(dataDir, SECRET_FILE);
    if (!existsSync(secretPath)) writePrivate(secretPath, `${randomBytes(32).toString("hex")}\n`);
    const cert = readFileSync(certPath, "utf8");
    return new LibraryIdentity(
      readFileSync(keyPath, "utf8"),
      cert,
      normalizeFingerprint(new X509Certificate(cert).fingerprint256),
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

/** Atomic (temp file + rename) and owner-only, so a crash never leaves half a key. */
function writePrivate(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, file);
}
