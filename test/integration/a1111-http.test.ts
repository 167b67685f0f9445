import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cancelOrphanedRequests } from "../../coordinator/a1111/orphaned-requests";
import { API_SPOOL_DIR } from "../../coordinator/coordinator";
import { readTextChunks } from "../../farm-node/png/png-text-chunks";
import { parseParameters } from "../../shared/png-parameters";
import { type A1111Farm, startA1111Farm } from "../support/a1111-farm";
import { waitUntil } from "../support/wait-until";

/**
 * Kiln's A1111 API over raw HTTP, for what a client library does not show:
 * the exact shapes, FastAPI's 422s, the guard (Host, Origin, CORS, Basic auth),
 * a client that hangs up, several clients at once, and a fuzz run.
 */
let farm: A1111Farm;

beforeAll(async () => {
  farm = await startA1111Farm(["2x24GB@4"]);
});

afterAll(async () => {
  await farm?.stop();
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  // biome-ignore lint/suspicious/noExplicitAny: answers are read by the A1111 shapes each test asserts
  json: () => any;
}

/** One request with full control of every header (fetch sets Host and Origin itself). */
function send(
  base: string,
  path: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer; signal?: AbortSignal } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `${base}${path}`,
      { method: opts.method ?? (opts.body === undefined ? "GET" : "POST"), headers: opts.headers, signal: opts.signal },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const body = Buffer.concat(chunks).toString();
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body) });
        });
      },
    );
    req.on("error", reject);
    req.end(opts.body);
  });
}

function post(path: string, body: unknown, headers: Record<string, string> = {}, base = farm.base): Promise<Answer> {
  return send(base, path, {
    body: typeof body === "string" ? body : JSON.stringify(body),
    headers: { "content-type": "application/json", ...headers },
  });
}

function apiJobs() {
  return farm.coordinator.listJobs().filter((j) => j.source?.kind === "a1111-api");
}

