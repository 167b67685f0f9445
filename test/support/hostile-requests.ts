import { SeededNoise } from "../../shared/seeded-noise";

/** One generated request: what a hostile or broken client might send. */
export interface HostileRequest {
  kind: string;
  method: "GET" | "POST" | "DELETE";
  path: string;
  body?: Buffer;
  contentType?: string;
}

/** A valid task body, mutated by the generator one field at a time. */
function validTask(rand: () => number): Record<string, unknown> {
  return {
    id: `fuzz-${Math.floor(rand() * 1e9)}`,
    model: "kiln-demo",
    width: 256,
    height: 256,
    steps: 2,
    images: [{ id: `img-${Math.floor(rand() * 1e9)}`, seed: 1, prompt: "x" }],
  };
}

const WRONG_VALUES: unknown[] = [
  null,
  true,
  "",
  "256",
  -1,
  0,
  1.5,
  1e308,
  -1e308,
  2 ** 64,
  Number.MAX_SAFE_INTEGER + 2,
  [],
  {},
  [1, 2, 3],
  { $gt: 0 },
  "x".repeat(100_000),
  "../../etc/passwd",
  "\u0000",
  "\ud800",
];

const FIELDS = ["id", "model", "width", "height", "steps", "guidance", "images", "device", "sampler"];
const IMAGE_FIELDS = ["id", "seed", "prompt", "negativePrompt"];

const PATH_TRICKS = [
  "/v1/images/..%2F..%2F..%2Fetc%2Fpasswd",
  "/v1/images/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
  "/v1/images/..%252F..%252Fetc%252Fpasswd",
  "/v1/images/%00",
  "/v1/images/a%00b",
  `/v1/images/${"a".repeat(5000)}`,
  "/v1/images/%",
  "/v1/images/%ZZ",
  "/v1/images/C:%5Cwindows%5Cwin.ini",
  "/v1/images/.hidden",
  "/v1/tasks/..%2F..%2Fnode",
  "/v1/../v1/node/../../etc/passwd",
  "/v1/images/\u00e9\u00e9",
  "/v1/nope",
];

/**
 * Malformed requests from a seeded generator (same seed, same requests):
 * wrong types and out-of-range numbers in every field, deep and huge JSON,
 * invalid UTF-8, truncated bodies, wrong content types and path tricks.
 */
