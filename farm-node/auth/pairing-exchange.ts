import { randomBytes } from "node:crypto";
import * as opaque from "@serenity-kit/opaque";
import { KilnError } from "../../shared/errors";
import { PAIRING_KEY_STRETCHING, PAIRING_USER, pairingIdentifiers } from "../../shared/pairing";

/** Exchanges started and not finished that the node holds at once. */
const MAX_PENDING = 16;
/** A person's app finishes within a second; this leaves room for a slow link. */
const PENDING_MS = 60_000;

interface Pending {
  state: string;
  /** The code it was started under: it finishes only while that code is the node's. */
  code: string;
  /** The name the app gave, for its token. */
  client: string;
  expiresAt: number;
}

/** One code's OPAQUE server: its own setup (OPRF key and key pair) and password file. */
interface CodeServer {
  code: string;
  serverSetup: string;
  registrationRecord: string;
}

/**
 * The node's side of the pairing key exchange (see shared/pairing.ts). For
 * each code it makes an OPAQUE password file in memory, as if an app had
 * registered with that code, under the node's certificate as server identity;
 * an app that logs in with the same code and sees the same certificate ends
 * with the same session key, and anything else fails. Every code gets a fresh
 * server setup: with one OPRF key for all codes, each start would hand a
 * prober an evaluation of its guess that tests every other code offline, and
 * guesses would add up across code changes and windows. Only the state of
 * exchanges in progress is kept, bounded in count and time.
 */
export class PairingExchange {
  private server: CodeServer | null = null;
  private readonly pending = new Map<string, Pending>();

  private constructor(
    private readonly fingerprint: string,
    private readonly now: () => number,
  ) {}

  /** The library's WebAssembly must be loaded before the first exchange. */
  static async create(fingerprint: string, now: () => number = Date.now): Promise<PairingExchange> {
    await opaque.ready;
    return new PairingExchange(fingerprint, now);
  }

  /** The first round: the app's login request for `code`, answered with the node's response. */
  start(code: string, request: string, client: string): { session: string; response: string } {
    this.expire();
    // Full: the oldest goes. A person's app finishes within a second; a flood of starts exhausts the window's budget first.
    if (this.pending.size >= MAX_PENDING) this.pending.delete(this.pending.keys().next().value as string);
    let started: ReturnType<typeof opaque.server.startLogin>;
    try {
      const server = this.serverFor(code);
      started = opaque.server.startLogin({
        serverSetup: server.serverSetup,
        registrationRecord: server.registrationRecord,
        startLoginRequest: request,
        userIdentifier: PAIRING_USER,
        identifiers: pairingIdentifiers(this.fingerprint),
      });
    } catch {
      throw new KilnError("E_BAD_REQUEST", "request is not a key-exchange message of this protocol", undefined, [
        { path: "request", message: "must be the app's first OPAQUE message" },
      ]);
    }
    const session = randomBytes(16).toString("hex");
    this.pending.set(session, { state: started.serverLoginState, code, client, expiresAt: this.now() + PENDING_MS });
    return { session, response: started.loginResponse };
  }

  /**
   * The second round: the name the app gave at the start when it proved it
   * used the same code and saw this node's certificate, and that code is still
   * `currentCode`; null otherwise.
   */
  finish(session: string, finish: string, currentCode: string): string | null {
    this.expire();
    const pending = this.pending.get(session);
    // One finish per session, right or wrong: a session is never a second guess.
    this.pending.delete(session);
    if (!pending) {
      throw new KilnError(
        "E_NOT_FOUND",
        "no pairing exchange with this session on the node (it expired or was used); start again",
      );
    }
    // Started under a code that has changed since (spent, rotated, a new window): worth nothing now.
    if (pending.code !== currentCode) return null;
    try {
      opaque.server.finishLogin({ serverLoginState: pending.state, finishLoginRequest: finish });
      return pending.client;
    } catch {
      return null;
    }
  }

  /** The server for a code, made once per code (6 ms): a new setup and password file. */
  private serverFor(code: string): CodeServer {
    if (this.server?.code === code) return this.server;
    const serverSetup = opaque.server.createSetup();
    const { clientRegistrationState, registrationRequest } = opaque.client.startRegistration({ password: code });
    const { registrationResponse } = opaque.server.createRegistrationResponse({
      serverSetup,
      userIdentifier: PAIRING_USER,
      registrationRequest,
    });
    const { registrationRecord } = opaque.client.finishRegistration({
      clientRegistrationState,
      registrationResponse,
      password: code,
      identifiers: pairingIdentifiers(this.fingerprint),
      keyStretching: PAIRING_KEY_STRETCHING,
    });
    this.server = { code, serverSetup, registrationRecord };
    return this.server;
  }

  private expire(): void {
    const now = this.now();
    for (const [session, pending] of this.pending) if (pending.expiresAt <= now) this.pending.delete(session);
  }
}
