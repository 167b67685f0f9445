import { createHash } from "node:crypto";
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { InitImageCache } from "../../../farm-node/init-images";
import { tempDir } from "../../support/temp-dir";

/** A distinct small PNG per `n` (about `pixels` pixels of noise, so sizes are comparable). */
async function png(n: number, side = 16): Promise<{ sha: string; bytes: Buffer }> {
  const raw = Buffer.alloc(side * side * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 31 + n * 97) % 251;
  const bytes = await sharp(raw, { raw: { width: side, height: side, channels: 3 } })
    .png()
    .toBuffer();
  return { sha: createHash("sha256").update(bytes).digest("hex"), bytes };
}

describe("a node's init image cache", () => {
  it("keeps at most maxCount images, the least recently used going first", async () => {
    const dir = tempDir("kiln-init-");
    const cache = new InitImageCache(dir, { maxCount: 2, maxBytes: 1 << 30 });
    const [a, b, c] = await Promise.all([png(1), png(2), png(3)]);
    expect(await cache.put(a.sha, a.bytes)).toBe(true);
    expect(await cache.put(a.sha, a.bytes)).toBe(false);
    await cache.put(b.sha, b.bytes);
    await new Promise((r) => setTimeout(r, 5));
    expect(cache.has(a.sha)).toBe(true); // a task used a: b is now the oldest
    await cache.put(c.sha, c.bytes);
    expect([cache.has(a.sha), cache.has(b.sha), cache.has(c.sha)]).toEqual([true, false, true]);
    expect(readdirSync(dir).sort()).toEqual([`${a.sha}.png`, `${c.sha}.png`].sort());
  });

  it("never evicts a picture a queued task holds, over its limits while it must, until the task releases it", async () => {
    const dir = tempDir("kiln-init-");
    const cache = new InitImageCache(dir, { maxCount: 1, maxBytes: 1 << 30 });
    const [a, b, c] = await Promise.all([png(1), png(2), png(3)]);
    await cache.put(a.sha, a.bytes);
    cache.hold(a.sha);
    cache.hold(a.sha);
    await cache.put(b.sha, b.bytes);
    expect([cache.has(a.sha), cache.has(b.sha)]).toEqual([true, true]);
    cache.release(a.sha);
    await cache.put(c.sha, c.bytes);
    // Still held by the second task: b, the oldest unheld, went instead.
    expect([cache.has(a.sha), cache.has(b.sha), cache.has(c.sha)]).toEqual([true, false, true]);
    cache.release(a.sha);
    await new Promise((r) => setTimeout(r, 5));
    await cache.put(b.sha, b.bytes);
    expect(cache.size.count).toBe(1);
    expect(cache.has(b.sha)).toBe(true);
  });

  it("keeps at most maxBytes, and what it holds survives a restart", async () => {
    const dir = tempDir("kiln-init-");
    const [a, b] = await Promise.all([png(1, 32), png(2, 32)]);
    const cache = new InitImageCache(dir, { maxCount: 10, maxBytes: a.bytes.length + b.bytes.length - 1 });
    await cache.put(a.sha, a.bytes);
    await new Promise((r) => setTimeout(r, 5));
    await cache.put(b.sha, b.bytes);
    expect([cache.has(a.sha), cache.has(b.sha)]).toEqual([false, true]);
    writeFileSync(join(dir, `.${b.sha}.123.partial`), "cut short");
    const again = new InitImageCache(dir, { maxCount: 10, maxBytes: 1 << 20 });
    expect(again.has(b.sha)).toBe(true);
    expect(again.size).toEqual({ count: 1, bytes: b.bytes.length });
    expect(readdirSync(dir)).toEqual([`${b.sha}.png`]);
  });

  it("refuses bytes that do not hash to the name, or are not a PNG, naming why", async () => {
    const cache = new InitImageCache(tempDir("kiln-init-"));
    const a = await png(1);
    await expect(cache.put("0".repeat(64), a.bytes)).rejects.toMatchObject({ code: "E_BAD_REQUEST" });
    const text = Buffer.from("hello");
    const sha = createHash("sha256").update(text).digest("hex");
    await expect(cache.put(sha, text)).rejects.toThrow(/must be a PNG/);
    // A PNG cut short after its header: refused now, not kept and failed on by every task naming it.
    const whole = await png(2, 128);
    const cut = whole.bytes.subarray(0, Math.floor(whole.bytes.length * 0.6));
    await expect(cache.put(createHash("sha256").update(cut).digest("hex"), cut)).rejects.toThrow(
      /cut short or corrupt/,
    );
    expect(cache.size.count).toBe(0);
  });
});
