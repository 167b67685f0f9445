import { cpSync, existsSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { createServer as createHttpsServer } from "node:https";
import { type AddressInfo, connect, createServer, type Socket } from "node:net";
import { join } from "node:path";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { FarmLibrary } from "../../coordinator/farm/farm-library";
import { LibraryIdentity } from "../../coordinator/farm/library-identity";
import { startLibraryServer } from "../../coordinator/farm/library-server";
import { FileHashCache } from "../../coordinator/models/file-hash-cache";
import { scanLibrary } from "../../coordinator/models/library-scan";
import { createNodeCertificate } from "../../farm-node/auth/node-certificate";
import { PackFetcher, type PackSink } from "../../farm-node/farm/pack-fetcher";
import { PackHasher } from "../../farm-node/models/pack-hash";
import { INCOMING_FOLDER, type InstalledPack, PushStaging } from "../../farm-node/models/push-staging";
import { KilnError } from "../../shared/errors";
import { FarmJob, type FarmPackSource } from "../../shared/farm-protocol";
import { TINY_PACKS, writeTinyPacks } from "../fixtures/tiny-packs/write-tiny-packs";
import { tempDir } from "../support/temp-dir";

/**
 * A farm node's fetch of a pack from an app, with the real parts of both
 * sides in one process: the app's library and its TLS server, the node's
 * fetcher and push staging on a real models folder. What a node's owner and
 * the app's people see when a fetch cannot be done, and what is checked.
 */

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const SD = TINY_PACKS.sd;
const VARIANT = `${SD}-variant`;
const silent = pino({ level: "silent" });

/** The app: a library with the tiny SD pack and a variant of it that differs only in model_index.json, served. */
async function app() {
  const root = tempDir("kiln-fetch-app-");
  const made = writeTinyPacks(join(root, "made"));
  const dir = join(root, "library");
  cpSync(made.sd, join(dir, SD), { recursive: true });
  cpSync(made.sd, join(dir, VARIANT), { recursive: true });
  const index = join(dir, VARIANT, "model_index.json");
  const json = JSON.parse(readFileSync(index, "utf8")) as Record<string, unknown>;
  writeFileSync(index, JSON.stringify({ ...json, _name_or_path: "a variant" }));
  const dataDir = join(root, "data");
  const identity = await LibraryIdentity.load(dataDir);
  const library = new FarmLibrary({ library: dir, dataDir, identity, log: silent });
  await library.scan();
  const server = await startLibraryServer({ library, identity, host: "127.0.0.1", port: 0, log: silent });
  cleanups.push(() => server.close());
  library.setOrigin(server.origin);
  const hashes = new Map(
    (await scanLibrary(dir, new FileHashCache(join(root, "h.json")))).map((p) => [p.name, p.hash]),
  );
  return { dir, library, hashes, source: (model: string) => library.source(model) as FarmPackSource };
}

/** The node: a models folder, its hash cache, its push staging and the fetcher into it. */
function node(opts: { freeBytes?: number; onOffer?: () => void } = {}) {
  const models = tempDir("kiln-fetch-node-");
  const cacheFile = join(tempDir("kiln-fetch-node-state-"), "model-hashes.json");
  let installed: InstalledPack[] = [];
  const rescan = async () => {
    const hasher = new PackHasher(cacheFile);
    const found: InstalledPack[] = [];
    for (const folder of readdirSync(models)) {
      if (folder.startsWith(".")) continue;
      found.push({ folder, name: folder, hash: (await hasher.digest(join(models, folder))).hash });
    }
    hasher.save();
    installed = found;
  };
  const staging = new PushStaging({
    modelsDir: models,
    hasher: () => new PackHasher(cacheFile),
    installed: () => installed,
    ...(opts.freeBytes !== undefined ? { freeBytes: async () => opts.freeBytes as number } : {}),
    log: silent,
  });
  const sink: PackSink = {
    offer: async (offer) => {
      const status = await staging.offer(offer);
      opts.onOffer?.();
      return status;
    },
    write: (hash, index, offset, body, length) => staging.write(hash, index, offset, body, length),
    commit: async (hash) => {
      await staging.commit(hash);
      await rescan();
    },
  };
  const fetcher = new PackFetcher({
    closed: () => null,
    unusable: () => null,
    sink: () => sink,
    log: silent,
    retries: 1,
    retryDelayMs: () => 10,
  });
  return { models, fetcher, rescan, installed: () => installed };
}

/**
 * A TCP relay on loopback that passes TLS untouched (the library's pinned certificate is what the node sees) and
 * cuts every connection once `bytes` have come back through it: a link that drops long transfers mid-body.
 */
async function cuttingRelay(target: URL, bytes: number): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    let passed = 0;
    const end = () => {
      for (const s of [client, upstream]) {
        s.destroy();
        sockets.delete(s);
      }
    };
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", end);
      s.on("close", end);
    }
    client.pipe(upstream);
    upstream.on("data", (chunk: Buffer) => {
      passed += chunk.length;
      if (passed > bytes) end();
      else client.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function failure(promise: Promise<unknown>): Promise<KilnError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(KilnError);
  return error as KilnError;
}

describe("a farm node fetching a pack from an app", () => {
  it("receives only what it lacks: files it has in another pack are linked, and the pack it installs has the library's hash", async () => {
    const studio = await app();
    const n = node();
    cpSync(join(studio.dir, SD), join(n.models, SD), { recursive: true });
    await n.rescan();
    const outcome = await n.fetcher.fetch(studio.source(VARIANT), "app-1");
    expect(outcome.receivedBytes).toBe(statSync(join(studio.dir, VARIANT, "model_index.json")).size);
    expect(n.installed().find((p) => p.name === VARIANT)?.hash).toBe(studio.hashes.get(VARIANT));
    expect(existsSync(join(n.models, INCOMING_FOLDER, studio.hashes.get(VARIANT) as string))).toBe(false);
    expect(n.fetcher.report()).toEqual([
      {
        model: VARIANT,
        hash: studio.hashes.get(VARIANT),
        state: "done",
        percent: 100,
        bytesPerSecond: 0,
        code: null,
        reason: null,
      },
    ]);
    // Fetched again (another task): installed already, nothing moves.
    expect((await n.fetcher.fetch(studio.source(VARIANT), "app-1")).receivedBytes).toBe(0);
  }, 60_000);

  it("tasks for the same pack share one fetch", async () => {
    const studio = await app();
    const n = node();
    const source = studio.source(SD);
    const [a, b] = [n.fetcher.fetch(source, "app-1"), n.fetcher.fetch(source, "app-1")];
    expect(a).toBe(b);
    await a;
    expect(n.installed().map((p) => p.name)).toEqual([SD]);
  }, 60_000);

  it("a disk without room refuses before a byte is fetched, naming both sizes, and leaves nothing staged", async () => {
    const studio = await app();
    const n = node({ freeBytes: 10 * 2 ** 20 });
    const source = studio.source(SD);
    const error = await failure(n.fetcher.fetch(source, "app-1"));
    expect(error.code).toBe("E_DISK_FULL");
    expect(error.message).toMatch(/\d/);
    expect(readdirSync(n.models).filter((f) => f !== INCOMING_FOLDER)).toEqual([]);
    expect(existsSync(join(n.models, INCOMING_FOLDER, source.hash))).toBe(false);
    expect(n.fetcher.report()[0]).toMatchObject({ state: "failed", code: "E_DISK_FULL", reason: error.message });
    // Not tried again at once: its tasks go to other nodes meanwhile.
    expect(n.fetcher.refusal(source)?.code).toBe("E_DISK_FULL");
    expect(n.fetcher.refusal(source, Date.now() + 61_000)).toBeNull();
  }, 60_000);

  it("an app that cannot be reached is named, with the address the task gave", async () => {
    const studio = await app();
    const n = node();
    const closed = createServer().listen(0, "127.0.0.1");
    await new Promise((r) => closed.once("listening", r));
    const port = (closed.address() as { port: number }).port;
    await new Promise((r) => closed.close(r));
    const source = { ...studio.source(SD), url: `https://127.0.0.1:${port}` };
    const error = await failure(n.fetcher.fetch(source, "app-1"));
    expect(error.code).toBe("E_UNREACHABLE");
    expect(error.message).toContain(`cannot reach the app's library at https://127.0.0.1:${port}`);
  }, 60_000);

  it("a server with another certificate than the task pins gets no request", async () => {
    const studio = await app();
    const n = node();
    const error = await failure(n.fetcher.fetch({ ...studio.source(SD), fingerprint: "0".repeat(64) }, "app-1"));
    expect(error.code).toBe("E_IDENTITY_CHANGED");
    expect(error.message).toMatch(/not the one the task pins/);
  }, 60_000);

  it("whoever writes tasks to Redis cannot aim a node elsewhere: only an https origin is taken, and a redirect is not followed", async () => {
    const studio = await app();
    const source = studio.source(SD);
    const task = {
      id: "t-1",
      model: SD,
      width: 256,
      height: 256,
      steps: 1,
      images: [{ id: "i-1", seed: 1, prompt: "x" }],
    };
    const job = (url: string) =>
      FarmJob.safeParse({ app: "7e0f5b3c-4f5e-4c2a-9d1b-0a1b2c3d4e5f", task, pack: { ...source, url } });
    expect(job(source.url).success).toBe(true);
    for (const url of [
      "http://127.0.0.1:7879",
      "https://127.0.0.1:7879/other",
      "https://u:p@127.0.0.1:7879",
      "https://127.0.0.1:7879/?x=1",
      "file:///etc/passwd",
    ])
      expect(job(url).success, url).toBe(false);

    // A server holding the pinned certificate that answers with a redirect: the node does not go there.
    const cert = await createNodeCertificate();
    let elsewhere = 0;
    const target = createHttpsServer({ key: cert.key, cert: cert.cert }, (_req, res) => {
      elsewhere++;
      res.end("{}");
    }).listen(0, "127.0.0.1");
    const redirecting = createHttpsServer({ key: cert.key, cert: cert.cert }, (_req, res) => {
      res.writeHead(302, { location: `https://127.0.0.1:${(target.address() as { port: number }).port}/` });
      res.end();
    }).listen(0, "127.0.0.1");
    await Promise.all(
      [target, redirecting].map((s) => new Promise((r) => (s.listening ? r(null) : s.once("listening", r)))),
    );
    cleanups.push(() => Promise.all([target, redirecting].map((s) => new Promise((r) => s.close(r)))));
    const n = node();
    const error = await failure(
      n.fetcher.fetch(
        {
          ...source,
          url: `https://127.0.0.1:${(redirecting.address() as { port: number }).port}`,
          fingerprint: cert.fingerprint,
        },
        "app-1",
      ),
    );
    expect(error.code).toBe("E_UNREACHABLE");
    expect(error.message).toMatch(/answered HTTP 302/);
    expect(elsewhere).toBe(0);
  }, 60_000);

  it("bytes that are not the pack's are never installed: a file changed on the app mid-fetch fails the commit", async () => {
    const studio = await app();
    // The app's copy of a file changes after the node read the pack's description (same size, same mtime).
    const file = join(studio.dir, SD, "unet", "model.onnx");
    const n = node({
      onOffer: () => {
        const bytes = readFileSync(file);
        const { atime, mtime } = statSync(file);
        bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 0xff;
        writeFileSync(file, bytes);
        utimesSync(file, atime, mtime);
      },
    });
    const source = studio.source(SD);
    const error = await failure(n.fetcher.fetch(source, "app-1"));
    console.log(`fetch of a changed file: ${error.code}: ${error.message}`);
    expect(readdirSync(n.models).filter((f) => f !== INCOMING_FOLDER)).toEqual([]);
    expect(n.installed()).toEqual([]);
    // Those bytes are no pack: not fetched again, however long the node runs (a changed pack has another hash).
    expect(n.fetcher.refusal(source, Date.now() + 3_600_000)?.code).toBe(error.code);
  }, 60_000);

  it("a link that cuts every long transfer mid-body is retried later, not taken for bytes that make no pack", async () => {
    const studio = await app();
    const n = node();
    const source = studio.source(SD);
    // The text encoder (3 MB) never arrives whole: each try gets 1 MB further on a new connection, then is cut.
    const cut = { ...source, url: await cuttingRelay(new URL(source.url), 1024 * 1024) };
    const error = await failure(n.fetcher.fetch(cut, "app-1"));
    expect(error.code).toBe("E_UNREACHABLE");
    expect(error.message).toMatch(/stopped after \d+ bytes/);
    // Not again at once, but once the retry wait is over (a bad pack would stay barred until the node restarts).
    expect(n.fetcher.refusal(cut, Date.now())?.code).toBe("E_UNREACHABLE");
    expect(n.fetcher.refusal(cut, Date.now() + 61_000)).toBeNull();
    // Over a sound link the same pack is fetched, from what the cut tries left.
    await n.fetcher.fetch(source, "app-1");
    await n.rescan();
    expect(n.installed().map((p) => p.hash)).toEqual([studio.hashes.get(SD)]);
  }, 60_000);
});
