import { join } from "node:path";
import type { Logger } from "pino";
import { KilnError } from "../../shared/errors";
import type { FarmPackSource } from "../../shared/farm-protocol";
import { PackOffer, PushPackName } from "../../shared/model-push";
import type { ModelInfo } from "../../shared/node-info";
import { FileHashCache, LIBRARY_HASH_CACHE_FILE } from "../models/file-hash-cache";
import { libraryModelInfo, readPackFiles, scanLibrary } from "../models/library-scan";
import type { LibraryPack } from "../models/models-report";
import type { LibraryIdentity } from "./library-identity";

/** The library is read again at most this often (a folder added or changed shows up then). */
const RESCAN_EVERY_MS = 30_000;

/**
 * The studio's model library as the farm sees it (issue 16, item 5): its
 * usable packs are models this app's queue takes (as nodes will describe
 * them), every task for one names the pack and where to fetch it (this app's
 * library server, its certificate's fingerprint, the pack's key), and the
 * server asks here for a pack's description and files by content hash. Only
 * packs whose bytes on disk still have the hash asked for are served.
 */
export class FarmLibrary {
  private readonly cache: FileHashCache;
  private packs = new Map<string, LibraryPack>();
  private infos = new Map<string, ModelInfo>();
  /** Descriptions read for serving, by hash: read once, checked against the disk when served. */
  private readonly offers = new Map<string, PackOffer>();
  private scannedAt = Number.NEGATIVE_INFINITY;
  private scanning: Promise<void> | null = null;
  private origin: string | null = null;

  constructor(private readonly opts: { library: string; dataDir: string; identity: LibraryIdentity; log: Logger }) {
    this.cache = new FileHashCache(join(opts.dataDir, LIBRARY_HASH_CACHE_FILE));
  }

  get fingerprint(): string {
    return this.opts.identity.fingerprint;
  }

  /** Where nodes reach the library server (https://HOST:PORT), once it listens. */
  setOrigin(origin: string): void {
    this.origin = origin;
  }

  /** Reads the library (at start, and again when it is older than RESCAN_EVERY_MS). */
  async scan(): Promise<void> {
    if (this.scanning) return this.scanning;
    this.scanning = this.read().finally(() => {
      this.scanning = null;
    });
    return this.scanning;
  }

  /** The usable packs as nodes will describe them: models a job may name before any node has them. */
  models(): ModelInfo[] {
    this.rescanWhenOld();
    return [...this.infos.values()];
  }

  /** Where a node fetches `model` from, when it is a usable pack of the library; null otherwise. */
  source(model: string): FarmPackSource | null {
    const pack = this.packs.get(model);
    if (!pack || !this.origin) return null;
    return {
      name: pack.name,
      hash: pack.hash,
      url: this.origin,
      fingerprint: this.fingerprint,
      key: this.opts.identity.packKey(pack.hash),
    };
  }

  /** Whether `key` is the key of the pack with content hash `hash` (constant time). */
  keyFits(hash: string, key: unknown): boolean {
    return this.opts.identity.keyFits(hash, key);
  }

  /**
   * The description of the library pack with this content hash, read from the
   * disk now (file digests cached by size and mtime): a pack that changed
   * since the task was queued is not found (the node's task waits for the
   * next one, which names the new hash).
   */
  async offer(hash: string): Promise<PackOffer> {
    const pack = [...this.packs.values()].find((p) => p.hash === hash);
    if (!pack) throw notServed(hash);
    const read = await readPackFiles(join(this.opts.library, pack.folder), this.cache);
    if (read.hash !== hash) {
      void this.scan();
      throw notServed(hash);
    }
    const offer = PackOffer.parse({ name: pack.name, hash, files: read.files });
    this.offers.set(hash, offer);
    return offer;
  }

  /** File `index` of a pack a node has asked the description of: its path on disk and size. */
  async file(hash: string, index: number): Promise<{ path: string; size: number; sha256: string }> {
    const offer = this.offers.get(hash) ?? (await this.offer(hash));
    const pack = this.packs.get(offer.name);
    const file = offer.files[index];
    if (!pack || pack.hash !== hash) throw notServed(hash);
    if (!file)
      throw new KilnError(
        "E_NOT_FOUND",
        `pack ${hash.slice(0, 12)}… has ${offer.files.length} files; no file ${index}`,
      );
    return { path: join(this.opts.library, pack.folder, file.path), size: file.size, sha256: file.sha256 };
  }

  private rescanWhenOld(): void {
    if (Date.now() - this.scannedAt > RESCAN_EVERY_MS) void this.scan();
  }

  private async read(): Promise<void> {
    try {
      const packs = await scanLibrary(this.opts.library, this.cache);
      const usable = new Map(packs.filter((p) => p.status.state === "ok").map((p) => [p.name, p]));
      const infos = new Map<string, ModelInfo>();
      for (const pack of usable.values()) {
        if (!PushPackName.safeParse(pack.name).success) continue;
        try {
          infos.set(pack.name, libraryModelInfo(join(this.opts.library, pack.folder), pack));
        } catch (error) {
          this.opts.log.warn({ err: error, model: pack.name }, "could not read a library pack's defaults");
        }
      }
      this.packs = new Map([...usable].filter(([name]) => infos.has(name)));
      this.infos = infos;
      for (const hash of this.offers.keys())
        if (![...this.packs.values()].some((p) => p.hash === hash)) this.offers.delete(hash);
    } catch (error) {
      this.opts.log.warn({ err: error, library: this.opts.library }, "could not read the model library");
    } finally {
      this.scannedAt = Date.now();
    }
  }
}

function notServed(hash: string): KilnError {
  return new KilnError(
    "E_NOT_FOUND",
    `this app's library has no pack with content hash ${hash.slice(0, 12)}… now (changed or removed since the task was queued)`,
  );
}
