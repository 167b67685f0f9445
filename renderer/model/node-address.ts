import { DEFAULT_NODE_PORT } from "../../shared/constants";
import { normalizeFingerprint } from "../../shared/fingerprint";

/**
 * Reads "host", "host:port" or "[ipv6]:port" as typed in the add-node form.
 * Returns the parts, or a message that says what a valid address looks like.
 */
export function parseNodeAddress(text: string): { host: string; port: number } | { error: string } {
  const value = text.trim();
  const example = `Use host or host:port, e.g. 10.0.0.7:${DEFAULT_NODE_PORT}`;
  if (value === "") return { error: `Enter the node's address. ${example}` };
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(value);
  const plain = /^([^\s:/[\]]+)(?::(\d+))?$/.exec(value);
  const bare6 = !bracketed && !plain && /^[0-9a-f:]+$/i.test(value) && value.includes("::");
  const match = bracketed ?? plain;
  if (bare6) return { host: value, port: DEFAULT_NODE_PORT };
  if (!match) return { error: `"${value}" is not an address. ${example}` };
  const port = match[2] === undefined ? DEFAULT_NODE_PORT : Number(match[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return { error: `The port must be 1 to 65535. ${example}` };
  return { host: match[1] as string, port };
}

/** A pairing code as nodes print it ("123-456"); anything else typed there is a token. */
export function isPairingCode(text: string): boolean {
  return /^[0-9]{3}[- ]?[0-9]{3}$/.test(text.trim());
}

/** A certificate SHA-256 as nodes print it: 64 hex digits, in groups or with colons. */
export function isFingerprint(text: string): boolean {
  return normalizeFingerprint(text).length === 64 && /^[0-9a-fA-F\s:]+$/.test(text.trim());
}
