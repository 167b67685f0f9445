import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { FileHashCache } from "../../../../coordinator/models/file-hash-cache";
import { readPackFiles } from "../../../../coordinator/models/library-scan";
import { PackHasher } from "../../../../farm-node/models/pack-hash";
import { INCOMING_FOLDER, type InstalledPack, PushStaging } from "../../../../farm-node/models/push-staging";
import type { PackOffer } from "../../../../shared/model-push";
import { packHashInput } from "../../../../shared/pack-files";
import { writeTinyPacks } from "../../../fixtures/tiny-packs/write-tiny-packs";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const sha = (text: string) => createHash("sha256").update(text).digest("hex");

function stagingOn(models: string, installed: InstalledPack[]): PushStaging {
  return new PushStaging({
    modelsDir: models,
    hasher: () => new PackHasher(join(models, ".hashes.json")),
    installed: () => installed,
    freeBytes: async () => 2 ** 50,
    log: pino({ level: "silent" }),
  });
}

describe("a node killed in the middle of a commit", () => {
  it("after its restart answers that the pack is installed, not a push lacking every byte, and drops the staging", async () => {
    const models = mkdtempSync(join(tmpdir(), "kiln-push-restart-"));
    dirs.push(models);
    const content = "weights";
    const files = [{ path: "model.onnx", size: content.length, sha256: sha(content) }];
    const offer: PackOffer = { name: "killed-at-commit", hash: sha(packHashInput(files)), files };
    const before = stagingOn(models, []);
    await before.offer(offer);
    await before.write(offer.hash, 0, 0, Readable.from([Buffer.from(content)]), content.length);
    // What a commit does up to the moment the process died: the pack moved into place, its staging not yet removed.
    const staging = join(models, INCOMING_FOLDER, offer.hash);
    renameSync(join(staging, "pack"), join(models, offer.name));

    const after = stagingOn(models, [{ folder: offer.name, name: offer.name, hash: offer.hash }]);
    expect(await after.status(offer.hash)).toMatchObject({ installed: true, complete: true, bytesToSend: 0 });
    expect(existsSync(staging)).toBe(false);
  });
});

describe("a commit asked again (its answer lost on the way, or another app committed the same pack first)", () => {
  it("answers as the first did, and the pack's status and a new offer say installed, before the node's rescan lists it", async () => {
    const library = mkdtempSync(join(tmpdir(), "kiln-push-library-"));
    const models = mkdtempSync(join(tmpdir(), "kiln-push-recommit-"));
    dirs.push(library, models);
    const pack = writeTinyPacks(library).upscaler;
    const { hash, files } = await readPackFiles(pack, new FileHashCache(join(library, ".hashes.json")));
    const offer: PackOffer = { name: "up-x4", hash, files };
    // The rescan has not run yet: the node lists nothing.
    const installed: InstalledPack[] = [];
    const staging = stagingOn(models, installed);
    await staging.offer(offer);
    for (const [index, file] of files.entries()) {
      const bytes = readFileSync(join(pack, file.path));
      await staging.write(hash, index, 0, Readable.from([bytes]), bytes.length);
    }
    const first = await staging.commit(hash);
    expect(first).toMatchObject({ folder: "up-x4", name: "up-x4" });
    expect(await staging.commit(hash)).toEqual(first);
    expect(await staging.status(hash)).toMatchObject({ installed: true, complete: true, name: "up-x4" });
    expect(await staging.offer(offer)).toMatchObject({ installed: true });

    // Listed by the node's rescan since: a commit asked again still answers as the first did.
    installed.push({ folder: "up-x4", name: "up-x4", hash });
    expect(await staging.commit(hash)).toEqual(first);
    // The same bytes under another name are another push: its commit installs it, not answers with the first.
    // (Its files are linked from the installed one: nothing to send.)
    const copy: PackOffer = { ...offer, name: "up-x4-copy" };
    expect(await staging.offer(copy)).toMatchObject({ installed: false, bytesToSend: 0 });
    expect(await staging.commit(hash)).toMatchObject({ folder: "up-x4-copy", name: "up-x4-copy" });
    expect(existsSync(join(models, "up-x4-copy", files[0]?.path as string))).toBe(true);
    rmSync(join(models, "up-x4-copy"), { recursive: true });
    // Removed by hand (and no longer listed): offered again, it is a push again, not "installed" for ever.
    installed.length = 0;
    rmSync(join(models, "up-x4"), { recursive: true });
    expect(await staging.offer(offer)).toMatchObject({ installed: false, bytesToSend: expect.any(Number) });
  });
});