export function hostileRequests(seed: number, count: number): HostileRequest[] {
  const noise = new SeededNoise(seed);
  const rand = () => noise.nextUniform();
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)] as T;
  const json = (value: unknown) => Buffer.from(JSON.stringify(value));
  const out: HostileRequest[] = [];
  for (let i = 0; i < count; i++) {
    const roll = Math.floor(rand() * 10);
    const task = validTask(rand);
    switch (roll) {
      case 0:
      case 1: {
        task[pick(FIELDS)] = pick(WRONG_VALUES);
        // Never valid: at least one field is wrong or the images are dropped.
        if (rand() < 0.5) delete task.images;
        out.push({ kind: "wrong field type", method: "POST", path: "/v1/tasks", body: json(task) });
        break;
      }
      case 2: {
        const image = (task.images as Record<string, unknown>[])[0] as Record<string, unknown>;
        image[pick(IMAGE_FIELDS)] = pick(WRONG_VALUES.filter((v) => typeof v !== "string" || v.length > 200));
        out.push({ kind: "wrong image field", method: "POST", path: "/v1/tasks", body: json(task) });
        break;
      }
      case 3: {
        const depth = 1000 + Math.floor(rand() * 100_000);
        out.push({
          kind: "deep JSON",
          method: "POST",
          path: "/v1/tasks",
          body: Buffer.from(`${"[".repeat(depth)}${"]".repeat(depth)}`),
        });
        break;
      }
      case 4: {
        const bytes = json(task);
        // Bytes that are not UTF-8 inside a string value.
        const at = bytes.indexOf(Buffer.from('"x"')) + 1;
        const broken = Buffer.concat([bytes.subarray(0, at), Buffer.from([0xff, 0xfe, 0xc3]), bytes.subarray(at + 1)]);
        out.push({ kind: "invalid UTF-8", method: "POST", path: "/v1/tasks", body: broken });
        break;
      }
      case 5: {
        const bytes = json(task);
        out.push({
          kind: "truncated body",
          method: "POST",
          path: "/v1/tasks",
          body: bytes.subarray(0, Math.floor(rand() * (bytes.length - 1))),
        });
        break;
      }
      case 6:
        out.push({ kind: "path trick", method: pick(["GET", "DELETE"] as const), path: pick(PATH_TRICKS) });
        break;
      case 7:
        out.push({
          kind: "wrong content type",
          method: "POST",
          path: "/v1/tasks",
          body: json(task),
          contentType: pick(["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]),
        });
        break;
      case 8: {
        const images = Array.from({ length: 65 + Math.floor(rand() * 500) }, (_, k) => ({
          id: `i${k}`,
          seed: k,
          prompt: "x",
        }));
        out.push({ kind: "too many images", method: "POST", path: "/v1/tasks", body: json({ ...task, images }) });
        break;
      }
      default:
        out.push({
          kind: "oversized body",
          method: "POST",
          path: "/v1/tasks",
          body: Buffer.alloc(300 * 1024 + Math.floor(rand() * 100_000), 0x20),
        });
    }
  }
  return out;
}

/** One way of writing a route's path that a lenient router might still match. */
export interface PathSpelling {
  kind: string;
  path: string;
}

const hex = (c: string) =>
  [...Buffer.from(c, "utf8")].map((b) => `%${b.toString(16).toUpperCase().padStart(2, "0")}`).join("");

/** Overlong UTF-8 (invalid: the shortest form is the only valid one) of an ASCII character, in 2 and 3 bytes. */
function overlong(c: string): string[] {
  const code = c.charCodeAt(0);
  const two = [0xc0 | (code >> 6), 0x80 | (code & 0x3f)];
  const three = [0xe0, 0x80 | (code >> 6), 0x80 | (code & 0x3f)];
  return [two, three].map((bytes) => bytes.map((b) => `%${b.toString(16).toUpperCase()}`).join(""));
}

/**
 * Every spelling of `path` the path-encoding family tries: each character
 * percent-escaped (upper- and lower-case hex), doubly escaped and in overlong
 * UTF-8; the whole path escaped; case changes; doubled and escaped slashes;
 * dot segments, plain and escaped; `;` parameters; invalid UTF-8 and stray
 * escapes; trailing slashes, backslashes and fullwidth look-alikes.
 */
export function pathSpellings(path: string): PathSpelling[] {
  const out: PathSpelling[] = [{ kind: "as is", path }];
  const chars = [...path];
  chars.forEach((c, i) => {
    if (c === "/") return;
    const at = (replacement: string) => [...chars.slice(0, i), replacement, ...chars.slice(i + 1)].join("");
    out.push({ kind: "one character escaped", path: at(hex(c)) });
    out.push({ kind: "one character escaped, lower-case hex", path: at(hex(c).toLowerCase()) });
    out.push({ kind: "one character escaped twice", path: at(hex(c).replace("%", "%25")) });
    for (const bytes of overlong(c)) out.push({ kind: "overlong UTF-8", path: at(bytes) });
  });
  out.push({ kind: "every character escaped", path: chars.map((c) => (c === "/" ? c : hex(c))).join("") });
  out.push({ kind: "upper case", path: path.toUpperCase() });
  out.push({
    kind: "first segment upper case",
    path: path.replace(/^\/([^/]+)/, (_m, s: string) => `/${s.toUpperCase()}`),
  });
  chars.forEach((c, i) => {
    if (c !== "/") return;
    const at = (replacement: string) => [...chars.slice(0, i), replacement, ...chars.slice(i + 1)].join("");
    out.push({ kind: "doubled slash", path: at("//") });
    out.push({ kind: "escaped slash", path: at("%2F") });
    out.push({ kind: "escaped backslash", path: at("%5C") });
    out.push({ kind: "overlong slash", path: at("%C0%AF") });
    out.push({ kind: "dot segment", path: at("/./") });
    out.push({ kind: "escaped dot segment", path: at("/%2e/") });
    out.push({ kind: "parent segment", path: at("/x/../") });
    out.push({ kind: "escaped parent segment", path: at("/x/%2E%2E/") });
    out.push({ kind: "parameter", path: at(";x=1/") });
    out.push({ kind: "empty parameter", path: at(";/") });
    out.push({ kind: "invalid UTF-8", path: at("/%FF/") });
    out.push({ kind: "lone continuation byte", path: at("%80/") });
    out.push({ kind: "surrogate in UTF-8", path: at("/%ED%A0%80/") });
    out.push({ kind: "fullwidth slash", path: at("%EF%BC%8F") });
  });
  out.push({ kind: "trailing slash", path: `${path}/` });
  out.push({ kind: "trailing parameter", path: `${path};x` });
  out.push({ kind: "trailing dot segment", path: `${path}/.` });
  out.push({ kind: "trailing stray escape", path: `${path}%` });
  out.push({ kind: "trailing NUL", path: `${path}%00` });
  out.push({ kind: "leading dot segment", path: `/.${path}` });
  out.push({ kind: "leading parent segment", path: `/..${path}` });
  return out;
}
