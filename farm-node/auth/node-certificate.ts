import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { normalizeFingerprint } from "../../shared/fingerprint";
import type { StateDir } from "../state-dir";

const KEY_FILE = "tls-key.pem";
export const CERT_FILE = "tls-cert.pem";
const VALID_YEARS = 50;

export interface NodeCertificate {
  key: string;
  cert: string;
  /** SHA-256 of the DER certificate, 64 lowercase hex digits. */
  fingerprint: string;
}

/**
 * The node's TLS identity: an EC P-256 key and a self-signed certificate made
 * on first start and kept in the state dir (key 0600). Studio apps pin its
 * fingerprint when they pair, so the certificate needs no CA and no host name;
 * it is marked as its own CA so a client can trust exactly it.
 */
export async function loadOrCreateCertificate(state: StateDir): Promise<NodeCertificate> {
  const keyPath = state.file(KEY_FILE);
  const certPath = state.file(CERT_FILE);
  if (!existsSync(keyPath) || !existsSync(certPath)) {
    const made = await createNodeCertificate();
    state.writeSecret(KEY_FILE, made.key);
    state.writeSecret(CERT_FILE, made.cert);
  }
  const cert = readFileSync(certPath, "utf8");
  return { key: readFileSync(keyPath, "utf8"), cert, fingerprint: certificateFingerprint(cert) };
}

/** A new key and self-signed certificate of the node's kind, in memory. */
export async function createNodeCertificate(): Promise<NodeCertificate> {
  // Loaded only to make one: a node restarting on its state dir never needs it.
  const { generate } = await import("selfsigned");
  const made = await generate([{ name: "commonName", value: "kiln-node" }], {
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
  return { key: made.private, cert: made.cert, fingerprint: certificateFingerprint(made.cert) };
}

export function certificateFingerprint(pem: string): string {
  return normalizeFingerprint(new X509Certificate(pem).fingerprint256);
}
