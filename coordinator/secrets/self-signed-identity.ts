import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { generate } from "selfsigned";
import { normalizeFingerprint } from "../../shared/fingerprint";
import { writePrivateText } from "./private-json-file";

/** Long enough that no studio meets its end: the fingerprint is what is trusted, not the dates. */
const VALID_YEARS = 50;

export interface SelfSignedIdentity {
  key: string;
  cert: string;
  /** SHA-256 of the DER certificate, 64 lowercase hex digits. */
  fingerprint: string;
}

type Extensions = NonNullable<Parameters<typeof generate>[1]>["extensions"];

/**
 * An EC P-256 key with a self-signed certificate, made on first use and kept
 * in `dataDir` (0600), so the fingerprint that peers pin (or a person
 * compared) holds across restarts. No CA vouches for a LAN name.
 */
export async function loadOrCreateSelfSigned(
  dataDir: string,
  files: { key: string; cert: string },
  commonName: string,
  extensions: Extensions,
): Promise<SelfSignedIdentity> {
  const keyPath = join(dataDir, files.key);
  const certPath = join(dataDir, files.cert);
  if (!existsSync(keyPath) || !existsSync(certPath)) {
    // Loaded only to make one: an app restarting on its data dir never needs it.
    const { generate } = await import("selfsigned");
    const made = await generate([{ name: "commonName", value: commonName }], {
      keyType: "ec",
      curve: "P-256",
      algorithm: "sha256",
      notAfterDate: new Date(Date.now() + VALID_YEARS * 365.25 * 86_400_000),
      extensions,
    });
    writePrivateText(keyPath, made.private);
    writePrivateText(certPath, made.cert);
  }
  const cert = readFileSync(certPath, "utf8");
  return {
    key: readFileSync(keyPath, "utf8"),
    cert,
    fingerprint: normalizeFingerprint(new X509Certificate(cert).fingerprint256),
  };
}
