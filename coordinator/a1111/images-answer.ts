import { readFile } from "node:fs/promises";
import { Readable } from "node:stream";
import { readPngText } from "./png-text";

export interface ImagesAnswer {
  /** The stored PNGs, in the answer's order. */
  paths: readonly string[];
  /** A1111's send_images: false answers no pictures (their parameters still make `info`). */
  sendImages: boolean;
  parameters: Record<string, unknown>;
  /** The answer's `info` (a JSON string), from each image's parameters text as its PNG carries it. */
  info(infotexts: string[]): string;
  /** Runs once the answer is sent or its client went away (the request's spooled PNGs are removed then). */
  finished(): Promise<void>;
}

/**
 * A txt2img or img2img answer, `{"images": [base64 PNG, …], "parameters", "info"}` as A1111 sends it, streamed
 * one PNG at a time. Built whole, a large batch (96 PNGs of 2048², about 500 MB of base64) was a longer string
 * than JavaScript allows: serialising it failed after every image had rendered, and the app held every PNG
 * twice meanwhile. Here one PNG is in memory at a time.
 */
export function imagesAnswer(answer: ImagesAnswer): Readable {
  return Readable.from(pieces(answer), { objectMode: false });
}

async function* pieces(answer: ImagesAnswer): AsyncGenerator<string> {
  try {
    const infotexts: string[] = [];
    yield '{"images":[';
    let sent = 0;
    for (const path of answer.paths) {
      const png = await readFile(path);
      infotexts.push(readPngText(png)?.parameters ?? "");
      if (!answer.sendImages) continue;
      yield `${sent++ === 0 ? "" : ","}"${png.toString("base64")}"`;
    }
    yield `],"parameters":${JSON.stringify(answer.parameters)},"info":${JSON.stringify(answer.info(infotexts))}}`;
  } finally {
    await answer.finished();
  }
}
