import { createHash, type Hash } from "node:crypto";
import { constants, createWriteStream, existsSync, readdirSync } from "node:fs";
import { copyFile, link, lstat, mkdir, open, readdir, readFile, rename, rm, statfs, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { type Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Logger } from "pino";
import { z } from "zod";
import { KilnError } from "../../shared/errors";
import {
  MAX_PUSH_CHUNK_BYTES,
  PackOffer,
  type PushChunkAccepted,
  PushFileSource,
  type PushStatus,
} from "../../shared/model-push";
import { checkedPackName, MANIFEST_FILE } from "./model-packs";
import { type PackHasher, sha256File } from "./pack-hash";
import { PackProblem } from "./pack-problem";
import { PushPace } from "./push-pace";
import {
  diskSpaceProblem,
  type KnownFile,
  offerHashProblem,
  type PlannedFile,
  PUSH_FREE_MARGIN_BYTES,
  planPush,
  type StagedFile,
} from "./push-plan";

/** The staging folder inside the models folder: a dot-folder, which the scanner skips, on the same disk (rename is atomic). */
export const INCOMING_FOLDER = ".incoming";
const PUSH_FILE = "push.json";
/** A staged push nobody wrote to for this long is abandoned: its staging is removed and its disk freed. */
export const PUSH_STAGING_EXPIRY_MS = 7 * 24 * 3600 * 1000;
const PACK_FOLDER = "pack";

/** What a push keeps beside its staged files, so it survives a node restart. */
const PushRecord = z.object({
  offer: PackOffer,
  startedAt: z.string(),
  /** Files linked or copied from other packs, by index, with the size and mtime they had (a later change is caught). */
  local: z.record(z.string(), z.object({ source: PushFileSource.exclude(["send"]), mtimeMs: z.number() })),
});
type PushRecord = z.infer<typeof PushRecord>;

/** One pack the node has (or a folder that only looks like one), as the daemon last scanned it. */
export interface InstalledPack {
  folder: string;
  name: string;
  /** Empty for a pack that failed its checks. */
  hash: string;
}

export interface PushStagingOptions {
  modelsDir: string;
  /** A PackHasher on the node's hash cache, read afresh for each offer (the daemon's scans write it). */
  hasher: () => PackHasher;
  /** The packs the node lists now. */
  installed: () => readonly InstalledPack[];
  /** Free bytes on the models folder's disk; statfs unless a test gives another. */
  freeBytes?: (dir: string) => Promise<number>;
  marginBytes?: number;
  /** The rate pushes are taken in at now, in bytes per second; null (or left out): as fast as they come. */
  paceBytesPerSecond?: () => number | null;
  log: Logger;
}

interface Push {
  hash: string;
  dir: string;
  record: PushRecord;
  files: PlannedFile[];
  /** Indices of files with an upload under way: one at a time per file. */
  writing: Set<number>;
  /** Uploads under way, so a cancel can stop them. */
  uploads: Set<Readable>;
  /** Offer, commit and cancel of one push run one after another. */
  lock: Promise<unknown>;
  /** Set while a commit checks and moves the files: no upload may change them. */
  committing: boolean;
  gone: boolean;
  /**
   * Per file index, the sha256 of its bytes taken as they arrived, from byte 0
   * on: a commit then needs no second read of what was received. Dropped for a
   * file whose bytes on disk part from what was hashed (a cut upload, a restart),
   * which is then read again at commit.
   */
  received: Map<number, { hash: Hash; bytes: number }>;
  /** Per file index, the flush to disk begun after its last upload (see write). */
  flushing: Map<number, Promise<void>>;
  /**
   * Per file index, the first error a flush met. Linux reports a failed write-back once, to the first flush that
   * looks: the commit's own would not see it, so it refuses the file here.
   */
  flushFailed: Map<number, Error>;
}

async function statfsFree(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

function isDiskFull(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === "ENOSPC" || code === "EDQUOT";
}

/** Writes a file's cached bytes to the disk; the error if that failed (none for a file removed meanwhile). */
async function flushFile(path: string): Promise<Error | null> {
  try {
    const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      await handle.datasync();
    } finally {
      await handle.close();
    }
    return null;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ENOENT" ? null : (error as Error);
  }
}

async function sizeOf(file: string): Promise<number | null> {
  try {
    const s = await lstat(file);
    return s.isFile() ? s.size : null;
  } catch {
    return null;
  }
}

/**
 * The first entry from `root` down to `root/relative` (as a path relative to
 * `root`) that is a symbolic link, or not a folder where one is needed, or not
 * a plain file at the end; null when every entry that exists is what it should be. O_NOFOLLOW guards only
 * the last name of a path: a linked folder planted in a staging (by anything
 * else that can write to the models folder) would carry the node's writes,
 * hashing and emptying of files out of it.
 */
async function strayEntry(root: string, relative: string): Promise<string | null> {
  const names = relative.split("/");
  let at = root;
  for (const [i, name] of names.entries()) {
    at = join(at, name);
    const entry = await lstat(at).catch(() => null);
    if (!entry) return null;
    if (entry.isSymbolicLink() || !(i === names.length - 1 ? entry.isFile() : entry.isDirectory()))
      return names.slice(0, i + 1).join("/");
  }
  return null;
}

/** Bytes received before they go to the file in one write (and through the hash in one update). */
const WRITE_BATCH_BYTES = 1 << 20;

/** Commits remembered to answer a repeated one (see PushStaging.committed): far more than a node receives at once. */
const MAX_COMMITTED_KEPT = 64;

/**
 * Model packs on their way in. Each push is keyed by the pack's content hash
 * and staged in `<models>/.incoming/<hash>/`: `push.json` (the offer) and
 * `pack/` (the files, each as many bytes as have arrived). The sizes on disk
 * are the truth a push resumes from, after a cut link or a node restart.
 * Commit checks every file's sha256 and the pack hash, then moves `pack/` to
 * `<models>/<name>` in one rename: the scanner never sees half a pack.
 */
export class PushStaging {
  private readonly pushes = new Map<string, Push>();
  /**
   * Packs this process committed, by hash, newest last: a commit asked again (its answer lost on the way, or another
   * app's commit of the same pack first) answers as the first did, also before the node's rescan lists the pack.
   */
  private readonly committed = new Map<string, { folder: string; name: string; dir: string }>();
  private readonly incoming: string;
  private readonly freeBytes: (dir: string) => Promise<number>;
  private readonly margin: number;
  private readonly pace = new PushPace();

  constructor(private readonly opts: PushStagingOptions) {
    this.incoming = join(opts.modelsDir, INCOMING_FOLDER);
    this.freeBytes = opts.freeBytes ?? statfsFree;
    this.margin = opts.marginBytes ?? PUSH_FREE_MARGIN_BYTES;
  }

  /** Pushes staged before a restart, by hash (their records are read when first asked about). */
  stagedHashes(): string[] {
    if (!existsSync(this.incoming)) return [];
    return readdirSync(this.incoming).filter((h) => /^[0-9a-f]{64}$/.test(h));
  }

  /**
   * Removes stagings nobody wrote to for PUSH_STAGING_EXPIRY_MS (by the newest
   * mtime of anything in them), except those in use now; returns their hashes.
   * Run at start and before each offer, so an abandoned push does not hold its
   * disk (and count against new offers) for ever.
   */
  async expireStale(now = Date.now()): Promise<string[]> {
    const expired: string[] = [];
    for (const hash of this.stagedHashes()) {
      const push = this.pushes.get(hash);
      if (push && (push.writing.size > 0 || push.committing)) continue;
      const dir = join(this.incoming, hash);
      if (now - (await newestMtime(dir)) < PUSH_STAGING_EXPIRY_MS) continue;
      if (push) push.gone = true;
      this.pushes.delete(hash);
      await rm(dir, { recursive: true, force: true });
      expired.push(hash);
      this.opts.log.info({ hash }, "an abandoned model push expired; its staging was removed");
    }
    return expired;
  }

  /**
   * Takes an offer: checks it, links what the node has, checks the disk, and
   * answers what to send. The same offer again (an app restart, another app)
   * answers the same push with the bytes there now.
   */
  async offer(offer: PackOffer): Promise<PushStatus> {
    const problem = offerHashProblem(offer);
    if (problem !== null)
      throw new KilnError("E_BAD_REQUEST", `invalid push offer: hash: ${problem}`, undefined, [
        { path: "hash", message: problem },
      ]);
    // Committed here, not yet listed by the node's rescan: offered again (a push that lost the commit's answer), it is there.
    if (this.committedPack(offer.hash)?.name === offer.name) return this.installedStatus(offer);
    const installed = this.opts.installed();
    const same = installed.find((p) => p.name === offer.name || p.folder === offer.name);
    if (same && same.hash === offer.hash && same.name === offer.name) return this.installedStatus(offer);
    if (same) {
      throw new KilnError(
        "E_CONFLICT",
        same.hash
          ? `this node already has a pack called "${offer.name}" with another content hash (${same.hash.slice(0, 12)}…); a push never replaces a pack: push it under another name, or ask the node's owner to remove the old one`
          : `this node has a folder "${same.folder}" that is not a usable pack; push under another name, or ask the node's owner to remove it`,
        { name: offer.name, installedHash: same.hash },
        [{ path: "name", message: "is taken on this node by a pack with another content hash" }],
      );
    }
    if (existsSync(join(this.opts.modelsDir, offer.name)))
      throw new KilnError(
        "E_CONFLICT",
        `the models folder of this node already has an entry "${offer.name}"; push under another name`,
        { name: offer.name },
        [{ path: "name", message: "is taken on this node" }],
      );

    await this.expireStale();
    const existing = await this.load(offer.hash);
    if (existing && !samePushOffer(existing.record.offer, offer)) {
      throw new KilnError(
        "E_CONFLICT",
        `a push of this pack as "${existing.record.offer.name}" is under way on this node; resume it under that name or cancel it first`,
        { name: existing.record.offer.name },
      );
    }
    const push = existing ?? this.fresh(offer);
    return this.locked(push, async () => {
      const fresh = !existsSync(push.dir);
      try {
        await this.prepare(push, fresh);
      } catch (error) {
        // A push refused before its first byte leaves nothing behind.
        if (fresh) await this.drop(push);
        throw error;
      }
      if (fresh) this.opts.log.info({ model: offer.name, hash: offer.hash, ...counts(push) }, "model push started");
      return this.status(push);
    });
  }

  /**
   * A pack this process committed, while it still stands: its folder there and no pack of its name with other bytes
   * listed. A pack removed by hand since is forgotten, or an offer of it would answer "installed" for ever and
   * on-demand pushes loop on it. Only its own commits answer: another installed pack of the same bytes under
   * another name is not this push's.
   */
  private committedPack(hash: string): { folder: string; name: string; dir: string } | undefined {
    const entry = this.committed.get(hash);
    if (!entry) return undefined;
    const other = this.opts.installed().some((p) => p.name === entry.name && p.hash !== hash);
    if (!existsSync(entry.dir) || other) {
      this.committed.delete(hash);
      return undefined;
    }
    return entry;
  }

  /** The state of a push (or of a pack already installed under its hash). */
  async status(hashOrPush: string | Push): Promise<PushStatus> {
    const push = typeof hashOrPush === "string" ? await this.load(hashOrPush) : hashOrPush;
    if (!push) {
      const committed = typeof hashOrPush === "string" ? this.committedPack(hashOrPush) : undefined;
      const installed =
        this.opts.installed().find((p) => p.hash === hashOrPush) ??
        (committed ? { name: committed.name, hash: hashOrPush as string } : undefined);
      if (installed)
        return {
          name: installed.name,
          hash: installed.hash,
          installed: true,
          complete: true,
          files: [],
          totalBytes: 0,
          bytesToSend: 0,
          bytesLinked: 0,
          startedAt: null,
        };
      throw notFound(hashOrPush as string);
    }
    const files = push.files.map(({ index, path, size, have, source }) => ({ index, path, size, have, source }));
    return {
      name: push.record.offer.name,
      hash: push.hash,
      installed: false,
      complete: files.every((f) => f.have === f.size),
      files,
      ...counts(push),
      startedAt: push.record.startedAt,
    };
  }

  /**
   * Writes bytes of file `index` from `offset`: the offset must be the bytes
   * the node has (else 409 with that number, to resume from), and no byte may
   * go past the file's declared size. A cut upload keeps what arrived.
   */
  async write(
    hash: string,
    index: number,
    offset: number,
    body: Readable | undefined,
    length: number | undefined,
  ): Promise<PushChunkAccepted> {
    const push = await this.load(hash);
    if (!push) throw notFound(hash);
    const file = push.files[index];
    if (!file)
      throw new KilnError("E_NOT_FOUND", `this push has ${push.files.length} files; there is no file ${index}`);
    // Before the checks below, which must run with no wait between them and marking the file as being written.
    await this.refuseStray(push, file);
    if (push.committing || push.gone)
      throw new KilnError("E_CONFLICT", "this push is being committed or cancelled; uploads are closed", { index });
    if (push.writing.has(index))
      throw new KilnError(
        "E_CONFLICT",
        `another upload of file ${index} (${file.path}) is under way; one at a time per file`,
        {
          index,
          offset: file.have,
          busy: true,
        },
      );
    if (offset !== file.have)
      throw new KilnError(
        "E_CONFLICT",
        `the node has ${file.have} bytes of ${file.path}; send from offset ${file.have}, not ${offset}`,
        { index, offset: file.have },
      );
    if (length !== undefined && length > MAX_PUSH_CHUNK_BYTES)
      throw new KilnError("E_TOO_LARGE", `an upload carries at most ${MAX_PUSH_CHUNK_BYTES} bytes; this one ${length}`);
    if (length !== undefined && offset + length > file.size)
      throw new KilnError(
        "E_TOO_LARGE",
        `${file.path} is ${file.size} bytes; ${length} bytes from offset ${offset} would go past its end`,
        { index, offset: file.have, size: file.size },
      );
    if (file.have === file.size || !body) return { index, have: file.have, complete: file.have === file.size };

    push.writing.add(index);
    push.uploads.add(body);
    const path = join(push.dir, PACK_FOLDER, file.path);
    let received = push.received.get(index);
    if (offset === 0) {
      // The file starts over: what a flush met before concerns bytes it no longer has.
      push.flushFailed.delete(index);
      received = { hash: createHash("sha256"), bytes: 0 };
      push.received.set(index, received);
    } else if (received?.bytes !== offset) {
      received = undefined;
      push.received.delete(index);
    }
    let written = 0;
    const limit = Math.min(MAX_PUSH_CHUNK_BYTES, file.size - offset);
    // TLS hands over records of 16 KiB; a write each cost the event loop more than decrypting them (0.67 s per 512 MB here).
    let batch: Buffer[] = [];
    let batchBytes = 0;
    const takeBatch = (): Buffer => {
      const out = batch.length === 1 ? (batch[0] as Buffer) : Buffer.concat(batch, batchBytes);
      batch = [];
      batchBytes = 0;
      if (received) {
        received.hash.update(out);
        received.bytes += out.length;
      }
      return out;
    };
    // While the node renders, pushes are paced so rendering keeps its speed (the held socket slows the sender).
    const pass = (out: Buffer, done: (error: null, data: Buffer) => void) => {
      const wait = this.pace.delayMs(out.length, this.opts.paceBytesPerSecond?.() ?? null, Date.now());
      if (wait <= 0) done(null, out);
      else setTimeout(() => done(null, out), wait);
    };
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        if (written + chunk.length > limit) {
          done(
            new KilnError(
              "E_TOO_LARGE",
              written + chunk.length + offset > file.size
                ? `${file.path} is ${file.size} bytes; the upload went past its end`
                : `an upload carries at most ${MAX_PUSH_CHUNK_BYTES} bytes`,
              { index, size: file.size },
            ),
          );
          return;
        }
        written += chunk.length;
        batch.push(chunk);
        batchBytes += chunk.length;
        if (batchBytes < WRITE_BATCH_BYTES) done();
        else pass(takeBatch(), done);
      },
      flush(done) {
        if (batchBytes === 0) done();
        else pass(takeBatch(), done);
      },
    });
    try {
      await mkdir(dirname(path), { recursive: true });
      // A file sent from the start that is still a hard link (a linked file the plan now sends: its source changed)
      // gets bytes of its own: written through the link, they would land in the installed pack it came from.
      if (offset === 0 && ((await lstat(path).catch(() => null))?.nlink ?? 1) > 1) await rm(path);
      // O_NOFOLLOW: a link planted in the staging folder is not followed out of it.
      const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW;
      await pipeline(
        body,
        counter,
        createWriteStream(path, { flags: flags as unknown as string, mode: 0o644, start: offset }),
      );
    } catch (error) {
      if (isDiskFull(error)) await this.diskFilled(push, `receiving ${file.path}`);
      if (error instanceof KilnError) throw error;
      if (push.gone) throw new KilnError("E_CANCELLED", "the push was cancelled during this upload");
      // The request was cut (a pulled cable, a client that stopped): what arrived stays, to resume from.
      throw new KilnError(
        "E_BAD_REQUEST",
        `the upload of ${file.path} stopped after ${written} bytes (${(error as Error).message}); resume from the offset the node reports`,
        { index, cut: true },
      );
    } finally {
      push.writing.delete(index);
      push.uploads.delete(body);
      // What is on disk is what the push resumes from, whatever happened to the request.
      file.have = (await sizeOf(path)) ?? file.have;
      // Bytes hashed that did not all reach the disk: that file is read again at commit.
      if (received && received.bytes !== file.have) push.received.delete(index);
    }
    // The disk takes these bytes while the next upload arrives: the commit's own flush finds little left to write.
    const flushed = (push.flushing.get(index) ?? Promise.resolve()).then(async () => {
      const error = await flushFile(path);
      if (error && !push.flushFailed.has(index)) push.flushFailed.set(index, error);
    });
    push.flushing.set(index, flushed);
    return { index, have: file.have, complete: file.have === file.size };
  }

  /**
   * Checks every file and the pack hash and moves the pack into the models
   * folder in one rename. A file whose bytes are wrong is emptied (send it
   * again) and the commit refused; nothing is listed.
   */
  async commit(hash: string): Promise<{ folder: string; name: string; dir: string }> {
    const push = await this.load(hash);
    if (!push) {
      // Committed already, its answer lost on the way: the same answer. A push staged under another name of the same
      // bytes is not that one: it has its own record, and is committed below.
      const done = this.committedPack(hash);
      if (done) return done;
      throw notFound(hash);
    }
    return this.locked(push, async () => {
      if (push.gone) {
        // Another request committed this push meanwhile.
        const done = this.committedPack(hash);
        if (done?.name === push.record.offer.name) return done;
        throw notFound(hash);
      }
      if (push.writing.size > 0)
        throw new KilnError("E_CONFLICT", "uploads to this push are under way; commit when they have finished");
      push.committing = true;
      try {
        return await this.verifyAndInstall(push);
      } finally {
        push.committing = false;
      }
    });
  }

  private async verifyAndInstall(push: Push): Promise<{ folder: string; name: string; dir: string }> {
    const { hash } = push;
    {
      const { offer } = push.record;
      const missing = push.files.filter((f) => f.have !== f.size);
      if (missing.length > 0)
        throw new KilnError(
          "E_CONFLICT",
          `${missing.length} file(s) are not all here yet: ${missing
            .slice(0, 5)
            .map((f) => `${f.path} (${f.have} of ${f.size} bytes)`)
            .join(", ")}; send the rest, then commit`,
          { missing: missing.map((f) => ({ index: f.index, have: f.have, size: f.size })) },
        );
      const packDir = join(push.dir, PACK_FOLDER);
      for (const file of push.files) await this.refuseStray(push, file);
      const bad: PlannedFile[] = [];
      for (const file of push.files) {
        const path = join(packDir, file.path);
        const local = push.record.local[String(file.index)];
        // A linked file shares the inode of a file the scanner hashed: unchanged since, it needs no second read.
        const stat = await lstat(path);
        if (local?.source === "linked" && stat.mtimeMs === local.mtimeMs && stat.size === file.size) continue;
        const received = push.received.get(file.index);
        const digest =
          received?.bytes === file.size && stat.size === file.size
            ? received.hash.digest("hex")
            : await sha256File(path);
        push.received.delete(file.index);
        if (digest !== file.sha256) bad.push(file);
      }
      if (bad.length > 0) {
        await this.empty(push, bad);
        this.opts.log.warn(
          { model: offer.name, hash, files: bad.map((f) => f.path) },
          "model push refused at commit: files do not match their sha256",
        );
        throw new KilnError(
          "E_BAD_REQUEST",
          `${bad.length} file(s) arrived with bytes that do not match their sha256: ${bad
            .slice(0, 5)
            .map((f) => f.path)
            .join(", ")}; the node emptied them: send them again from offset 0`,
          { files: bad.map((f) => ({ index: f.index, path: f.path })) },
          bad.map((f) => ({ path: `files.${f.index}`, message: "bytes do not match the sha256 offered" })),
        );
      }
      // Every file matches its sha256 and the offer's hash is the hash of those: the pack is the one offered.
      let manifestName: string | undefined;
      try {
        manifestName = await checkedPackName(packDir, offer.name);
      } catch (error) {
        if (!(error instanceof PackProblem)) throw error;
        await this.drop(push);
        this.opts.log.warn({ model: offer.name, hash, reason: error.message }, "model push refused: not a usable pack");
        throw new KilnError(
          "E_BAD_REQUEST",
          `the files arrived intact but do not make a usable pack: ${error.message}; the push was removed`,
        );
      }
      if (manifestName !== undefined && manifestName !== offer.name) {
        await this.drop(push);
        throw new KilnError(
          "E_BAD_REQUEST",
          `the pack's ${MANIFEST_FILE} names it "${manifestName}", not "${offer.name}"; push it under its own name`,
          undefined,
          [{ path: "name", message: `must be "${manifestName}", the name in ${MANIFEST_FILE}` }],
        );
      }
      const target = join(this.opts.modelsDir, offer.name);
      if (existsSync(target))
        throw new KilnError(
          "E_CONFLICT",
          `the models folder got an entry "${offer.name}" meanwhile; push under another name`,
        );
      // Make the bytes durable before they become visible.
      await Promise.all(push.flushing.values());
      await this.refuseUnflushed(push);
      for (const file of push.files) {
        const handle = await open(join(packDir, file.path), "r");
        await handle.sync();
        await handle.close();
      }
      await rename(packDir, target);
      await syncDir(this.opts.modelsDir);
      const hasher = this.opts.hasher();
      for (const file of push.files) hasher.remember(join(target, file.path), file.sha256);
      hasher.save();
      await this.drop(push);
      const installed = { folder: offer.name, name: offer.name, dir: target };
      this.committed.set(hash, installed);
      if (this.committed.size > MAX_COMMITTED_KEPT) this.committed.delete(this.committed.keys().next().value as string);
      return installed;
    }
  }

  /**
   * Files whose bytes the disk failed to take while they arrived: a full disk drops the push (as during an
   * upload), any other failure empties them to be sent again. Nothing is installed either way.
   */
  private async refuseUnflushed(push: Push): Promise<void> {
    const failed = push.files.filter((f) => push.flushFailed.has(f.index));
    if (failed.length === 0) return;
    const named = failed.map((f) => `${f.path} (${push.flushFailed.get(f.index)?.message})`).join(", ");
    if (failed.some((f) => isDiskFull(push.flushFailed.get(f.index)))) await this.diskFilled(push, `writing ${named}`);
    await this.empty(push, failed);
    this.opts.log.warn(
      { model: push.record.offer.name, hash: push.hash, files: named },
      "model push refused at commit: the disk failed",
    );
    throw new KilnError(
      "E_INTERNAL",
      `this node's disk failed writing ${named}; the node emptied them: send them again from offset 0`,
      { files: failed.map((f) => ({ index: f.index, path: f.path })) },
    );
  }

  /** A disk that filled up during a push: the push goes (nothing of it is left) and the error says so. */
  private async diskFilled(push: Push, doing: string): Promise<never> {
    await this.drop(push);
    this.opts.log.warn({ model: push.record.offer.name, hash: push.hash }, "model push refused: the disk filled up");
    throw new KilnError(
      "E_DISK_FULL",
      `this node's disk filled up while ${doing}; the push was removed (nothing of it is left): free space and push again`,
    );
  }

  /**
   * Empties staged files to be sent again from offset 0 (a linked or copied one is then sent too). A new empty file,
   * not a truncation: a linked file shares its bytes with an installed pack, which a truncation would empty too.
   */
  private async empty(push: Push, files: readonly PlannedFile[]): Promise<void> {
    for (const file of files) {
      const path = join(push.dir, PACK_FOLDER, file.path);
      await rm(path, { force: true });
      await writeFile(path, "", { flag: "wx" });
      file.have = 0;
      push.received.delete(file.index);
      push.flushFailed.delete(file.index);
      if (file.source !== "send") {
        file.source = "send";
        delete push.record.local[String(file.index)];
      }
    }
    await this.save(push);
  }

  /** Cancels a push: uploads under way are cut and the staging removed. */
  async cancel(hash: string): Promise<void> {
    const push = await this.load(hash);
    if (!push) throw notFound(hash);
    for (const upload of push.uploads) upload.destroy(new Error("the push was cancelled"));
    await this.locked(push, async () => {
      await this.drop(push);
      this.opts.log.info({ model: push.record.offer.name, hash }, "model push cancelled; its staging was removed");
    });
  }

  /** Refuses to touch a staged file whose way from the models folder passes through a link (see strayEntry). */
  private async refuseStray(push: Push, file: PlannedFile): Promise<void> {
    const relative = [INCOMING_FOLDER, push.hash, PACK_FOLDER, file.path].join("/");
    const stray = await strayEntry(this.opts.modelsDir, relative);
    if (stray === null) return;
    this.opts.log.warn(
      { model: push.record.offer.name, hash: push.hash, entry: join(this.opts.modelsDir, stray) },
      "model push refused: its staging holds a link",
    );
    throw new KilnError(
      "E_BAD_REQUEST",
      `the models folder's ${stray} is a symbolic link or not a plain file or folder; the node follows no link out of a push's staging: cancel the push (DELETE) and push again`,
      { index: file.index },
    );
  }

  private fresh(offer: PackOffer): Push {
    return this.track({ offer, startedAt: new Date().toISOString(), local: {} });
  }

  /** A push of this record as this node holds it in memory, known from now on by its hash. */
  private track(record: PushRecord): Push {
    const { hash } = record.offer;
    const push: Push = {
      hash,
      dir: join(this.incoming, hash),
      record,
      files: [],
      writing: new Set(),
      uploads: new Set(),
      lock: Promise.resolve(),
      committing: false,
      gone: false,
      received: new Map(),
      flushing: new Map(),
      flushFailed: new Map(),
    };
    this.pushes.set(hash, push);
    return push;
  }

  /** A push by hash, from memory or from its staging (after a restart). */
  private async load(hash: string): Promise<Push | null> {
    if (!/^[0-9a-f]{64}$/.test(hash)) return null;
    const known = this.pushes.get(hash);
    if (known) return known;
    const dir = join(this.incoming, hash);
    let record: PushRecord;
    try {
      record = PushRecord.parse(JSON.parse(await readFile(join(dir, PUSH_FILE), "utf8")));
    } catch {
      // Half-written by a crash before its first byte was accepted, or damaged: nothing to resume.
      if (existsSync(dir)) await rm(dir, { recursive: true, force: true });
      return null;
    }
    if (record.offer.hash !== hash) return null;
    // A commit that moved the pack into place and died before removing its staging: the pack is installed.
    if (this.opts.installed().some((p) => p.hash === hash && p.name === record.offer.name)) {
      await rm(dir, { recursive: true, force: true });
      return null;
    }
    const push = this.track(record);
    try {
      push.files = await this.plan(push, new Map());
    } catch (error) {
      this.pushes.delete(hash);
      throw error;
    }
    return push;
  }

  /** The plan from what is staged: sizes on disk, and the files linked or copied before. */
  private async plan(push: Push, known: ReadonlyMap<string, KnownFile>): Promise<PlannedFile[]> {
    const staged = new Map<string, StagedFile>();
    for (const [index, file] of push.record.offer.files.entries()) {
      const have = await sizeOf(join(push.dir, PACK_FOLDER, file.path));
      if (have === null) continue;
      const local = push.record.local[String(index)];
      staged.set(file.path, local ? { have, source: local.source } : { have });
    }
    return planPush(push.record.offer, staged, known);
  }

  /** Links what the node has, checks the disk, copies what could not be linked. */
  private async prepare(push: Push, fresh: boolean): Promise<void> {
    const packDir = join(push.dir, PACK_FOLDER);
    const known = this.opts.hasher().knownFiles(this.opts.modelsDir, this.incoming);
    push.files = await this.plan(push, known);
    // The bytes to send are known before a byte is written: a disk without room for them (even for push.json) refuses now.
    await this.refuseNoRoom(push, []);
    await mkdir(packDir, { recursive: true });
    if (fresh) await this.save(push);
    const toCopy: PlannedFile[] = [];
    for (const file of push.files) {
      await this.refuseStray(push, file);
      const path = join(packDir, file.path);
      await mkdir(dirname(path), { recursive: true });
      if (file.source === "send" && file.have === 0 && file.size === 0) {
        await writeFile(path, "");
        continue;
      }
      if (file.source !== "linked" || file.have === file.size || !file.linkFrom) continue;
      await rm(path, { force: true });
      try {
        await link(file.linkFrom, path);
        file.have = file.size;
        push.record.local[String(file.index)] = { source: "linked", mtimeMs: (await lstat(path)).mtimeMs };
      } catch {
        // Another disk, or a file system without hard links: copy it (it still is not sent).
        file.source = "copied";
        toCopy.push(file);
      }
    }
    await this.refuseNoRoom(push, toCopy);
    for (const file of toCopy) {
      const path = join(packDir, file.path);
      try {
        await copyFile(file.linkFrom as string, path);
      } catch (error) {
        if (isDiskFull(error)) {
          await this.drop(push);
          throw new KilnError(
            "E_DISK_FULL",
            "this node's disk filled up while copying a file of this pack; the push was removed",
          );
        }
        throw error;
      }
      file.have = file.size;
      push.record.local[String(file.index)] = { source: "copied", mtimeMs: (await lstat(path)).mtimeMs };
    }
    await this.save(push);
  }

  /** Refuses a push whose bytes to send, files to copy and other pushes' promised room do not fit (both sizes named). */
  private async refuseNoRoom(push: Push, toCopy: readonly PlannedFile[]): Promise<void> {
    const needed =
      push.files.reduce((sum, f) => sum + (f.source === "send" ? f.size - f.have : 0), 0) +
      toCopy.reduce((sum, f) => sum + f.size, 0) +
      this.otherPushesNeed(push);
    const free = await this.freeBytes(this.opts.modelsDir);
    const problem = diskSpaceProblem(needed, free, this.margin);
    if (problem === null) return;
    this.opts.log.warn(
      { model: push.record.offer.name, hash: push.hash, needed, free, margin: this.margin },
      "model push refused: not enough disk space",
    );
    throw new KilnError("E_DISK_FULL", problem, { neededBytes: needed, freeBytes: free, marginBytes: this.margin });
  }

  /** Bytes the other pushes staged here still expect: they are promised that room. */
  private otherPushesNeed(push: Push): number {
    let sum = 0;
    for (const other of this.pushes.values())
      if (other !== push && !other.gone) sum += other.files.reduce((s, f) => s + (f.size - f.have), 0);
    return sum;
  }

  private async save(push: Push): Promise<void> {
    const file = join(push.dir, PUSH_FILE);
    await writeFile(`${file}.partial`, JSON.stringify(push.record));
    await rename(`${file}.partial`, file);
  }

  private async drop(push: Push): Promise<void> {
    push.gone = true;
    this.pushes.delete(push.hash);
    await rm(push.dir, { recursive: true, force: true });
  }

  private locked<T>(push: Push, run: () => Promise<T>): Promise<T> {
    const result = push.lock.then(run);
    push.lock = result.catch(() => undefined);
    return result;
  }

  private installedStatus(offer: PackOffer): PushStatus {
    const files = offer.files.map((f, index) => ({
      index,
      path: f.path,
      size: f.size,
      have: f.size,
      source: "linked" as const,
    }));
    const total = offer.files.reduce((s, f) => s + f.size, 0);
    return {
      name: offer.name,
      hash: offer.hash,
      installed: true,
      complete: true,
      files,
      totalBytes: total,
      bytesToSend: 0,
      bytesLinked: 0,
      startedAt: null,
    };
  }
}

