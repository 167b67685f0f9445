import { X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { generate } from "selfsigned";
import { normalizeFingerprint } from "../../shared/fingerprint";

export const UI_KEY_FILE = "ui-tls-key.pem";
export const UI_CERT_FILE = "ui-tls-cert.pem";
const VALID_YEARS = 50;

export interface UiCertificate {
  key: string;
  cert: string;
  /** SHA-256 of the DER certificate, 64 lowercase hex digits. */
  fingerprint: string;
}

/**
 * The TLS identity of `kiln serve --lan`: an EC P-256 key and a self-signed
 * certificate made on first use and kept in the data dir (key 0600), so the
 * fingerprint a person compared and the exception their browser keeps still
 * hold after a restart. No CA vouches for a LAN name; the printed fingerprint
 * is what a person checks. It is not a CA certificate: Firefox refuses a CA
 * certificate presented as a server's own.
 */
export async function loadOrCreateUiCertificate(dataDir: string): Promise<UiCertificate> {
  const keyPath = join(dataDir, UI_KEY_FILE);
  const certPath = join(dataDir, UI_CERT_FILE);
  if (!existsSync(keyPath) || !existsSync(certPath)) {
    const name = hostname();
    const made = await generate([{ name: "commonName", value: `kiln serve on ${name}` }], {
      keyType: "ec",
      curve: "P-256",
      algorithm: "sha256",
      notAfterDate: new Date(Date.now() + VALID_YEARS * 365.25 * 86_400_000),
      extensions: [
        { name: "basicConstraints", cA: false, critical: true },
        { name: "keyUsage", digitalSignature: true, critical: true },
        { name: "extKeyUsage", serverAuth: true },
        // Browsers match names only from here; the address kiln serve prints uses the host name.
        {
          name: "subjectAltName",
          altNames: [
            { type: 2, value: name },
            { type: 2, value: `${name}.local` },
          ],
        },
      ],
    });
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    writePrivate(keyPath, made.private);
    writePrivate(certPath, made.cert);
  }
  const cert = readFileSync(certPath, "utf8");
  return {
    key: readFileSync(keyPath, "utf8"),
    cert,
    fingerprint: normalizeFingerprint(new X509Certificate(cert).fingerprint256),
  };
}

/** Atomic (temp file + rename) and owner-only, so a crash never leaves half a key. */
function writePrivate(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, file);
}