describe("A1111 API shapes", () => {
  it("answers the lists clients read, in A1111's shapes, with nothing Kiln does not run", async () => {
    expect((await send(farm.base, "/sdapi/v1/samplers")).json()).toEqual(
      expect.arrayContaining([{ name: "Euler a", aliases: expect.any(Array), options: expect.any(Object) }]),
    );
    expect((await send(farm.base, "/sdapi/v1/schedulers")).json()[0]).toMatchObject({
      name: "automatic",
      label: "Automatic",
    });
    expect((await send(farm.base, "/sdapi/v1/upscalers")).json()).toEqual([
      { name: "None", model_name: null, model_path: null, model_url: null, scale: 4 },
      { name: "Lanczos", model_name: null, model_path: null, model_url: null, scale: 4 },
    ]);
    expect((await send(farm.base, "/sdapi/v1/latent-upscale-modes")).json()).toEqual([{ name: "Latent" }]);
    expect((await send(farm.base, "/sdapi/v1/sd-vae")).json()).toEqual([]);
    expect((await send(farm.base, "/sdapi/v1/loras")).json()).toEqual([]);
    expect((await send(farm.base, "/sdapi/v1/embeddings")).json()).toEqual({ loaded: {}, skipped: {} });
    const memory = (await send(farm.base, "/sdapi/v1/memory")).json();
    expect(memory.ram.total).toBeGreaterThan(0);
    // The farm's VRAM: two simulated 24 GB GPUs.
    expect(memory.cuda.system.total).toBe(2 * 24 * 1024 * 2 ** 20);
    expect((await send(farm.base, "/sdapi/v1/cmd-flags")).json()).toMatchObject({
      api: true,
      api_auth: null,
      port: farm.port,
    });
    expect((await post("/sdapi/v1/refresh-checkpoints", "")).status).toBe(200);
    expect((await post("/sdapi/v1/skip", "")).status).toBe(200);
    // img2img is served (test/integration/a1111-img2img.test.ts); a request without a picture names the field.
    const img2img = await post("/sdapi/v1/img2img", { init_images: [], prompt: "x" });
    expect(img2img.status).toBe(422);
    expect(img2img.json().detail[0].loc).toEqual(["body", "init_images"]);
    expect((await send(farm.base, "/sdapi/v1/nope")).json()).toEqual({ detail: "Not Found" });
  });

  it("takes a model by title, name or hash, and names the field when none fits", async () => {
    const [demo] = (await send(farm.base, "/sdapi/v1/sd-models")).json();
    for (const wanted of [demo.title, demo.model_name, demo.hash, demo.sha256, `${demo.model_name}.safetensors`]) {
      expect((await post("/sdapi/v1/options", { sd_model_checkpoint: wanted })).status).toBe(200);
      expect((await send(farm.base, "/sdapi/v1/options")).json().sd_model_checkpoint).toBe(demo.title);
    }
    const refused = await post("/sdapi/v1/options", { sd_model_checkpoint: "sdxl-nope" });
    expect(refused.status).toBe(422);
    expect(refused.json().detail[0]).toMatchObject({ loc: ["body", "sd_model_checkpoint"], type: "value_error" });
    expect(refused.json().detail[0].msg).toContain("kiln-demo");
    // Options a client sets are kept and answered, up to 1 MiB of them in all.
    expect((await post("/sdapi/v1/options", { samples_format: "png", big_a: "a".repeat(600_000) })).status).toBe(200);
    expect((await send(farm.base, "/sdapi/v1/options")).json().big_a).toHaveLength(600_000);
    const tooMuch = await post("/sdapi/v1/options", { big_b: "b".repeat(600_000) });
    expect(tooMuch.status).toBe(422);
    expect(tooMuch.json().detail[0]).toMatchObject({ loc: ["body", "big_b"] });
    expect((await post("/sdapi/v1/options", { big_a: "" })).status).toBe(200);
    const override = await post("/sdapi/v1/txt2img", {
      prompt: "x",
      override_settings: { sd_model_checkpoint: "nope" },
    });
    expect(override.status).toBe(422);
    expect(override.json().detail[0].loc).toEqual(["body", "override_settings", "sd_model_checkpoint"]);
  });

  it("refuses bad fields with FastAPI's 422 naming each one, and bodies that are not JSON or too large", async () => {
    const bad = await post("/sdapi/v1/txt2img", { steps: "many", width: 513, batch_size: 0, cfg_scale: -1 });
    expect(bad.status).toBe(422);
    const locs = bad.json().detail.map((d: { loc: string[] }) => d.loc.join("."));
    expect(locs).toEqual(expect.arrayContaining(["body.steps", "body.width", "body.batch_size", "body.cfg_scale"]));
    expect(bad.json().detail.find((d: { loc: string[] }) => d.loc[1] === "width").msg).toMatch(/multiple of 8/);
    expect((await post("/sdapi/v1/txt2img", "{not json")).status).toBe(422);
    expect((await post("/sdapi/v1/txt2img", { batch_size: 100, n_iter: 100 })).json().detail[0].msg).toMatch(
      /at most 256 images/,
    );
    const huge = await post("/sdapi/v1/txt2img", { prompt: "x".repeat(2 * 1024 * 1024) });
    expect(huge.status).toBe(413);
    const notPng = await post("/sdapi/v1/png-info", { image: Buffer.from("GIF89a").toString("base64") });
    expect(notPng.status).toBe(422);
    expect(notPng.json().detail[0].loc).toEqual(["body", "image"]);
    expect(apiJobs()).toHaveLength(0);
  });
});