function counts(push: Push): { totalBytes: number; bytesToSend: number; bytesLinked: number } {
  let totalBytes = 0;
  let bytesToSend = 0;
  let bytesLinked = 0;
  for (const f of push.files) {
    totalBytes += f.size;
    if (f.source === "send") bytesToSend += f.size - f.have;
    else bytesLinked += f.size;
  }
  return { totalBytes, bytesToSend, bytesLinked };
}

/** The same name and files (in any order): the same push. */
function samePushOffer(a: PackOffer, b: PackOffer): boolean {
  const files = new Map(b.files.map((f) => [f.path, f]));
  return (
    a.name === b.name &&
    a.files.length === b.files.length &&
    a.files.every((f) => {
      const g = files.get(f.path);
      return g !== undefined && f.size === g.size && f.sha256 === g.sha256;
    })
  );
}

function notFound(hash: string): KilnError {
  return new KilnError("E_NOT_FOUND", `no push of a pack with hash ${hash.slice(0, 64)} on this node; offer it first`);
}

/** The newest mtime (ms) of a folder and everything in it. */
async function newestMtime(dir: string): Promise<number> {
  let newest = (await lstat(dir)).mtimeMs;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? await newestMtime(path) : (await lstat(path)).mtimeMs);
  }
  return newest;
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
