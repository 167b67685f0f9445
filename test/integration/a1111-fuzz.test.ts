import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type A1111Farm, startA1111Farm } from "../support/a1111-farm";

/**
 * 5,000 generated malformed requests against the A1111 API: wrong types and
 * ranges in every field txt2img and img2img read, broken and hostile JSON, other content
 * types, prototype keys, deep nesting, bodies that are not PNGs, wrong methods
 * and paths, foreign Hosts and Origins. Every one must get a 4xx, none may
 * queue a job, and the server must go on serving (a real request renders after).
 */
const REQUESTS = 5000;
let farm: A1111Farm;

beforeAll(async () => {
  farm = await startA1111Farm(["1x24GB@8"]);
});

afterAll(async () => {
  await farm?.stop();
});

/** A small seeded generator (mulberry32), so a failing case can be generated again. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Malformed {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Buffer;
  why: string;
}

/** Values that are wrong for each field txt2img reads (type or range). */
const WRONG: Record<string, unknown[]> = {
  prompt: [1, true, [], {}, "x".repeat(4001)],
  negative_prompt: [2, false, ["a"], { a: 1 }],
  seed: ["1", 1.5, -2, 2 ** 33, [], {}],
  steps: [0, -1, 201, 2.5, "20", [20], {}],
  cfg_scale: [-1, 51, "7", [], {}],
  width: [0, 63, 513, 4096, "512", 512.5, []],
  height: [1, 100, 8192, "x", {}],
  batch_size: [0, -3, 257, 1.5, "4"],
  n_iter: [0, 1000, "2", []],
  sampler_name: [1, [], {}],
  scheduler: [2, {}],
  override_settings: ["x", 1, [], true],
  send_images: ["yes", 1, {}],
  save_images: ["no", 0, []],
  enable_hr: ["true", 1],
  hr_scale: ["2", [], {}],
  hr_second_pass_steps: [-1, 201, 1.5, "2"],
  hr_resize_x: [-1, 9000, "512"],
  denoising_strength: [-0.1, 1.5, "0.5"],
  styles: ["a", 1, [1]],
  alwayson_scripts: ["x", 1, [1]],
};
/** A 1×1 PNG, for img2img bodies whose other fields are wrong. */
const PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
/** Values that are wrong for the fields img2img reads besides txt2img's. */
const WRONG_IMG2IMG: Record<string, unknown[]> = {
  init_images: [[], "x", [1], [""], ["not base64!"], [Buffer.from("GIF89a").toString("base64")], Array(5).fill(PIXEL)],
  denoising_strength: [0, -0.1, 1.5, "0.5", []],
  resize_mode: [-1, 4, 1.5, "1", {}],
  mask: [1, [], {}],
  mask_blur: [-1, 65, 1.5, "4"],
  inpaint_full_res_padding: [-1, 257, "8"],
  inpainting_mask_invert: [2, -1, "1"],
  inpainting_fill: [4, -1, "1"],
};
const ROUTES_GET = ["sd-models", "options", "samplers", "schedulers", "upscalers", "sd-vae", "loras", "memory"];
const ROUTES_POST = ["txt2img", "options", "png-info", "interrupt", "img2img", "refresh-checkpoints"];

