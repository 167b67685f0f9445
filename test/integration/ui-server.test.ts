import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import pino from "pino";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { Coordinator } from "../../coordinator/coordinator";
import { UI_KEY_FILE } from "../../coordinator/ui-api/ui-certificate";
import { startUiServer, UI_CSP } from "../../coordinator/ui-api/ui-server";
import { formatFingerprint, normalizeFingerprint } from "../../shared/fingerprint";
import { THUMBNAIL_SIZES } from "../../shared/thumbnail-sizes";
import { freePort } from "../support/free-port";
import { startServe } from "../support/kiln-serve-process";
import { connectUi } from "../support/ui-client";
import { waitUntil } from "../support/wait-until";
import { image } from "../unit/renderer/ui-fixtures";

let coordinator: Coordinator;
let server: Awaited<ReturnType<typeof startUiServer>>;
const token = "t0ken-for-the-ui-api-test";
const outputDir = mkdtempSync(join(tmpdir(), "kiln-ui-out-"));
const dataDir = mkdtempSync(join(tmpdir(), "kiln-ui-data-"));
/** A real stored render, 768×512. */
const picture = join(outputDir, "2026-01-01", "job", "00001-2.png");
const secret = join(mkdtempSync(join(tmpdir(), "kiln-ui-secret-")), "secret.png");

beforeAll(async () => {
  coordinator = new Coordinator({
    dataDir,
    outputDir,
    localNode: false,
    discovery: false,
    clientName: "test",
    log: pino({ level: "silent" }),
  });
  await coordinator.start();
  mkdirSync(join(outputDir, "2026-01-01", "job"), { recursive: true });
  writeFileSync(join(outputDir, "2026-01-01", "job", "00000-1.png"), Buffer.from("png-bytes"));
  writeFileSync(
    picture,
    await sharp({ create: { width: 768, height: 512, channels: 3, background: "#2a6" } })
      .png()
      .toBuffer(),
  );
  writeFileSync(secret, "outside the output folder");
  symlinkSync(secret, join(outputDir, "escape.png"));
  server = await startUiServer({
    coordinator,
    host: "127.0.0.1",
    port: 0,
    token,
    log: pino({ level: "silent" }),
    outputDir,
    dataDir,
    uiDir: null,
  });
});

afterAll(async () => {
  await server.app.close();
  await coordinator.stop();
});

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  bytes: Buffer;
}

/** One HTTP(S) request with full control of Host and Origin (fetch sets Host itself); TLS is checked by fingerprint. */
function send(url: string, opts: { method?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const request = url.startsWith("https:") ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: opts.method ?? "GET", headers: opts.headers, rejectUnauthorized: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const bytes = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: bytes.toString(), bytes });
        });
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/** 101 when the WebSocket opens, else the HTTP status its upgrade got. */
function upgrade(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers, rejectUnauthorized: false });
    socket.once("open", () => {
      socket.close();
      resolve(101);
    });
    socket.once("unexpected-response", (req, res) => {
      resolve(res.statusCode ?? 0);
      req.destroy();
    });
    socket.once("error", reject);
  });
}

function startSession(origin: string, bearer: string, headers: Record<string, string> = {}): Promise<Answer> {
  return send(`${origin}/session`, { method: "POST", headers: { authorization: `Bearer ${bearer}`, ...headers } });
}

/** The `name=value` part of the image cookie a session answer set. */
function imageCookie(answer: Answer): string {
  const [cookie] = answer.headers["set-cookie"] ?? [];
  return cookie?.split(";")[0] ?? "";
}

