import { createHash, timingSafeEqual } from "node:crypto";
import { isIP } from "node:net";

/** `--api-auth user:pass[,user:pass…]`, as A1111's flag: one pair per user. */
export function parseApiAuth(text: string): Map<string, string> {
  const credentials = new Map<string, string>();
  for (const pair of text.split(",")) {
    const colon = pair.indexOf(":");
    const user = pair.slice(0, colon).trim();
    const password = pair.slice(colon + 1);
    if (colon <= 0 || !user || !password)
      throw new Error(`"${pair}" is not user:password (give --api-auth alice:secret,bob:other)`);
    credentials.set(user, password);
  }
  if (credentials.size === 0) throw new Error("--api-auth needs at least one user:password");
  return credentials;
}

export interface ApiGuardOptions {
  /** User → password; null: no auth (allowed only on loopback, see `kiln serve`). */
  credentials: Map<string, string> | null;
  /** Host names besides the loopback ones and IP addresses that clients may address (`--api-host`). */
  hostNames: readonly string[];
  /** Origins whose pages may call the API (`--cors-allow-origins`); none by default. */
  corsOrigins: readonly string[];
}

export interface GuardRequest {
  host?: string;
  origin?: string;
  authorization?: string;
  /** The address the request came from. */
  ip: string;
}

export type GuardAnswer =
  | { ok: true; user: string | null }
  | { ok: false; status: 401 | 403 | 429; detail: string; headers?: Record<string, string> };

const LOOPBACK_NAMES = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);
/** Wrong passwords one address may send in a window before it gets 429. */
const MAX_FAILURES = 10;
const FAILURE_WINDOW_MS = 60_000;
/** Addresses whose failures are remembered at once; the oldest are forgotten past this. */
const MAX_TRACKED_ADDRESSES = 10_000;

/**
 * Who may use the A1111 API, decided before any handler runs:
 * - Host must be a loopback name, an IP address or a name the studio gave: a
 *   DNS-rebinding page reaches this machine under its own name and is refused;
 *   an IP address cannot be rebound.
 * - A browser page may call only from an origin `--cors-allow-origins` names (or
 *   from the very origin it addresses): a page of another site cannot make the
 *   farm render, even by a "simple" POST that needs no preflight.
 * - With `--api-auth`, HTTP Basic as A1111 does it; the password is compared in
 *   constant time (digests of equal length), every user's entry is compared so
 *   timing tells nothing of which users exist, and an address that keeps
 *   failing gets 429 for a minute.
 */
export class ApiGuard {
  private readonly users: Array<{ user: Buffer; password: Buffer; name: string }>;
  private readonly failures = new Map<string, { count: number; since: number }>();

  constructor(
    private readonly opts: ApiGuardOptions,
    private readonly now: () => number = Date.now,
  ) {
    this.users = [...(opts.credentials ?? new Map()).entries()].map(([name, password]) => ({
      name,
      user: digest(name),
      password: digest(password),
    }));
  }

  check(request: GuardRequest): GuardAnswer {
    const hostName = hostOnly(request.host);
    if (!hostName || !this.hostAllowed(hostName))
      return {
        ok: false,
        status: 403,
        detail: `this Kiln answers the A1111 API under this computer's addresses and the names given to \`kiln serve --api-host\`, not as "${request.host ?? ""}"`,
      };
    if (request.origin !== undefined && !this.originAllowed(request.origin, request.host ?? ""))
      return {
        ok: false,
        status: 403,
        detail: `pages of ${request.origin} may not use this API; list the origin in \`kiln serve --cors-allow-origins\` to allow it`,
      };
    if (this.users.length === 0) return { ok: true, user: null };
    const failed = this.failures.get(request.ip);
    if (failed && this.now() - failed.since < FAILURE_WINDOW_MS && failed.count >= MAX_FAILURES)
      return { ok: false, status: 429, detail: "too many wrong passwords from this address; wait a minute" };
    const user = this.authenticate(request.authorization);
    if (user !== null) return { ok: true, user };
    this.recordFailure(request.ip);
    return {
      ok: false,
      status: 401,
      detail: "Incorrect username or password",
      headers: { "www-authenticate": "Basic" },
    };
  }

  /** CORS answer headers for a page of `origin`, or null when that origin is not allowed to read answers. */
  corsHeaders(origin: string | undefined): Record<string, string> | null {
    if (origin === undefined || !this.corsListed(origin)) return null;
    return {
      "access-control-allow-origin": origin,
      "access-control-allow-credentials": "true",
      vary: "Origin",
    };
  }

  private hostAllowed(name: string): boolean {
    if (LOOPBACK_NAMES.has(name)) return true;
    if (isIP(name.replace(/^\[|\]$/g, "")) !== 0) return true;
    return this.opts.hostNames.some((allowed) => allowed.toLowerCase() === name);
  }

  private corsListed(origin: string): boolean {
    const lower = origin.toLowerCase();
    return this.opts.corsOrigins.some((allowed) => allowed === "*" || allowed.toLowerCase() === lower);
  }

  private originAllowed(origin: string, host: string): boolean {
    if (this.corsListed(origin)) return true;
    // The page this server itself serves (the Kiln UI), over either scheme.
    const lower = origin.toLowerCase();
    return lower === `http://${host.toLowerCase()}` || lower === `https://${host.toLowerCase()}`;
  }

  private authenticate(header: string | undefined): string | null {
    const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? "");
    const decoded = match ? Buffer.from(match[1] as string, "base64").toString("utf8") : "";
    const colon = decoded.indexOf(":");
    const user = digest(colon >= 0 ? decoded.slice(0, colon) : "");
    const password = digest(colon >= 0 ? decoded.slice(colon + 1) : "");
    let found: string | null = null;
    for (const entry of this.users) {
      // Both compared for every entry, without short-circuit.
      const sameUser = timingSafeEqual(entry.user, user);
      const samePassword = timingSafeEqual(entry.password, password);
      if (sameUser && samePassword && colon >= 0) found = entry.name;
    }
    return found;
  }

  private recordFailure(ip: string): void {
    const now = this.now();
    const entry = this.failures.get(ip);
    if (entry && now - entry.since < FAILURE_WINDOW_MS) entry.count++;
    else {
      this.failures.delete(ip);
      if (this.failures.size >= MAX_TRACKED_ADDRESSES) {
        const oldest = this.failures.keys().next().value;
        if (oldest !== undefined) this.failures.delete(oldest);
      }
      this.failures.set(ip, { count: 1, since: now });
    }
  }
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

/** The name part of a Host header, lower case, without the port ("[::1]" keeps its brackets). */
export function hostOnly(host: string | undefined): string | null {
  if (!host) return null;
  const lower = host.trim().toLowerCase();
  if (lower.startsWith("[")) {
    const end = lower.indexOf("]");
    return end > 0 ? lower.slice(0, end + 1) : null;
  }
  const colon = lower.indexOf(":");
  const name = colon >= 0 ? lower.slice(0, colon) : lower;
  return /^[a-z0-9.-]+$/.test(name) ? name : null;
}
