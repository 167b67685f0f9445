import { constants } from "node:buffer";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { imagesAnswer } from "../../../../coordinator/a1111/images-answer";
import { waitUntil } from "../../../support/wait-until";

const dir = mkdtempSync(join(tmpdir(), "kiln-images-answer-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("imagesAnswer: a txt2img answer streamed a PNG at a time", () => {
  it("sends an answer longer than a JavaScript string may be (7 × 64 MiB of PNG bytes as base64), in A1111's shape", async () => {
    const png = join(dir, "big.png");
    writeFileSync(png, Buffer.alloc(64 * 2 ** 20, 7));
    let finished = 0;
    const stream = imagesAnswer({
      paths: Array(7).fill(png),
      sendImages: true,
      parameters: { prompt: "large" },
      info: (infotexts) => JSON.stringify({ count: infotexts.length }),
      finished: async () => {
        finished++;
      },
    });
    let length = 0;
    let head = "";
    let tail = "";
    let longest = 0;
    for await (const chunk of stream) {
      const text = String(chunk);
      if (head.length < 20) head += text.slice(0, 20);
      tail = text;
      length += text.length;
      longest = Math.max(longest, text.length);
    }
    const base64 = Math.ceil((64 * 2 ** 20) / 3) * 4;
    expect(length).toBeGreaterThan(constants.MAX_STRING_LENGTH);
    expect(length).toBe('{"images":['.length + 7 * (base64 + 2) + 6 + tail.length);
    expect(longest).toBeLessThanOrEqual(base64 + 3);
    expect(head.startsWith('{"images":["BwcH')).toBe(true);
    expect(tail).toBe('],"parameters":{"prompt":"large"},"info":"{\\"count\\":7}"}');
    expect(finished).toBe(1);
  });

  it("runs its end (the spooled PNGs removed) once, also when the client goes away mid-answer", async () => {
    const png = join(dir, "small.png");
    writeFileSync(png, Buffer.alloc(1024, 1));
    let finished = 0;
    const stream = imagesAnswer({
      paths: [png, png, png],
      sendImages: true,
      parameters: {},
      info: () => "{}",
      finished: async () => {
        finished++;
      },
    });
    for await (const _ of stream) break;
    await waitUntil(() => finished > 0, 2000, "the answer's end");
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(finished).toBe(1);
  });
});