describe("UI API server (kiln serve) on 127.0.0.1", () => {
  it("refuses a WebSocket without the right token before it opens", async () => {
    expect(await upgrade(`ws://127.0.0.1:${server.port}/api?token=wrong`)).toBe(401);
    expect(await upgrade(`ws://127.0.0.1:${server.port}/api`)).toBe(401);
    expect(await upgrade(`ws://127.0.0.1:${server.port}/api?token=${token}`)).toBe(101);
  });

  it("answers contract calls and reports invalid arguments by field", async () => {
    const ui = await connectUi(server.port, token);
    expect(await ui.call("listJobs", { includeFinished: true })).toEqual([]);
    await expect(ui.call("submitJob", { prompts: ["x"], width: 500 })).rejects.toMatchObject({
      code: "E_BAD_REQUEST",
      fields: [{ path: "width", message: expect.stringMatching(/multiple of 8/) }],
    });
    await expect(ui.call("submitJob", { prompts: ["x"] })).rejects.toMatchObject({ code: "E_MODEL_MISSING" });
    // A node's address typed with its port, and an address nothing answers at: each says what to do.
    await expect(ui.call("pairNode", { host: "10.0.0.5:7878", port: 7878, code: "123-456" })).rejects.toMatchObject({
      code: "E_BAD_REQUEST",
      fields: [{ path: "host", message: "holds a port: give the host alone, and the port in its own field" }],
    });
    const closed = await freePort();
    await expect(
      ui.call("addNode", { host: "127.0.0.1", port: closed, token: "a-token-of-some-length", trustFirstUse: true }),
    ).rejects.toMatchObject({
      code: "E_UNREACHABLE",
      message: expect.stringMatching(
        new RegExp(
          `^cannot reach 127\\.0\\.0\\.1:${closed} \\(.*ECONNREFUSED.*\\): check the address and port, and that kiln-node runs there$`,
        ),
      ),
    });
    ui.close();
  });

  it("pauses and resumes the whole queue: queueState answers, queue.changed carries it", async () => {
    const ui = await connectUi(server.port, token);
    expect(await ui.call("queueState", {})).toEqual({ paused: false, reason: null });
    expect(await ui.call("pauseQueue", {})).toEqual({ ok: true });
    expect(await ui.call("queueState", {})).toEqual({ paused: true, reason: null });
    await ui.events.waitFor(
      (e) => e.type === "queue.changed" && e.queuePaused,
      5000,
      () => "no queue.changed with queuePaused: true",
    );
    await ui.call("resumeQueue", {});
    expect(await ui.call("queueState", {})).toEqual({ paused: false, reason: null });
    await ui.events.waitFor(
      (e) => e.type === "queue.changed" && !e.queuePaused,
      5000,
      () => "no queue.changed with queuePaused: false",
    );
    ui.close();
  });

  it("serves images for an HttpOnly, SameSite=Strict session cookie, never for a token in the image's address", async () => {
    const origin = `http://127.0.0.1:${server.port}`;
    const inside = join(outputDir, "2026-01-01", "job", "00000-1.png");
    const image = `${origin}/images?path=${encodeURIComponent(inside)}`;
    // A copied image address or a dragged image must not carry a key to the farm.
    expect((await send(`${image}&token=${token}`)).status).toBe(401);

    const refused = await startSession(origin, "nope");
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body)).toMatchObject({ error: { code: "E_UNAUTHORIZED" } });
    expect(refused.headers["set-cookie"]).toBeUndefined();

    const session = await startSession(origin, token);
    expect(session.status).toBe(204);
    const [setCookie] = session.headers["set-cookie"] ?? [];
    expect(setCookie).toMatch(/; HttpOnly/i);
    expect(setCookie).toMatch(/; SameSite=Strict/i);
    expect(setCookie).toMatch(/; Path=\/images(;|$)/i);
    // Plain HTTP on loopback: a Secure cookie would not be kept.
    expect(setCookie).not.toMatch(/; Secure/i);
    const cookie = imageCookie(session);
    expect(cookie).not.toContain(token);

    const ok = await send(image, { headers: { cookie } });
    expect(ok.status).toBe(200);
    expect(ok.body).toBe("png-bytes");
    expect(ok.headers["content-security-policy"]).toBe(UI_CSP);
    expect((await send(image, { headers: { cookie: cookie.replace(/=.*/, "=forged") } })).status).toBe(401);
    expect((await send(image)).status).toBe(401);
    // Cookies ignore ports: a page of another port on this computer would send it along, and is told apart.
    for (const site of ["same-site", "cross-site"])
      expect((await send(image, { headers: { cookie, "sec-fetch-site": site } })).status, site).toBe(401);
    expect((await send(image, { headers: { cookie, "sec-fetch-site": "same-origin" } })).status).toBe(200);
    // The cookie opens images only, not the API.
    expect(await upgrade(`ws://127.0.0.1:${server.port}/api`, { cookie })).toBe(401);
    for (const trick of [
      secret,
      join(outputDir, "..", "x.png"),
      join(outputDir, "escape.png"),
      "relative.png",
      `${inside}\0`,
    ]) {
      expect(
        (await send(`${origin}/images?path=${encodeURIComponent(trick)}`, { headers: { cookie } })).status,
        trick,
      ).toBe(404);
    }
  });

  it("serves WebP thumbnails at the fixed sizes to the same cookie only, confined like the images", async () => {
    const origin = `http://127.0.0.1:${server.port}`;
    const cookie = imageCookie(await startSession(origin, token));
    const thumbnail = (path: string, size: string) =>
      `${origin}/images?path=${encodeURIComponent(path)}&size=${encodeURIComponent(size)}`;
    expect((await send(thumbnail(picture, "256"))).status).toBe(401);
    expect(
      (await send(thumbnail(picture, "256"), { headers: { cookie, "sec-fetch-site": "cross-site" } })).status,
    ).toBe(401);
    expect((await send(`${thumbnail(picture, "256")}&token=${token}`)).status).toBe(401);

    for (const size of THUMBNAIL_SIZES) {
      const answer = await send(thumbnail(picture, String(size)), { headers: { cookie } });
      expect(answer.status, String(size)).toBe(200);
      expect(answer.headers["content-type"]).toBe("image/webp");
      expect(answer.headers["x-content-type-options"]).toBe("nosniff");
      expect(answer.headers["content-security-policy"]).toBe(UI_CSP);
      const meta = await sharp(answer.bytes).metadata();
      expect(meta.format).toBe("webp");
      expect([meta.width, meta.height]).toEqual([size, (size * 2) / 3].map(Math.round));
      // Served again from the cache: the same bytes.
      expect((await send(thumbnail(picture, String(size)), { headers: { cookie } })).bytes).toEqual(answer.bytes);
    }
    expect(readdirSync(join(dataDir, "thumbnails"))).toHaveLength(THUMBNAIL_SIZES.length);

    for (const size of ["300", "0256", "", "256&size=512", "1e9"]) {
      const answer = await send(thumbnail(picture, size), { headers: { cookie } });
      expect(answer.status, size).toBe(400);
      expect(JSON.parse(answer.body), size).toEqual({
        error: {
          code: "E_BAD_REQUEST",
          message: expect.stringMatching(/^size must be one of 256, 512/),
          fields: [{ path: "size", message: expect.stringMatching(/leave it out for the full image/) }],
        },
      });
    }
    // A repeated field is not a size either.
    expect((await send(`${thumbnail(picture, "256")}&size=512`, { headers: { cookie } })).status).toBe(400);
    for (const trick of [secret, join(outputDir, "..", "x.png"), join(outputDir, "escape.png"), "relative.png"])
      expect((await send(thumbnail(trick, "256"), { headers: { cookie } })).status, trick).toBe(404);
    const broken = await send(thumbnail(join(outputDir, "2026-01-01", "job", "00000-1.png"), "256"), {
      headers: { cookie },
    });
    expect(broken.status).toBe(500);
    expect(JSON.parse(broken.body).error.message).toMatch(/^could not make a thumbnail of this image/);
    expect(broken.headers["cache-control"]).toBe("no-store");
  });

  it("makes the cell thumbnail of each image the coordinator stores, before any page asks", async () => {
    const stored = join(outputDir, "2026-01-01", "job", "00002-3.png");
    writeFileSync(stored, await sharp(picture).toBuffer());
    const before = readdirSync(join(dataDir, "thumbnails")).length;
    coordinator.emit("ui", {
      type: "image.done",
      image: image({ id: "img-3", jobId: "job", index: 2, state: "done", path: stored }),
    });
    await waitUntil(() => readdirSync(join(dataDir, "thumbnails")).length > before, 10_000, "the thumbnail");
  });

  it("stops making the thumbnails of requests whose clients went away (a gallery flung past)", async () => {
    const origin = `http://127.0.0.1:${server.port}`;
    const cookie = imageCookie(await startSession(origin, token));
    // Noise, so each decode and encode takes a while; 24 copies at 24 paths are 24 different thumbnails.
    const noise = await sharp(randomBytes(1536 * 1536 * 3), { raw: { width: 1536, height: 1536, channels: 3 } })
      .png({ compressionLevel: 1 })
      .toBuffer();
    const flung = join(outputDir, "flung");
    mkdirSync(flung);
    const paths = Array.from({ length: 24 }, (_, i) => join(flung, `${i}.png`));
    for (const path of paths) writeFileSync(path, noise);
    const made = () => (existsSync(join(dataDir, "thumbnails")) ? readdirSync(join(dataDir, "thumbnails")).length : 0);
    const before = made();
    const requests = paths.map((path) => {
      const req = httpRequest(`${origin}/images?path=${encodeURIComponent(path)}&size=512`, {
        headers: { cookie },
        agent: false,
      });
      req.on("error", () => {});
      req.end();
      return req;
    });
    // The first encode done: every request has long reached the server and waits in its queue.
    await waitUntil(() => made() > before, 30_000, "the first thumbnail");
    for (const req of requests) req.destroy();
    // Let whatever had started finish.
    let settled = made();
    for (let quiet = 0; quiet < 10; quiet++) {
      await new Promise((r) => setTimeout(r, 100));
      if (made() !== settled) [settled, quiet] = [made(), 0];
    }
    // At most the encodes that were running (4 at most) and the one that just started.
    expect(settled - before).toBeLessThanOrEqual(5);
  });

  it("stores a picture the page sends in the init image store and shows it back to the image cookie", async () => {
    const ui = await connectUi(server.port, token);
    const origin = `http://127.0.0.1:${server.port}`;
    try {
      const jpeg = await sharp({ create: { width: 96, height: 64, channels: 3, background: "#c42" } })
        .jpeg()
        .toBuffer();
      const stored = await ui.call("storeInitImage", { data: jpeg.toString("base64") });
      expect(stored).toEqual({ sha256: expect.stringMatching(/^[0-9a-f]{64}$/), width: 96, height: 64 });
      expect(coordinator.initImages.has(stored.sha256)).toBe(true);

      const shown = `${origin}/images/init/${stored.sha256}.png`;
      expect((await send(shown)).status).toBe(401);
      const cookie = imageCookie(await startSession(origin, token));
      const answer = await send(shown, { headers: { cookie } });
      expect(answer.status).toBe(200);
      expect(answer.headers["content-type"]).toBe("image/png");
      expect(answer.bytes.equals((await coordinator.initImages.get(stored.sha256)) as Buffer)).toBe(true);
      for (const name of [`${"0".repeat(64)}.png`, stored.sha256, "..%2F..%2Fsecret.png"])
        expect((await send(`${origin}/images/init/${name}`, { headers: { cookie } })).status, name).toBe(404);

      await expect(
        ui.call("storeInitImage", { data: Buffer.from("not a picture").toString("base64") }),
      ).rejects.toMatchObject({
        code: "E_BAD_REQUEST",
        fields: [{ path: "initImage", message: "is not a picture" }],
      });
      await expect(ui.call("storeInitImage", { data: "not base64!" })).rejects.toMatchObject({
        code: "E_BAD_REQUEST",
        fields: [{ path: "data", message: "must be the picture's bytes in base64" }],
      });
      await expect(ui.call("storeInitImage", {})).rejects.toMatchObject({ fields: [{ path: "data" }] });
      // A command that does not exist is named as a field, as the desktop's IPC names it, not as zod's JSON.
      const misspelt = await ui.call("submitJb" as "listJobs", {}).catch((e: unknown) => e);
      expect(misspelt).toMatchObject({ code: "E_BAD_REQUEST", fields: [{ path: "command" }] });
      expect((misspelt as Error).message).toMatch(/^not a UI API request: command: /);
      expect((misspelt as Error).message).not.toContain("{");
      await expect(ui.call("storeInitImage", { imageId: "no-such-image" })).rejects.toMatchObject({
        code: "E_NOT_FOUND",
        fields: [{ path: "imageId", message: "is not in the gallery" }],
      });
      // Only a picture may be large: any other request over 1 MiB is refused, answered, and the socket stays open.
      await expect(
        ui.call("listJobs", { includeFinished: true, padding: "x".repeat(1.5 * 1024 * 1024) } as never),
      ).rejects.toMatchObject({
        code: "E_TOO_LARGE",
      });
      const big = await sharp({
        create: {
          width: 1024,
          height: 1024,
          channels: 3,
          background: "#000",
          noise: { type: "gaussian", mean: 128, sigma: 60 },
        },
      })
        .png()
        .toBuffer();
      expect(big.length).toBeGreaterThan(1024 * 1024);
      expect((await ui.call("storeInitImage", { data: big.toString("base64") })).width).toBe(1024);
    } finally {
      ui.close();
    }
  });

  it("refuses other host names (DNS rebinding) and other sites' pages with 403 and the fix", async () => {
    const port = server.port;
    const origin = `http://127.0.0.1:${port}`;
    for (const host of ["evil.example", `evil.example:${port}`, `127.0.0.1.evil.example:${port}`, "127.0.0.1"]) {
      const health = await send(`${origin}/health`, { headers: { host } });
      expect(health.status, host).toBe(403);
      expect(JSON.parse(health.body), host).toEqual({
        error: { code: "E_FORBIDDEN", message: expect.stringContaining(`http://127.0.0.1:${port}`) },
      });
      expect((await startSession(origin, token, { host })).status, host).toBe(403);
      expect(await upgrade(`ws://127.0.0.1:${port}/api?token=${token}`, { host }), host).toBe(403);
    }
    for (const from of ["http://evil.example", `http://evil.example:${port}`, "null", `https://127.0.0.1:${port}`]) {
      const health = await send(`${origin}/health`, { headers: { origin: from } });
      expect(health.status, from).toBe(403);
      expect(JSON.parse(health.body).error.message, from).toMatch(/address `kiln serve` printed/);
      expect((await startSession(origin, token, { origin: from })).status, from).toBe(403);
      // Cross-site WebSocket hijacking: the browser would send the page's Origin with the upgrade.
      expect(await upgrade(`ws://127.0.0.1:${port}/api?token=${token}`, { origin: from }), from).toBe(403);
    }
    // This computer's own names for it, and pages it served itself, are answered.
    for (const name of ["127.0.0.1", "localhost", "LOCALHOST", "[::1]"]) {
      const own = { host: `${name}:${port}`, origin: `http://${name.toLowerCase()}:${port}` };
      expect((await send(`${origin}/health`, { headers: own })).status, name).toBe(200);
      expect((await startSession(origin, token, own)).status, name).toBe(204);
      expect(await upgrade(`ws://127.0.0.1:${port}/api?token=${token}`, own), name).toBe(101);
    }
  });
});

