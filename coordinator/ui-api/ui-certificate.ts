import { hostname } from "node:os";
import { loadOrCreateSelfSigned, type SelfSignedIdentity } from "../secrets/self-signed-identity";

export const UI_KEY_FILE = "ui-tls-key.pem";
export const UI_CERT_FILE = "ui-tls-cert.pem";

export type UiCertificate = SelfSignedIdentity;

/**
 * The TLS identity of `kiln serve --lan`, kept in the data dir, so the
 * fingerprint a person compared and the exception their browser keeps still
 * hold after a restart; the printed fingerprint is what a person checks. It is
 * not a CA certificate: Firefox refuses a CA certificate presented as a
 * server's own.
 */
export function loadOrCreateUiCertificate(dataDir: string): Promise<UiCertificate> {
  const name = hostname();
  return loadOrCreateSelfSigned(dataDir, { key: UI_KEY_FILE, cert: UI_CERT_FILE }, `kiln serve on ${name}`, [
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
  ]);
}
