import { Agent } from "undici";
import type { NodePin } from "../../coordinator/nodes/node-client";
import { fingerprintCheck } from "../../coordinator/nodes/node-client";

/**
 * Linux routes all of 127.0.0.0/8 to loopback, so a test can send from many
 * source addresses (as many hosts of a LAN would) without leaving the machine.
 * `n`: 0 → 127.0.0.2, 1 → 127.0.0.3, … (127.0.0.1 is the tests' usual address).
 */
export function loopbackAddress(n: number): string {
  const k = n + 2;
  return `127.${Math.floor(k / 65_536) % 256}.${Math.floor(k / 256) % 256}.${k % 256}`;
}

/** An HTTPS agent pinned to a node's certificate that connects from one given loopback address. */
export function agentFrom(localAddress: string, pin: NodePin): Agent {
  return new Agent({ localAddress, connect: { ca: pin.certPem, checkServerIdentity: fingerprintCheck(pin) } });
}
