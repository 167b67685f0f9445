import { createHash } from "node:crypto";
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { PackHasher } from "../../../../farm-node/models/pack-hash";
import { INCOMING_FOLDER, PushStaging } from "../../../../farm-node/models/push-staging";
import { KilnError } from "../../../../shared/errors";
import type { PackOffer } from "../../../../shared/model-push";
import { packHashInput } from "../../../../shared/pack-files";

/**
 * Links planted in a push's staging (by whatever else can write to the models
 * folder) must never carry the node's writes, reads or truncations out of it.
 */

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const sha = (bytes: string) => createHash("sha256").update(bytes).digest("hex");
const WEIGHTS = "weights";

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

function offerOf(files: Array<{ path: string; content: string }>): PackOffer {
  const listed = files.map((f) => ({ path: f.path, size: f.content.length, sha256: sha(f.content) }));
  return { name: "planted", hash: sha(packHashInput(listed)), files: listed };
}

/** A real staging on a temp models folder; the disk always has room. */
function stagingOn(models: string): PushStaging {
  return new PushStaging({
    modelsDir: models,
    hasher: () => new PackHasher(join(models, ".hashes.json")),
    installed: () => [],
    freeBytes: async () => 2 ** 50,
    log: pino({ level: "silent" }),
  });
}

function setup() {
  const models = tempDir("kiln-push-links-");
  return { models, outside: tempDir("kiln-push-outside-"), staging: stagingOn(models) };
}

async function refusal(promise: Promise<unknown>): Promise<KilnError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(KilnError);
  return error as KilnError;
}

describe("links planted in a push's staging", () => {
  it("an upload through a linked folder is refused with 400 and writes nothing where the link points", async () => {
    const { models, outside, staging } = setup();
    const offer = offerOf([{ path: "unet/model.onnx", content: WEIGHTS }]);
    await staging.offer(offer);
    const folder = join(models, INCOMING_FOLDER, offer.hash, "pack", "unet");
    rmSync(folder, { recursive: true });
    symlinkSync(outside, folder);

    const error = await refusal(staging.write(offer.hash, 0, 0, Readable.from([Buffer.from(WEIGHTS)]), WEIGHTS.length));
    expect(error.code).toBe("E_BAD_REQUEST");
    expect(error.message).toMatch(/symbolic link/);
    expect(readdirSync(outside)).toEqual([]);
  });

  it("an offer again does not empty a file a planted link points to", async () => {
    const { models, outside, staging } = setup();
    const offer = offerOf([
      { path: "model.onnx", content: WEIGHTS },
      { path: "empty.onnx_data", content: "" },
    ]);
    await staging.offer(offer);
    const victim = join(outside, "precious.txt");
    writeFileSync(victim, "the owner's bytes");
    const empty = join(models, INCOMING_FOLDER, offer.hash, "pack", "empty.onnx_data");
    rmSync(empty);
    symlinkSync(victim, empty);

    const error = await refusal(staging.offer(offer));
    expect(error.code).toBe("E_BAD_REQUEST");
    expect(readFileSync(victim, "utf8")).toBe("the owner's bytes");
  });

  it("a commit does not read, empty or install files behind a linked folder", async () => {
    const { models, outside, staging } = setup();
    const offer = offerOf([{ path: "unet/model.onnx", content: WEIGHTS }]);
    await staging.offer(offer);
    const folder = join(models, INCOMING_FOLDER, offer.hash, "pack", "unet");
    rmSync(folder, { recursive: true });
    mkdirSync(join(outside, "elsewhere"));
    // The right size, other bytes: a commit that followed the link would hash it and empty it.
    writeFileSync(join(outside, "elsewhere", "model.onnx"), "xxxxxxx");
    symlinkSync(join(outside, "elsewhere"), folder);

    // After a restart the node reads what is staged from the disk.
    const error = await refusal(stagingOn(models).commit(offer.hash));
    expect(error.code).toBe("E_BAD_REQUEST");
    expect(error.message).toMatch(/symbolic link/);
    expect(readFileSync(join(outside, "elsewhere", "model.onnx"), "utf8")).toBe("xxxxxxx");
    expect(existsSync(join(models, "planted"))).toBe(false);
  });
});

describe("a staged file hard-linked to an installed pack's", () => {
  /** An installed pack holding the weights, known to the hasher, and a push of them: staged as a link, not sent. */
  async function linkedPush() {
    const { models, staging } = setup();
    mkdirSync(join(models, "owner-pack"));
    const installed = join(models, "owner-pack", "model.onnx");
    writeFileSync(installed, WEIGHTS);
    const hashes = new PackHasher(join(models, ".hashes.json"));
    hashes.remember(installed, sha(WEIGHTS));
    hashes.save();
    const offer = offerOf([{ path: "model.onnx", content: WEIGHTS }]);
    expect((await staging.offer(offer)).files[0]).toMatchObject({ source: "linked", have: WEIGHTS.length });
    const staged = join(models, INCOMING_FOLDER, offer.hash, "pack", "model.onnx");
    return { staging, installed, offer, staged };
  }

  it("is replaced, never truncated, when its bytes turn out wrong at commit: the installed pack keeps its file", async () => {
    const { staging, installed, offer, staged } = await linkedPush();
    // The owner updates the installed pack in place (same inode), as `cp` onto it does.
    const changed = "WEIGHTS";
    const fd = openSync(installed, "r+");
    writeSync(fd, changed, 0);
    closeSync(fd);

    const error = await refusal(staging.commit(offer.hash));
    expect(error.message).toMatch(/do not match their sha256/);
    expect(readFileSync(installed, "utf8")).toBe(changed);
    // The staged file is emptied to be sent again, on its own.
    expect(statSync(staged).size).toBe(0);
    expect(statSync(staged).nlink).toBe(1);
  });

  it("gets bytes of its own when it is sent after all (the installed file changed size): they do not land in the installed pack", async () => {
    const { staging, installed, offer, staged } = await linkedPush();
    // The owner rewrites the installed file in place with more bytes: the link no longer holds the offered file.
    writeFileSync(installed, "the owner's new weights");
    const again = await staging.offer(offer);
    expect(again.files[0]).toMatchObject({ source: "send", have: 0 });
    await staging.write(offer.hash, 0, 0, Readable.from([Buffer.from(WEIGHTS)]), WEIGHTS.length);
    expect(readFileSync(installed, "utf8")).toBe("the owner's new weights");
    expect(readFileSync(staged, "utf8")).toBe(WEIGHTS);
    expect(statSync(staged).nlink).toBe(1);
  });
});
