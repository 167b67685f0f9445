import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { PackHasher } from "../../../../farm-node/models/pack-hash";
import { INCOMING_FOLDER, PUSH_STAGING_EXPIRY_MS, PushStaging } from "../../../../farm-node/models/push-staging";
import type { PackOffer } from "../../../../shared/model-push";
import { packHashInput } from "../../../../shared/pack-files";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const sha = (text: string) => createHash("sha256").update(text).digest("hex");

function offerOf(name: string, content: string): PackOffer {
  const files = [{ path: "model.onnx", size: content.length, sha256: sha(content) }];
  return { name, hash: sha(packHashInput(files)), files };
}

/** A real staging on a temp models folder; the disk always has room. */
function staging() {
  const models = mkdtempSync(join(tmpdir(), "kiln-push-expiry-"));
  dirs.push(models);
  return {
    models,
    staging: new PushStaging({
      modelsDir: models,
      hasher: () => new PackHasher(join(models, ".hashes.json")),
      installed: () => [],
      freeBytes: async () => 2 ** 50,
      log: pino({ level: "silent" }),
    }),
  };
}

/** Sets the mtime of a staging and everything in it (the files last written that long ago). */
function age(dir: string, ms: number): void {
  const when = new Date(Date.now() - ms);
  for (const path of [join(dir, "push.json"), join(dir, "pack", "model.onnx"), join(dir, "pack"), dir])
    if (existsSync(path)) utimesSync(path, when, when);
}

describe("abandoned model pushes (staging on a real folder)", () => {
  it("removes a staging nobody wrote to for the expiry, keeps a recent one, and the node takes the pack afresh", async () => {
    const { models, staging: pushes } = staging();
    const old = offerOf("old-pack", "old weights");
    const recent = offerOf("recent-pack", "recent weights");
    await pushes.offer(old);
    await pushes.offer(recent);
    const oldDir = join(models, INCOMING_FOLDER, old.hash);
    const recentDir = join(models, INCOMING_FOLDER, recent.hash);
    age(oldDir, PUSH_STAGING_EXPIRY_MS + 60_000);
    age(recentDir, PUSH_STAGING_EXPIRY_MS - 60_000);

    expect(await pushes.expireStale()).toEqual([old.hash]);
    expect(existsSync(oldDir)).toBe(false);
    expect(existsSync(recentDir)).toBe(true);
    // Offered again, the expired pack starts from nothing rather than from a staging that is gone.
    const again = await pushes.offer(old);
    expect(again.bytesToSend).toBe("old weights".length);
    expect(existsSync(oldDir)).toBe(true);
  });
});
