import { createHash } from "node:crypto";
import { isIP } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { Agent } from "undici";

const CONNECT_TIMEOUT_MS = 10_000;

/**
 * An HTTPS agent that talks only to a server whose certificate hashes to
 * `fingerprint` (SHA-256 of the DER, 64 lowercase hex digits): no CA and no
 * host name is trusted, the certificate is checked before a byte of any
 * request is sent, and a server presenting any other is refused.
 */
export function fingerprintAgent(fingerprint: string): Agent {
  return new Agent({
    connections: 2,
    connect: (options, callback) => {
      const host = options.hostname;
      const socket = tlsConnect({
        host,
        port: Number(options.port) || 443,
        ...(isIP(host) ? {} : { servername: host }),
        // Verified below by the certificate's hash, which is stronger than any CA's word for it.
        rejectUnauthorized: false,
        ALPNProtocols: ["http/1.1"],
      });
      let settled = false;
      const fail = (error: Error) => {
        if (settled) return;
        settled = true;
        socket.destroy();
        callback(error, null);
      };
      socket.setTimeout(CONNECT_TIMEOUT_MS, () =>
        fail(new Error(`no TLS answer within ${CONNECT_TIMEOUT_MS / 1000} s`)),
      );
      socket.once("error", fail);
      socket.once("secureConnect", () => {
        const raw = socket.getPeerCertificate()?.raw;
        const got = raw ? createHash("sha256").update(raw).digest("hex") : "";
        if (got !== fingerprint) {
          fail(
            Object.assign(
              new Error(
                `the server presents a certificate with SHA-256 ${got || "(none)"}, not the pinned ${fingerprint}`,
              ),
              {
                code: "ERR_KILN_FINGERPRINT",
              },
            ),
          );
          return;
        }
        settled = true;
        socket.setTimeout(0);
        socket.removeListener("error", fail);
        callback(null, socket);
      });
    },
  });
}
