import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import type { StateDir } from "../state-dir";

const StoredToken = z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/), client: z.string(), pairedAt: z.string() });
const TokenFile = z.object({ tokens: z.array(StoredToken) });
type StoredToken = z.infer<typeof StoredToken>;

const TOKEN_FILE = "tokens.json";

function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

/**
 * Long-lived bearer tokens. Only their sha256 is stored, so a copied state dir
 * does not leak a usable token; comparison is constant-time over the digests.
 */
export class TokenStore {
  private tokens: StoredToken[];
  private readonly fixed: Buffer | null;

  constructor(
    private readonly state: StateDir,
    /** `--token`: a secret set by a deployment script, accepted alongside paired tokens. */
    fixedToken: string | null,
  ) {
    this.tokens = state.readJson(TOKEN_FILE, TokenFile, { tokens: [] }).tokens;
    this.fixed = fixedToken ? sha256(fixedToken) : null;
  }

  get pairedCount(): number {
    return this.tokens.length + (this.fixed ? 1 : 0);
  }

  /** Issues and stores a new token for a client; the plain token is returned once. */
  issue(client: string): string {
    const token = randomBytes(32).toString("base64url");
    this.tokens.push({ sha256: sha256(token).toString("hex"), client, pairedAt: new Date().toISOString() });
    this.state.writeJson(TOKEN_FILE, { tokens: this.tokens });
    return token;
  }

  /** Unpairing: forgets a paired token; the client it belonged to, or null when it was not a paired token. */
  revoke(token: string): string | null {
    const digest = sha256(token).toString("hex");
    const stored = this.tokens.find((t) => t.sha256 === digest);
    if (!stored) return null;
    this.tokens = this.tokens.filter((t) => t !== stored);
    this.state.writeJson(TOKEN_FILE, { tokens: this.tokens });
    return stored.client;
  }

  /** The client a token belongs to, or null. Every stored digest is compared, so timing says nothing. */
  verify(token: string): string | null {
    const digest = sha256(token);
    let match: string | null = null;
    if (this.fixed && timingSafeEqual(digest, this.fixed)) match = "token";
    for (const stored of this.tokens) {
      if (timingSafeEqual(digest, Buffer.from(stored.sha256, "hex")) && match === null) match = stored.client;
    }
    return match;
  }
}
