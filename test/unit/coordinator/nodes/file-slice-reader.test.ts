import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readFileSlice } from "../../../../coordinator/nodes/file-slice-reader";

const dir = mkdtempSync(join(tmpdir(), "kiln-slice-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MIB = 2 ** 20;

async function collect(pieces: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const piece of pieces) out.push(Buffer.from(piece));
  return out;
}

describe("readFileSlice", () => {
  it("gives a slice's bytes in 1 MiB pieces read into one buffer, the same again when the buffer is reused", async () => {
    const bytes = randomBytes(3 * MIB + 123);
    const path = join(dir, "weights.bin");
    writeFileSync(path, bytes);
    const into = Buffer.alloc(4 * MIB);
    const slices = [
      { path, start: 100, end: 100 + 2 * MIB + 7 },
      { path, start: 3 * MIB, end: 3 * MIB + 123 },
    ];
    for (const slice of [...slices, ...slices]) {
      const pieces = await collect(readFileSlice(slice, into));
      expect(pieces.map((p) => p.length)).toEqual(slice.start === 100 ? [MIB, MIB, 7] : [123]);
      expect(Buffer.concat(pieces).equals(bytes.subarray(slice.start, slice.end))).toBe(true);
      // The pieces are the buffer's own bytes, from its start.
      expect(into.subarray(0, slice.end - slice.start).equals(bytes.subarray(slice.start, slice.end))).toBe(true);
    }
  });

  it("has closed the file when it gives the last piece, so the upload's body ends with it", async () => {
    const path = join(dir, "closing.bin");
    writeFileSync(path, randomBytes(2 * MIB));
    // Linux lists a process's open files under /proc/self/fd.
    const isOpen = () =>
      readdirSync("/proc/self/fd").some((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`) === path;
        } catch {
          return false;
        }
      });
    const pieces = readFileSlice({ path, start: 0, end: 2 * MIB }, Buffer.alloc(2 * MIB));
    expect((await pieces.next()).done).toBe(false);
    expect(isOpen()).toBe(true);
    expect((await pieces.next()).done).toBe(false);
    expect(isOpen()).toBe(false);
    expect((await pieces.next()).done).toBe(true);
  });

  it("refuses a slice larger than the buffer, and a file shorter than the slice, naming both", async () => {
    const path = join(dir, "short.bin");
    writeFileSync(path, randomBytes(1000));
    await expect(collect(readFileSlice({ path, start: 0, end: 2000 }, Buffer.alloc(1500)))).rejects.toThrow(
      /2000 bytes does not fit 1500/,
    );
    await expect(collect(readFileSlice({ path, start: 500, end: 1500 }, Buffer.alloc(MIB)))).rejects.toThrow(
      /short\.bin ended at 1000 bytes, before 1500/,
    );
  });
});
