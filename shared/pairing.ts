import { z } from "zod";
import { Fingerprint } from "./node-info";

/**
 * A node's bearer token, as it travels in an HTTP header: printable ASCII (no line breaks, no characters a
 * header cannot carry), no spaces at either end, of a sane length. One a node made at pairing is 43 base64url
 * characters; a deployment's own (`kiln-node --token-file`) may be any such text of 16 or more.
 */
export const NodeToken = z
  .string()
  .min(16, "must be at least 16 characters")
  .max(512, "must be at most 512 characters")
  .regex(/^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/, "must be printable ASCII (it travels in an HTTP header)");

/**
 * Pairing: the person reads a six-digit code off the node and types it into
 * the app. The code never crosses the network. App and node run a
 * password-authenticated key exchange on it (OPAQUE, RFC 9807, through
 * @serenity-kit/opaque), so whoever sees or relays the exchange learns nothing
 * to test guesses against offline: each guess needs a live exchange with the
 * node, and the node counts them. The exchange is bound to the TLS channel:
 * the node's certificate fingerprint is the server identity inside it, and
 * the app completes it with the fingerprint of the certificate it sees. A
 * relay presents its own certificate, so the app's side fails and the app
 * sends nothing more: no token is issued, nothing is pinned.
 */

/** Six ASCII digits, as the node shows them (`123-456`; `123456` and `123 456` are accepted too). */
export const PairingCode = z
  .string()
  .trim()
  .regex(/^[0-9]{3}[- ]?[0-9]{3}$/, "must be the six digits the node shows, e.g. 123-456")
  .transform((code) => code.replace(/[- ]/g, ""));
export type PairingCode = z.output<typeof PairingCode>;

/** OPAQUE messages, base64url as the library writes them; bounded far above their real size (~100–450 chars). */
const ExchangeMessage = z
  .string()
  .min(16)
  .max(2048)
  .regex(/^[A-Za-z0-9_-]+$/, "must be a base64url key-exchange message");

/** A pairing exchange in progress on the node, named by the node. */
export const PairingSession = z.string().regex(/^[0-9a-f]{32}$/, "must be the session id the node gave");

/** `POST /v1/pair/start`: the app's first key-exchange message. */
export const PairStartRequest = z.object({
  /** Who is pairing, shown in the node's log and pairing list. */
  client: z.string().min(1).max(100),
  request: ExchangeMessage,
});
export type PairStartRequest = z.infer<typeof PairStartRequest>;

export const PairStartResponse = z.object({
  session: PairingSession,
  response: ExchangeMessage,
});
export type PairStartResponse = z.infer<typeof PairStartResponse>;

/** `POST /v1/pair/finish`: sent only when the app's side of the exchange succeeded. */
export const PairFinishRequest = z.object({
  session: PairingSession,
  finish: ExchangeMessage,
  /** The certificate the app sees; the node checks it again (the exchange already binds it). */
  fingerprint: Fingerprint,
});
export type PairFinishRequest = z.infer<typeof PairFinishRequest>;

export const PairResponse = z.object({
  nodeId: z.string().uuid(),
  token: NodeToken,
});
export type PairResponse = z.infer<typeof PairResponse>;

/** Whose password file the node makes for its current code: there is only ever one. */
export const PAIRING_USER = "kiln-pairing";

/**
 * The exchange's key stretching, the same on both sides. Kept light on purpose:
 * the OPRF inside OPAQUE is what stops offline guessing by anyone who sees the
 * exchange; stretching only helps if the node's in-memory record leaked, where
 * no setting saves a six-digit code. Measured here: 6 ms per registration
 * instead of ~500 ms, so a new code never stalls the node's event loop.
 */
export const PAIRING_KEY_STRETCHING = { "argon2id-custom": { iterations: 1, memory: 4096, parallelism: 1 } } as const;

/** The identities inside the exchange: the server is the node's certificate, by its fingerprint. */
export function pairingIdentifiers(fingerprint: string): { server: string } {
  return { server: `kiln-node-certificate:${fingerprint}` };
}
