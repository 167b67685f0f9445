import { createHash, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { KilnError } from "../../shared/errors";
import type { StateDir } from "../state-dir";

const StoredToken = z.object({
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** The app's own id on this node; tokens stored before ids existed get one on load. */
  id: z.string().optional(),
  /** The name the app gave when it paired. */
  client: z.string(),
  pairedAt: z.string(),
  /** Its weight in every device's fair queue. */
  weight: z.number().positive().optional(),
});
const TokenFile = z.object({ tokens: z.array(StoredToken) });
type StoredToken = z.infer<typeof StoredToken>;

const TOKEN_FILE = "tokens.json";

/** A paired studio app. */
export interface PairedClient {
  id: string;
  name: string;
  weight: number;
  pairedAt: string;
}

/** The client behind `--token`: one identity for every app a deployment script gave that secret. */
export const FIXED_TOKEN_CLIENT: PairedClient = { id: "token", name: "--token", weight: 1, pairedAt: "" };

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
    this.tokens = this.load();
    this.fixed = fixedToken ? sha256(fixedToken) : null;
  }

  /** Reads the file again (`kiln-node clients --weight` changes it while the daemon runs). */
  reload(): void {
    this.tokens = this.load();
  }

  get pairedCount(): number {
    return this.tokens.length + (this.fixed ? 1 : 0);
  }

  /** Issues and stores a new token for an app; the plain token is returned once. */
  issue(name: string): { token: string; client: PairedClient } {
    const token = randomBytes(32).toString("base64url");
    const stored = {
      sha256: sha256(token).toString("hex"),
      id: randomUUID(),
      client: name,
      pairedAt: new Date().toISOString(),
    };
    this.tokens.push(stored);
    this.save();
    return { token, client: toClient(stored) };
  }

  /** Unpairing: forgets a paired token; the app it belonged to, or null when it was not a paired token. */
  revoke(token: string): PairedClient | null {
    const digest = sha256(token).toString("hex");
    const stored = this.tokens.find((t) => t.sha256 === digest);
    if (!stored) return null;
    this.tokens = this.tokens.filter((t) => t !== stored);
    this.save();
    return toClient(stored);
  }

  /** The app a token belongs to, or null. Every stored digest is compared, so timing says nothing. */
  verify(token: string): PairedClient | null {
    const digest = sha256(token);
    let match: PairedClient | null = null;
    if (this.fixed && timingSafeEqual(digest, this.fixed)) match = FIXED_TOKEN_CLIENT;
    for (const stored of this.tokens) {
      if (timingSafeEqual(digest, Buffer.from(stored.sha256, "hex")) && match === null) match = toClient(stored);
    }
    return match;
  }

  /** Every paired app, the `--token` identity first when there is one. */
  clients(): PairedClient[] {
    return [...(this.fixed ? [FIXED_TOKEN_CLIENT] : []), ...this.tokens.map(toClient)];
  }

  client(id: string): PairedClient | undefined {
    return this.clients().find((c) => c.id === id);
  }

  /** Sets an app's fair-queue weight, found by id, id prefix or exact name. */
  setWeight(idOrName: string, weight: number): PairedClient {
    if (!Number.isFinite(weight) || weight <= 0 || weight > 100) {
      throw new KilnError("E_BAD_REQUEST", `weight must be a number above 0 and at most 100; got ${weight}`);
    }
    const matches = this.tokens.filter(
      (t) => t.id === idOrName || t.client === idOrName || (idOrName.length >= 4 && t.id?.startsWith(idOrName)),
    );
    if (matches.length !== 1) {
      const known = this.tokens.map((t) => `${t.id?.slice(0, 8)} (${t.client})`).join(", ") || "none";
      throw new KilnError(
        "E_BAD_REQUEST",
        matches.length === 0
          ? `no paired app "${idOrName}"; paired apps: ${known}`
          : `"${idOrName}" matches ${matches.length} paired apps; use the id: ${known}`,
      );
    }
    const stored = matches[0] as StoredToken;
    stored.weight = weight;
    this.save();
    return toClient(stored);
  }

  private load(): StoredToken[] {
    const tokens = this.state.readJson(TOKEN_FILE, TokenFile, { tokens: [] }).tokens;
    if (tokens.some((t) => !t.id)) {
      for (const t of tokens) t.id ??= randomUUID();
      this.state.writeJson(TOKEN_FILE, { tokens });
    }
    return tokens;
  }

  private save(): void {
    this.state.writeJson(TOKEN_FILE, { tokens: this.tokens });
  }
}

function toClient(stored: StoredToken): PairedClient {
  return { id: stored.id as string, name: stored.client, weight: stored.weight ?? 1, pairedAt: stored.pairedAt };
}