/** SHA-256 of the certificate a TLS server on 127.0.0.1 presents. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => {
      resolve(normalizeFingerprint(socket.getPeerCertificate().fingerprint256));
      socket.end();
    });
    socket.on("error", reject);
  });
}

describe("kiln serve --lan", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-serve-lan-"));
  const args = ["--lan", "--no-a1111", "--no-local", "--data-dir", dataDir, "--out", join(dataDir, "out")];
  let serve: Awaited<ReturnType<typeof startServe>>;

  beforeAll(async () => {
    serve = await startServe(args);
  }, 90_000);
  afterAll(async () => {
    await serve?.stop();
  });

  it("answers over TLS only, and prints the served certificate's fingerprint next to the address", async () => {
    const served = await servedFingerprint(serve.port);
    expect(serve.fingerprint).toBe(served);
    expect(serve.url).toMatch(new RegExp(`^https://[^/]+:${serve.port}/\\?token=`));
    const printed = serve.logs.join("\n");
    expect(printed).toContain(serve.url);
    expect(printed).toContain(formatFingerprint(served));
    // Nothing in cleartext: a plain HTTP request gets no answer.
    await expect(send(`http://127.0.0.1:${serve.port}/health`)).rejects.toThrow();
    expect((await send(`https://127.0.0.1:${serve.port}/health`)).status).toBe(200);
    const ui = await connectUi(serve.port, serve.token, "127.0.0.1", served);
    expect(await ui.call("queueState", {})).toEqual({ paused: false, reason: null });
    ui.close();
    expect(statSync(join(dataDir, UI_KEY_FILE)).mode & 0o777).toBe(0o600);
  });

  it("keeps its certificate across restarts, so the browser's exception and the compared fingerprint hold", async () => {
    const before = serve.fingerprint;
    await serve.stop();
    serve = await startServe(args);
    expect(serve.fingerprint).toBe(before);
    expect(await servedFingerprint(serve.port)).toBe(before);
  }, 90_000);

  it("gives a Secure image cookie and refuses a page whose Origin is not the address it called", async () => {
    const origin = `https://127.0.0.1:${serve.port}`;
    const session = await startSession(origin, serve.token);
    expect(session.status).toBe(204);
    expect(session.headers["set-cookie"]?.[0]).toMatch(/; Secure/i);
    // The LAN knows this computer by many names; a page may call only the one it came from.
    const named = { host: `studio-pc.local:${serve.port}`, origin: `https://studio-pc.local:${serve.port}` };
    expect((await send(`${origin}/health`, { headers: named })).status).toBe(200);
    expect((await send(`${origin}/health`, { headers: { origin } })).status).toBe(200);
    for (const from of ["https://evil.example", `http://127.0.0.1:${serve.port}`, "null"]) {
      const answer = await send(`${origin}/health`, { headers: { origin: from } });
      expect(answer.status, from).toBe(403);
      expect(JSON.parse(answer.body).error.code, from).toBe("E_FORBIDDEN");
      expect(await upgrade(`wss://127.0.0.1:${serve.port}/api?token=${serve.token}`, { origin: from }), from).toBe(403);
    }
  });
});