describe("txt2img over HTTP", () => {
  it("draws seed -1 once and records it, ignores unknown fields, and names what it could not honour", async () => {
    const answer = await post("/sdapi/v1/txt2img", {
      prompt: "a red barn",
      negative_prompt: "fog",
      seed: -1,
      batch_size: 2,
      n_iter: 2,
      steps: 3,
      cfg_scale: 2.5,
      width: 256,
      height: 192,
      tiling: true,
      restore_faces: true,
      sampler_name: "DPM++ 2M",
      some_extension_field: { deep: [1, 2, 3] },
      // SillyTavern's server forwards its own request body, with the URL and credentials in it.
      url: "http://127.0.0.1:7870",
      auth: "user:secret",
    });
    expect(answer.status).toBe(200);
    const body = answer.json();
    expect(body.images).toHaveLength(4);
    expect(body.parameters).toMatchObject({ prompt: "a red barn", seed: -1, batch_size: 2 });
    // Only the fields A1111's model has are echoed: never a proxy's credentials.
    expect(Object.keys(body.parameters)).not.toEqual(expect.arrayContaining(["auth"]));
    expect(JSON.stringify(body.parameters)).not.toContain("secret");
    const info = JSON.parse(body.info);
    expect(info.seed).toBeGreaterThanOrEqual(0);
    expect(info.all_seeds).toEqual([info.seed, info.seed + 1, info.seed + 2, info.seed + 3]);
    expect(info).toMatchObject({
      width: 256,
      height: 192,
      steps: 3,
      cfg_scale: 2.5,
      batch_size: 2,
      negative_prompt: "fog",
    });
    expect(info.job_timestamp).toMatch(/^\d{14}$/);
    expect(info.warnings).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^tiling is ignored/),
        expect.stringMatching(/^restore_faces is ignored/),
        expect.stringMatching(/^sampler "DPM\+\+ 2M" is not in Kiln/),
      ]),
    );
    // The PNGs carry the same parameters chunk as Kiln's own files, with the drawn seeds.
    body.images.forEach((b64: string, i: number) => {
      const parameters = parseParameters(readTextChunks(Buffer.from(b64, "base64")).parameters ?? "");
      expect(parameters).toMatchObject({
        prompt: "a red barn",
        negativePrompt: "fog",
        seed: info.seed + i,
        width: 256,
      });
      expect(info.infotexts[i]).toBe(readTextChunks(Buffer.from(b64, "base64")).parameters);
    });
  });

  it("save_images true files the PNGs in the studio's output folder; send_images false answers without them", async () => {
    const answer = await post("/sdapi/v1/txt2img", {
      prompt: "kept",
      seed: 99,
      batch_size: 2,
      steps: 2,
      save_images: true,
      send_images: false,
    });
    expect(answer.status).toBe(200);
    expect(answer.json().images).toEqual([]);
    const files = (readdirSync(farm.outputDir, { recursive: true }) as string[]).filter((f) => f.endsWith(".png"));
    expect(files).toHaveLength(2);
    const seeds = files.map(
      (f) => parseParameters(readTextChunks(readFileSync(join(farm.outputDir, f))).parameters ?? "").seed,
    );
    expect(seeds.sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual([99, 100]);
  });

  it("serves several clients at once, each its own job", async () => {
    const answers = await Promise.all(
      [1, 2, 3].map((n) => post("/sdapi/v1/txt2img", { prompt: `client ${n}`, seed: n, batch_size: 3, steps: 4 })),
    );
    for (const a of answers) expect(a.json().images).toHaveLength(3);
    const jobs = apiJobs().filter((j) => j.name.startsWith("client "));
    expect(jobs).toHaveLength(3);
    expect(jobs.every((j) => j.state === "done")).toBe(true);
  });

  it("cancels the job of a client that hangs up mid-request", async () => {
    const abort = new AbortController();
    const gone = send(farm.base, "/sdapi/v1/txt2img", {
      body: JSON.stringify({ prompt: "hung up", batch_size: 64, steps: 30 }),
      headers: { "content-type": "application/json" },
      signal: abort.signal,
    }).catch(() => null);
    const job = await waitUntil(
      () => apiJobs().find((j) => j.name === "hung up" && j.counts.done > 0),
      30_000,
      "the request's first image",
    );
    abort.abort();
    await gone;
    await waitUntil(
      () => farm.coordinator.listJobs().find((j) => j.id === job.id)?.state === "cancelled",
      10_000,
      "its job cancelled",
    );
  });
});

