import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ResultStore } from "../../../../coordinator/results/result-store";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("the result store's sweep of writes a crash cut short", () => {
  it("removes its own part files in a flat --out folder and leaves other programs' alone", async () => {
    const out = mkdtempSync(join(tmpdir(), "kiln-sweep-"));
    dirs.push(out);
    const own = "a-lighthouse-j_0190-00003-42.png.31337.partial";
    const others = ["plate-v3.exr.partial", "download.partial", "a-lighthouse-j_0190-00002-41.png"];
    for (const name of [own, ...others]) writeFileSync(join(out, name), "bytes");
    expect(await new ResultStore(out, "flat").sweepPartials([out])).toBe(1);
    expect(readdirSync(out).sort()).toEqual([...others].sort());
  });
});
