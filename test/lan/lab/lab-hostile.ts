import { createHash, randomBytes } from "node:crypto";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { connect } from "node:tls";
import { fingerprintCheck, type NodePin } from "../../../coordinator/nodes/node-client";
import { MAX_PUSH_CHUNK_BYTES, type PackOffer } from "../../../shared/model-push";
import { packHashInput } from "../../../shared/pack-files";
import { waitUntil } from "../../support/wait-until";

/** Where a hostile client reaches the node: its address on the lab LAN and its pinned certificate. */
export interface Target {
  host: string;
  port: number;
  pin: NodePin;
  token: string;
  /** The node's models folder, read by the test to see what was written. */
  modelsDir: string;
}

interface Answer {
  status: number;
  body: string;
  json: { error?: { code?: string; message?: string; details?: Record<string, unknown> } } | null;
}

/**
 * One request written byte for byte over its own TLS connection (the node's
 * certificate pinned, as a paired app has it), with `Connection: close`; the
 * answer's status and body. The body parts are written one after another; a
 * function among them is waited for before the parts after it are written.
 */
export function rawRequest(
  target: Target,
  head: { method: string; path: string; headers: Record<string, string> },
  parts: Array<Buffer | (() => Promise<unknown>)> = [],
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: target.host,
      port: target.port,
      ca: target.pin.certPem,
      checkServerIdentity: fingerprintCheck(target.pin),
    });
    const received: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => received.push(chunk));
    // A write cut by the node's early answer and close is part of the attack, not a failure of it.
    socket.on("error", () => socket.destroy());
    const timer = setTimeout(() => socket.destroy(), 20_000);
    socket.on("close", () => {
      clearTimeout(timer);
      const text = Buffer.concat(received).toString("latin1");
      const status = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (!status) {
        reject(new Error(`no HTTP answer to ${head.method} ${head.path}: ${JSON.stringify(text.slice(0, 200))}`));
        return;
      }
      const body = text.slice(text.indexOf("\r\n\r\n") + 4);
      let json: Answer["json"] = null;
      try {
        json = JSON.parse(body) as Answer["json"];
      } catch {
        // Not JSON: the status says enough.
      }
      resolve({ status: Number(status[1]), body, json });
    });
    socket.once("secureConnect", async () => {
      const lines = [
        `${head.method} ${head.path} HTTP/1.1`,
        `Host: ${target.host}:${target.port}`,
        "Connection: close",
      ];
      for (const [name, value] of Object.entries(head.headers)) lines.push(`${name}: ${value}`);
      socket.write(`${lines.join("\r\n")}\r\n\r\n`);
      for (const part of parts) {
        if (socket.destroyed) break;
        if (typeof part === "function") await part();
        else socket.write(part);
      }
    });
  });
}

/** Bytes in `Transfer-Encoding: chunked` framing, which declares no length at all; `end` adds the last chunk. */
function chunked(bytes: Buffer, end = true): Buffer[] {
  const parts: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += 1 << 20) {
    const piece = bytes.subarray(at, at + (1 << 20));
    parts.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from("\r\n"));
  }
  if (end) parts.push(Buffer.from("0\r\n\r\n"));
  return parts;
}

const sha = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");

function offerOf(name: string, files: PackOffer["files"]): PackOffer {
  return { name, hash: sha(packHashInput(files)), files };
}

/** Every file under `dir` with its size, `.incoming` left out: what the node lists or an owner would see. */
function filesOutsideStaging(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[])
    .filter((f) => !f.startsWith(".incoming"))
    .map((f) => `${f}:${statSync(join(dir, f)).size}`)
    .sort();
}

/** One attempt and what the node should have answered. */
interface Trial {
  what: string;
  expected: number;
  got: number;
  /** The node's words, for the report. */
  said: string;
  /** A further promise broken (bytes written where they should not be), or null. */
  broke: string | null;
}

/**
 * A paired app turned hostile, speaking raw HTTPS to a node's push API: path
 * tricks, links planted in its staging, oversize claims, uploads longer than
 * declared or past a file's end, offsets past the end, indices out of range,
 * and callers without a valid token. Returns each trial with the node's
 * answer, for the caller to judge; leaves no staging behind.
 */