describe("who may use the A1111 API", () => {
  it("refuses a DNS-rebinding Host and another site's page, and sends no CORS headers by default", async () => {
    const before = apiJobs().length;
    const rebound = await post("/sdapi/v1/txt2img", { prompt: "x" }, { host: `evil.example:${farm.port}` });
    expect(rebound.status).toBe(403);
    const page = await post("/sdapi/v1/txt2img", { prompt: "x" }, { origin: "http://evil.example" });
    expect(page.status).toBe(403);
    const simple = await send(farm.base, "/sdapi/v1/txt2img", {
      body: JSON.stringify({ prompt: "x" }),
      headers: { "content-type": "text/plain", origin: "https://evil.example" },
    });
    expect(simple.status).toBe(403);
    expect(apiJobs().length).toBe(before);
    const plain = await send(farm.base, "/sdapi/v1/sd-models", { headers: { origin: farm.base } });
    expect(plain.status).toBe(200);
    expect(plain.headers["access-control-allow-origin"]).toBeUndefined();
    // Loopback names and IP addresses are fine, with or without the port.
    for (const host of ["localhost", `localhost:${farm.port}`, "[::1]:1", "10.1.2.3:7870"])
      expect((await send(farm.base, "/sdapi/v1/sd-models", { headers: { host } })).status).toBe(200);
  });

  it("answers CORS only for the origins --cors-allow-origins names", async () => {
    const server = await farm.serveAgain({ corsOrigins: ["https://tools.studio.example"] });
    try {
      const preflight = await send(server.base, "/sdapi/v1/txt2img", {
        method: "OPTIONS",
        headers: {
          origin: "https://tools.studio.example",
          "access-control-request-method": "POST",
          "access-control-request-headers": "content-type",
        },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers["access-control-allow-origin"]).toBe("https://tools.studio.example");
      const got = await send(server.base, "/sdapi/v1/sd-models", {
        headers: { origin: "https://tools.studio.example" },
      });
      expect(got.headers["access-control-allow-origin"]).toBe("https://tools.studio.example");
      const other = await send(server.base, "/sdapi/v1/txt2img", {
        method: "OPTIONS",
        headers: { origin: "https://evil.example", "access-control-request-method": "POST" },
      });
      expect(other.status).toBe(403);
      expect(other.headers["access-control-allow-origin"]).toBeUndefined();
    } finally {
      await server.close();
    }
  });

  it("with --api-auth requires HTTP Basic, as A1111 does, and slows down an address that keeps guessing", async () => {
    const server = await farm.serveAgain({ credentials: new Map([["alice", "s3cret:with-colon"]]) });
    const basic = (user: string, password: string) => ({
      authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`,
    });
    try {
      const none = await send(server.base, "/sdapi/v1/sd-models");
      expect(none.status).toBe(401);
      expect(none.headers["www-authenticate"]).toBe("Basic");
      expect(none.json()).toEqual({ detail: "Incorrect username or password" });
      expect(
        (await send(server.base, "/sdapi/v1/sd-models", { headers: basic("alice", "s3cret:with-colon") })).status,
      ).toBe(200);
      const rendered = await post(
        "/sdapi/v1/txt2img",
        { prompt: "by alice", steps: 1 },
        basic("alice", "s3cret:with-colon"),
        server.base,
      );
      expect(rendered.status).toBe(200);
      expect(apiJobs().find((j) => j.name === "by alice")?.source?.client).toBe("alice at 127.0.0.1");
      expect((await send(server.base, "/sdapi/v1/sd-models", { headers: basic("alice", "wrong") })).status).toBe(401);
      expect(
        (await send(server.base, "/sdapi/v1/sd-models", { headers: basic("bob", "s3cret:with-colon") })).status,
      ).toBe(401);
      for (let i = 0; i < 10; i++)
        await send(server.base, "/sdapi/v1/sd-models", { headers: basic("alice", `guess${i}`) });
      expect(
        (await send(server.base, "/sdapi/v1/sd-models", { headers: basic("alice", "s3cret:with-colon") })).status,
      ).toBe(429);
    } finally {
      await server.close();
    }
  });
});

describe("requests of an earlier run", () => {
  it("cancels transient API jobs nobody can receive any more and empties the spool; saved ones and the app's own go on", async () => {
    const { coordinator } = farm;
    coordinator.pauseQueue();
    try {
      const source = { kind: "a1111-api" as const, client: "10.0.0.9" };
      const orphan = coordinator.submitJob({ prompts: ["orphan"], count: 2, source, transient: true }).jobId;
      const saved = coordinator.submitJob({ prompts: ["saved"], count: 2, source }).jobId;
      const own = coordinator.submitJob({ prompts: ["the app's own"], count: 2 }).jobId;
      const spool = join(farm.dataDir, API_SPOOL_DIR);
      mkdirSync(spool, { recursive: true });
      writeFileSync(join(spool, "left-over-00000-1.png"), "png");
      expect(await cancelOrphanedRequests(coordinator, spool, pino({ level: "silent" }))).toBe(1);
      const state = (id: string) => coordinator.listJobs().find((j) => j.id === id)?.state;
      expect(state(orphan)).toBe("cancelled");
      expect(state(saved)).toBe("queued");
      expect(state(own)).toBe("queued");
      expect(readdirSync(spool)).toEqual([]);
      coordinator.cancelJob(saved);
      coordinator.cancelJob(own);
    } finally {
      coordinator.resumeQueue();
    }
  });
});