function malformed(random: () => number, i: number): Malformed {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
  const json = { "content-type": "application/json" };
  switch (i % 10) {
    case 0:
    case 1:
    case 2: {
      // One to three fields wrong, among valid ones and junk; every third one an img2img with its own fields too.
      const img2img = i % 3 === 0;
      const body: Record<string, unknown> = { prompt: "fuzz", steps: 1, [`junk_${i}`]: { a: [i] } };
      if (img2img) body.init_images = [PIXEL];
      const wrong = 1 + Math.floor(random() * 3);
      const table = img2img && i % 2 === 0 ? WRONG_IMG2IMG : WRONG;
      for (let k = 0; k < wrong; k++) {
        const field = pick(Object.keys(table));
        body[field] = pick(table[field] as unknown[]);
      }
      return {
        method: "POST",
        path: `/sdapi/v1/${img2img ? "img2img" : "txt2img"}`,
        headers: json,
        body: JSON.stringify(body),
        why: "wrong field",
      };
    }
    case 3: {
      const text = JSON.stringify({ prompt: "fuzz", steps: 2, width: 512 });
      const cut = text.slice(0, Math.floor(random() * (text.length - 1)));
      const broken = pick([cut, `${text}}`, text.replace(":", ""), "{'prompt': 'x'}", "NaN", "[1,,2]", "\u0000"]);
      return {
        method: "POST",
        path: `/sdapi/v1/${pick(["txt2img", "options", "png-info"])}`,
        headers: json,
        body: broken,
        why: "broken JSON",
      };
    }
    case 4: {
      const bytes = Buffer.from(
        Array.from({ length: 1 + Math.floor(random() * 64) }, () => Math.floor(random() * 256)),
      );
      const type = pick([
        "application/xml",
        "multipart/form-data; boundary=x",
        "application/octet-stream",
        "image/png",
      ]);
      return {
        method: "POST",
        path: `/sdapi/v1/${pick(ROUTES_POST)}`,
        headers: { "content-type": type },
        body: bytes,
        why: "content type",
      };
    }
    case 5: {
      const hostile = pick([
        '{"__proto__":{"polluted":1},"prompt":"x"}',
        '{"constructor":{"prototype":{"polluted":1}}}',
        `${"[".repeat(50_000)}${"]".repeat(50_000)}`,
        `{"override_settings":{"sd_model_checkpoint":"${"z".repeat(100)}"}}`,
        '{"override_settings":{"sd_model_checkpoint":7}}',
        JSON.stringify({ prompt: "x", steps: 1, seed: Number.MAX_SAFE_INTEGER }),
      ]);
      return { method: "POST", path: "/sdapi/v1/txt2img", headers: json, body: hostile, why: "hostile JSON" };
    }
    case 6: {
      const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
      const image = pick([
        "not base64 at all!",
        Buffer.from("GIF89a....").toString("base64"),
        png.toString("base64"),
        `data:image/png;base64,${png.subarray(0, Math.floor(random() * png.length)).toString("base64")}`,
        "%%%",
      ]);
      const body = pick([{ image }, { image: 5 }, { img: image }, [image], image]);
      return {
        method: "POST",
        path: "/sdapi/v1/png-info",
        headers: json,
        body: JSON.stringify(body),
        why: "not a PNG",
      };
    }
    case 7: {
      const body = pick(["[]", "1", '"x"', "true", '{"sd_model_checkpoint":"nope"}', '{"sd_model_checkpoint":[]}']);
      return { method: "POST", path: "/sdapi/v1/options", headers: json, body, why: "bad options" };
    }
    case 8: {
      const path = pick([
        `/sdapi/v1/${pick(ROUTES_GET)}`,
        `/sdapi/v1/${pick(ROUTES_POST)}`,
        `/sdapi/v1/${"a".repeat(1 + Math.floor(random() * 40))}`,
        "/sdapi/v1/../v1/txt2img%00",
        "/sdapi/v2/txt2img",
      ]);
      return { method: pick(["PUT", "DELETE", "PATCH"]), path, headers: json, body: "{}", why: "method or path" };
    }
    default: {
      const headers = pick<Record<string, string>>([
        { host: pick(["evil.example", "kiln.attacker.example:7870", "localhost.evil", "x y"]) },
        { origin: pick(["http://evil.example", "null", "https://localhost.evil"]) },
      ]);
      return {
        method: "POST",
        path: "/sdapi/v1/txt2img",
        headers: { ...json, ...headers },
        body: JSON.stringify({ prompt: "should never render", steps: 1 }),
        why: "foreign Host or Origin",
      };
    }
  }
}

/** The status, or what went wrong on the connection (a server that hangs up has not answered with a 4xx). */
function send(base: string, m: Malformed): Promise<number | string> {
  return new Promise((resolve) => {
    const req = httpRequest(`${base}${m.path}`, { method: m.method, headers: m.headers, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", (error) => resolve(error.message));
    req.end(m.body);
  });
}

describe("A1111 API fuzz", () => {
  it(`answers ${REQUESTS} malformed requests with 4xx, queues nothing, and goes on serving`, async () => {
    const random = generator(17);
    const cases = Array.from({ length: REQUESTS }, (_, i) => malformed(random, i));
    const wrong: string[] = [];
    let next = 0;
    const worker = async () => {
      while (next < cases.length) {
        const m = cases[next++] as Malformed;
        const status = await send(farm.base, m);
        if (typeof status === "string" || status < 400 || status >= 500)
          wrong.push(`${status} ${m.why}: ${m.method} ${m.path} ${String(m.body).slice(0, 120)}`);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    expect(wrong.slice(0, 20)).toEqual([]);
    expect(farm.coordinator.listJobs()).toEqual([]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const still = await fetch(`${farm.base}/sdapi/v1/txt2img`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "after the fuzz", steps: 1, batch_size: 2 }),
    });
    expect(still.status).toBe(200);
    expect(((await still.json()) as { images: string[] }).images).toHaveLength(2);
  });
});