export async function attackPushApi(
  target: Target,
): Promise<{ trials: Trial[]; outsideTouched: string[]; keptOfUndeclared: number }> {
  const trials: Trial[] = [];
  const auth = { authorization: `Bearer ${target.token}` };
  const json = (body: unknown) => {
    const bytes = Buffer.from(JSON.stringify(body));
    return { headers: { ...auth, "content-type": "application/json", "content-length": String(bytes.length) }, bytes };
  };
  const record = (what: string, expected: number, answer: Answer, broke: string | null = null) =>
    trials.push({
      what,
      expected,
      got: answer.status,
      said: answer.json?.error?.message ?? answer.body.slice(0, 120),
      broke,
    });
  const offer = async (what: string, body: unknown, expected: number) => {
    const { headers, bytes } = json(body);
    const answer = await rawRequest(target, { method: "POST", path: "/v1/model-pushes", headers }, [bytes]);
    record(what, expected, answer);
    return answer;
  };
  const put = (
    hash: string,
    index: string,
    offset: string,
    headers: Record<string, string>,
    parts: Parameters<typeof rawRequest>[2],
  ) =>
    rawRequest(
      target,
      {
        method: "PUT",
        path: `/v1/model-pushes/${hash}/files/${index}?offset=${offset}`,
        headers: { ...auth, "content-type": "application/octet-stream", ...headers },
      },
      parts,
    );

  const before = filesOutsideStaging(target.modelsDir);
  const outside = mkdtempSync(join(tmpdir(), "kiln-lab-outside-"));
  const victim = join(outside, "precious.onnx");
  writeFileSync(victim, "the owner's bytes");
  const escapeTo = join(dirname(target.modelsDir), "escaped.onnx");

  // Path tricks in the offer: each refused with 400 before anything is staged.
  for (const path of [
    "../escaped.onnx",
    "/etc/passwd",
    "unet/../../escaped.onnx",
    "unet\\..\\..\\escaped.onnx",
    "./model.onnx",
    ".incoming/model.onnx",
    "README.md",
    "unet/weights.safetensors",
  ]) {
    const files = [{ path, size: 4, sha256: sha("evil") }];
    await offer(`offer a file at '${path}'`, offerOf("tricks", files), 400);
  }
  for (const name of ["../escaped", ".incoming", "a/b"]) {
    const files = [{ path: "model.onnx", size: 4, sha256: sha("evil") }];
    await offer(`offer a pack named '${name}'`, offerOf(name, files), 400);
  }
  const clash = [
    { path: "unet", size: 4, sha256: sha("evil") },
    { path: "unet/model.onnx", size: 4, sha256: sha("evil") },
  ];
  await offer("offer 'unet' as a file and as a folder", offerOf("clash", clash), 400);
  await offer(
    "offer files whose hash is not the pack's",
    { name: "liar", hash: sha("not it"), files: [{ path: "model.onnx", size: 4, sha256: sha("evil") }] },
    400,
  );

  // Oversize: far more than the disk has, refused before a byte is sent, both sizes named.
  const huge = Array.from({ length: 16 }, (_, i) => ({
    path: `unet/part-${i}.onnx_data`,
    size: 2 ** 40,
    sha256: sha(String(i)),
  }));
  const hugeOffer = offerOf("enormous", huge);
  const refusedHuge = await offer("offer a 16 TiB pack", hugeOffer, 507);
  const message = refusedHuge.json?.error?.message ?? "";
  const bothSizes = /needs [\d.]+ TiB \(\d+ bytes\) more on this node but only [\d.]+ [KMGT]?i?B \(\d+ bytes\)/.test(
    message,
  );
  const last = trials.at(-1) as Trial;
  if (!bothSizes) last.broke = "the refusal does not name both sizes";
  if (existsSync(join(target.modelsDir, ".incoming", hugeOffer.hash))) last.broke = "the refused pack left a staging";

  // A push the hostile app may make (it is paired); every upload trick is tried against it.
  const big = 16 * 1024 * 1024;
  const files = [
    { path: "model_index.json", size: 2, sha256: sha("{}") },
    { path: "unet/model.onnx", size: big, sha256: sha("never sent whole") },
    { path: "empty.onnx_data", size: 0, sha256: sha("") },
  ];
  const hostile = offerOf("hostile", files);
  await offer("offer a pack (the hostile app is paired)", hostile, 201);
  const staged = (index: number) => {
    const path = join(target.modelsDir, ".incoming", hostile.hash, "pack", files[index]?.path as string);
    return existsSync(path) ? statSync(path).size : 0;
  };
  const bytes = (n: number) => randomBytes(n);
  const length = (n: number) => ({ "content-length": String(n) });

  for (const [index, expected] of [
    ["3", 404],
    ["4096", 404],
    ["-1", 400],
    ["1e3", 400],
    ["..%2F..%2Fescaped.onnx", 400],
  ] as const)
    record(`upload to file index '${index}'`, expected, await put(hostile.hash, index, "0", length(4), [bytes(4)]));
  record(
    "upload to a pack hash '..%2F..'",
    400,
    await rawRequest(
      target,
      {
        method: "PUT",
        path: "/v1/model-pushes/..%2F..%2Fescaped/files/0?offset=0",
        headers: { ...auth, "content-type": "application/octet-stream", ...length(4) },
      },
      [bytes(4)],
    ),
  );
  for (const [offset, expected] of [
    [String(big + 1), 409],
    [String(2 ** 53 + 2), 409],
    ["-1", 400],
    ["", 400],
  ] as const) {
    const answer = await put(hostile.hash, "1", offset, length(4), [bytes(4)]);
    record(
      `upload from offset '${offset}' of a ${big}-byte file`,
      expected,
      answer,
      staged(1) === 0 ? null : "bytes written",
    );
  }
  // A node that answers before reading a whole body closes on bytes it has not read, and TCP resets
  // the connection, which may drop the answer on its way: no body goes after what the node must refuse.
  const tooLong = MAX_PUSH_CHUNK_BYTES + 1;
  record(
    `upload declaring ${tooLong} bytes (more than any upload may carry)`,
    413,
    // Refused on the declaration alone.
    await put(hostile.hash, "1", "0", length(tooLong), []),
    staged(1) === 0 ? null : `${staged(1)} bytes written`,
  );
  // As many bytes as an upload may carry; once the node has written them, 64 KiB more and the end.
  const undeclared = MAX_PUSH_CHUNK_BYTES + 65_536;
  const longAnswer = await put(hostile.hash, "1", "0", { "transfer-encoding": "chunked" }, [
    ...chunked(bytes(MAX_PUSH_CHUNK_BYTES), false),
    () => waitUntil(() => staged(1) === MAX_PUSH_CHUNK_BYTES, 30_000, "the node to write 8 MiB"),
    ...chunked(bytes(undeclared - MAX_PUSH_CHUNK_BYTES)),
  ]);
  record(
    `upload of ${undeclared} bytes declaring no length (chunked)`,
    413,
    longAnswer,
    staged(1) <= MAX_PUSH_CHUNK_BYTES ? null : `${staged(1)} bytes written`,
  );
  const have = staged(1);
  record(
    `upload past the end of a 2-byte file (3 bytes declared)`,
    413,
    await put(hostile.hash, "0", "0", length(3), [Buffer.from("{}x")]),
    staged(0) === 0 ? null : `${staged(0)} bytes written`,
  );
  record(
    `upload past the end of a 2-byte file (3 bytes, chunked)`,
    413,
    await put(hostile.hash, "0", "0", { "transfer-encoding": "chunked" }, chunked(Buffer.from("{}x"))),
    staged(0) <= 2 ? null : `${staged(0)} bytes written`,
  );

  // Links planted in the staging (by anything else that can write to the models folder): never followed.
  const packDir = join(target.modelsDir, ".incoming", hostile.hash, "pack");
  rmSync(join(packDir, "unet"), { recursive: true, force: true });
  symlinkSync(outside, join(packDir, "unet"));
  record(
    "upload through a folder linked out of the staging, at the offset the node has",
    400,
    await put(hostile.hash, "1", String(have), length(4), [bytes(4)]),
  );
  rmSync(join(packDir, "model_index.json"), { force: true });
  symlinkSync(victim, join(packDir, "model_index.json"));
  record(
    "upload to a file linked out of the staging",
    400,
    await put(hostile.hash, "0", "0", length(2), [Buffer.from("{}")]),
  );
  rmSync(join(packDir, "empty.onnx_data"), { force: true });
  symlinkSync(victim, join(packDir, "empty.onnx_data"));
  await offer("offer again over the planted links (one where an empty file goes)", hostile, 400);
  rmSync(join(packDir, "unet"));

  // Callers without a valid token, on every push route, with bytes where a route takes them.
  const routes: Array<[string, string, Buffer[]]> = [
    ["POST", "/v1/model-pushes", [Buffer.from(JSON.stringify(hostile))]],
    ["GET", `/v1/model-pushes/${hostile.hash}`, []],
    ["PUT", `/v1/model-pushes/${hostile.hash}/files/1?offset=${have}`, [bytes(4)]],
    ["POST", `/v1/model-pushes/${hostile.hash}/commit`, [Buffer.from("{}")]],
    ["DELETE", `/v1/model-pushes/${hostile.hash}`, []],
  ];
  for (const token of [null, randomBytes(24).toString("hex")]) {
    for (const [method, path, parts] of routes) {
      const size = parts.reduce((n, p) => n + p.length, 0);
      const headers: Record<string, string> = {
        "content-type": method === "PUT" ? "application/octet-stream" : "application/json",
        ...(size > 0 ? length(size) : {}),
        ...(token === null ? {} : { authorization: `Bearer ${token}` }),
      };
      const was = staged(1);
      const answer = await rawRequest(target, { method, path, headers }, parts);
      const route = `${method} ${path.split("?")[0]?.replace(hostile.hash, "<hash>")}`;
      record(
        `${route} ${token === null ? "without a token" : "with a wrong token"}`,
        401,
        answer,
        staged(1) === was ? null : "bytes written",
      );
    }
  }
  const stillThere = existsSync(join(target.modelsDir, ".incoming", hostile.hash));
  record(
    "the paired app cancels its push",
    200,
    await rawRequest(target, { method: "DELETE", path: `/v1/model-pushes/${hostile.hash}`, headers: auth }),
    stillThere ? null : "an unpaired DELETE removed the push",
  );

  const outsideTouched: string[] = [];
  if (readFileSync(victim, "utf8") !== "the owner's bytes") outsideTouched.push(victim);
  if (readdirSync(outside).length !== 1) outsideTouched.push(`${outside}: ${readdirSync(outside).join(", ")}`);
  if (existsSync(escapeTo)) outsideTouched.push(escapeTo);
  const after = filesOutsideStaging(target.modelsDir);
  if (after.join("\n") !== before.join("\n")) outsideTouched.push(`models folder: ${after.join(", ")}`);
  rmSync(outside, { recursive: true, force: true });
  return { trials, outsideTouched, keptOfUndeclared: have };
}
