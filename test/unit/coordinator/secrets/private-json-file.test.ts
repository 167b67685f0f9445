import * as fs from "node:fs";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { writePrivateJson } from "../../../../coordinator/secrets/private-json-file";

// The real fs, with fsyncSync watched: what reaches the disk is the point, and only the calls say so.
vi.mock("node:fs", async (actual) => {
  const real = await actual<typeof import("node:fs")>();
  return { ...real, fsyncSync: vi.fn(real.fsyncSync) };
});

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("the app's private files (node tokens, certificate pins)", () => {
  it("are on disk, bytes and rename, before the write returns: a power cut leaves the old file or the new, never an empty one", () => {
    const dir = mkdtempSync(join(tmpdir(), "kiln-private-"));
    dirs.push(dir);
    const file = join(dir, "secrets", "node-tokens.json");
    const fsync = vi.mocked(fs.fsyncSync);
    fsync.mockClear();
    writePrivateJson(file, { "node-1": "token" });
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({ "node-1": "token" });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // The file's bytes, then its folder (the rename).
    expect(fsync).toHaveBeenCalledTimes(2);
    expect(fs.readdirSync(join(dir, "secrets"))).toEqual(["node-tokens.json"]);
  });
});
