import { chmodSync, chownSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as opaque from "@serenity-kit/opaque";
import { describe, expect, it } from "vitest";
import { FailureLimiter } from "../../../farm-node/auth/failure-limiter";
import { PairingExchange } from "../../../farm-node/auth/pairing-exchange";
import { PairingWindow } from "../../../farm-node/auth/pairing-window";
import { readTokenFile } from "../../../farm-node/auth/token-file";
import { TokenStore } from "../../../farm-node/auth/token-store";
import { StateDir } from "../../../farm-node/state-dir";
import { PAIRING_KEY_STRETCHING, pairingIdentifiers } from "../../../shared/pairing";

describe("token store", () => {
  it("verifies issued tokens across restarts and stores only their hashes, owner-readable", () => {
    const dir = mkdtempSync(join(tmpdir(), "kiln-tokens-"));
    const { token, client } = new TokenStore(new StateDir(dir), null).issue("studio-a");
    const reopened = new TokenStore(new StateDir(dir), null);
    expect(reopened.verify(token)).toEqual({ ...client, name: "studio-a", weight: 1 });
    expect(reopened.verify(`${token}x`)).toBeNull();
    const file = readFileSync(join(dir, "tokens.json"), "utf8");
    expect(file).not.toContain(token);
    expect(statSync(join(dir, "tokens.json")).mode & 0o777).toBe(0o600);
  });

  it("accepts the --token secret alongside paired tokens", () => {
    const store = new TokenStore(new StateDir(mkdtempSync(join(tmpdir(), "kiln-tokens-"))), "deploy-secret");
    expect(store.verify("deploy-secret")?.id).toBe("token");
    expect(store.verify("deploy-secreT")).toBeNull();
  });
});

describe("paired apps", () => {
  it("gives two apps of the same name their own ids, and weights set by id or name survive a reopen", () => {
    const dir = mkdtempSync(join(tmpdir(), "kiln-tokens-"));
    const store = new TokenStore(new StateDir(dir), null);
    const a = store.issue("kiln on ws-1").client;
    const b = store.issue("kiln on ws-1").client;
    const c = store.issue("kiln on ws-2").client;
    expect(new Set([a.id, b.id, c.id]).size).toBe(3);
    expect(() => store.setWeight("kiln on ws-1", 2)).toThrow(/matches 2 paired apps; use the id/);
    expect(() => store.setWeight("nobody", 2)).toThrow(/no paired app "nobody"; paired apps: /);
    expect(() => store.setWeight(c.id, 0)).toThrow(/weight must be a number above 0/);
    store.setWeight("kiln on ws-2", 3);
    store.setWeight(b.id.slice(0, 8), 0.5);
    const reopened = new TokenStore(new StateDir(dir), null);
    expect(reopened.clients().map((x) => [x.id, x.weight])).toEqual([
      [a.id, 1],
      [b.id, 0.5],
      [c.id, 3],
    ]);
  });

  it("gives tokens stored before apps had ids an id once, kept from then on", () => {
    const dir = mkdtempSync(join(tmpdir(), "kiln-tokens-"));
    const sha = "a".repeat(64);
    new StateDir(dir).writeJson("tokens.json", {
      tokens: [{ sha256: sha, client: "old app", pairedAt: "2026-01-01" }],
    });
    const first = new TokenStore(new StateDir(dir), null).clients()[0]?.id;
    expect(first).toMatch(/^[0-9a-f-]{36}$/);
    expect(new TokenStore(new StateDir(dir), null).clients()[0]?.id).toBe(first);
  });
});

describe("state dir", () => {
  it("keeps the node id stable across restarts", () => {
    const dir = mkdtempSync(join(tmpdir(), "kiln-state-"));
    const id = new StateDir(dir).nodeId();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(new StateDir(dir).nodeId()).toBe(id);
  });
});

describe("pairing window", () => {
  it("shows six digits as 123-456 and draws a new code after a pairing", () => {
    const window = new PairingWindow();
    window.open(60_000);
    const shown = window.display;
    expect(shown).toMatch(/^\d{3}-\d{3}$/);
    expect(window.code).toBe(shown.replace("-", ""));
    window.recordPaired();
    // One in a million it draws the same code again.
    if (window.display === shown) window.recordPaired();
    expect(window.display).not.toBe(shown);
  });

  it("is closed before a person opens it and after its time (injected clock)", () => {
    let now = 1_000;
    const window = new PairingWindow(() => now);
    expect(window.isOpen).toBe(false);
    window.open(10 * 60_000);
    expect(window.closesAt).toBe(1_000 + 600_000);
    expect(window.isOpen).toBe(true);
    now += 600_000;
    expect(window.isOpen).toBe(false);
    expect(window.closesAt).toBe(0);
  });

  it("keeps one budget for every address: the code changes every 20 tries that did not pair, the window closes at 50", () => {
    const window = new PairingWindow(() => 0);
    window.open(60_000);
    const codes = new Set([window.code]);
    const outcomes: string[] = [];
    for (let i = 0; i < 50; i++) {
      outcomes.push(window.recordAttempt(`10.0.${i % 25}.1`));
      codes.add(window.code);
    }
    expect(outcomes.filter((o) => o === "rotated")).toHaveLength(2);
    expect(outcomes.indexOf("rotated")).toBe(19);
    expect(outcomes.at(-1)).toBe("closed");
    expect(window.isOpen).toBe(false);
    expect(window.attempts).toEqual({ unpaired: 50, addresses: 25 });
    expect(codes.size).toBeGreaterThanOrEqual(3);
    // A person opens it again: a new code and a full budget.
    window.open(60_000);
    expect(window.attempts).toEqual({ unpaired: 0, addresses: 0 });
    expect(window.recordAttempt("10.0.0.1")).toBe("counted");
  });

  it("does not count an exchange that paired against the budget", () => {
    const window = new PairingWindow(() => 0, { rotateAfter: 3, closeAfter: 4 });
    window.open(60_000);
    for (let i = 0; i < 10; i++) {
      window.recordAttempt("10.0.0.9");
      window.recordPaired();
    }
    expect(window.isOpen).toBe(true);
    expect(window.attempts.unpaired).toBe(0);
  });
});

describe("pairing key exchange (OPAQUE, real library, no network)", () => {
  const nodeFingerprint = "a".repeat(64);

  /** The app's side, as pairing-client.ts runs it, against the node's exchange directly. */
  async function appPairs(exchange: PairingExchange, typed: string, seen: string): Promise<string | null | "refused"> {
    await opaque.ready;
    const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password: typed });
    const { session, response } = exchange.start(window.code, startLoginRequest, "studio");
    const finished = opaque.client.finishLogin({
      clientLoginState,
      loginResponse: response,
      password: typed,
      identifiers: pairingIdentifiers(seen),
      keyStretching: PAIRING_KEY_STRETCHING,
    });
    if (!finished) return "refused";
    return exchange.finish(session, finished.finishLoginRequest, window.code);
  }

  /** The server's static public key the app learns from a completed exchange under `code`. */
  async function serverKeyUnder(exchange: PairingExchange, code: string): Promise<string> {
    await opaque.ready;
    const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password: code });
    const { response } = exchange.start(code, startLoginRequest, "studio");
    const finished = opaque.client.finishLogin({
      clientLoginState,
      loginResponse: response,
      password: code,
      identifiers: pairingIdentifiers(nodeFingerprint),
      keyStretching: PAIRING_KEY_STRETCHING,
    });
    return finished?.serverStaticPublicKey as string;
  }
  const window = new PairingWindow(() => 0);
  window.open(60_000);

  it("completes with the node's code and certificate, and names the app for its token", async () => {
    const exchange = await PairingExchange.create(nodeFingerprint);
    expect(await appPairs(exchange, window.code, nodeFingerprint)).toBe("studio");
  });

  it("stops on the app's side with a wrong code, or when the app sees another certificate (a relay)", async () => {
    const exchange = await PairingExchange.create(nodeFingerprint);
    const wrong = window.code === "000000" ? "000001" : "000000";
    expect(await appPairs(exchange, wrong, nodeFingerprint)).toBe("refused");
    expect(await appPairs(exchange, window.code, "b".repeat(64))).toBe("refused");
  });

  it("gives every code its own server (OPRF key and key pair), so what one code's exchanges reveal tests no other", async () => {
    const exchange = await PairingExchange.create(nodeFingerprint);
    const first = await serverKeyUnder(exchange, "111111");
    expect(await serverKeyUnder(exchange, "111111")).toBe(first);
    expect(await serverKeyUnder(exchange, "222222")).not.toBe(first);
  });

  it("does not finish an exchange started under a code that has changed since (spent, rotated, a new window)", async () => {
    const exchange = await PairingExchange.create(nodeFingerprint);
    await opaque.ready;
    const code = "424242";
    const login = opaque.client.startLogin({ password: code });
    const { session, response } = exchange.start(code, login.startLoginRequest, "late app");
    const finished = opaque.client.finishLogin({
      clientLoginState: login.clientLoginState,
      loginResponse: response,
      password: code,
      identifiers: pairingIdentifiers(nodeFingerprint),
      keyStretching: PAIRING_KEY_STRETCHING,
    });
    expect(finished).toBeDefined();
    expect(exchange.finish(session, finished?.finishLoginRequest as string, "777777")).toBeNull();
  });

  it("refuses a forged second message and a session used twice", async () => {
    const exchange = await PairingExchange.create(nodeFingerprint);
    await opaque.ready;
    const { startLoginRequest } = opaque.client.startLogin({ password: window.code });
    const { session } = exchange.start(window.code, startLoginRequest, "prober");
    // A prober that guessed nothing sends a message of the right shape: no pairing.
    const forged = Buffer.alloc(64, 7).toString("base64url");
    expect(exchange.finish(session, forged, window.code)).toBeNull();
    expect(() => exchange.finish(session, forged, window.code)).toThrow(/no pairing exchange with this session/);
  });

  it("refuses garbage as a first message with a field error, and holds at most 16 exchanges, each for a minute", async () => {
    let now = 0;
    const exchange = await PairingExchange.create(nodeFingerprint, () => now);
    expect(() => exchange.start(window.code, "AAAA".repeat(8), "x")).toThrow(
      expect.objectContaining({ code: "E_BAD_REQUEST" }),
    );
    await opaque.ready;
    const login = () => opaque.client.startLogin({ password: window.code });
    const finishOf = (l: ReturnType<typeof login>, response: string) =>
      opaque.client.finishLogin({
        clientLoginState: l.clientLoginState,
        loginResponse: response,
        password: window.code,
        identifiers: pairingIdentifiers(nodeFingerprint),
        keyStretching: PAIRING_KEY_STRETCHING,
      })?.finishLoginRequest as string;
    const oldest = login();
    const first = exchange.start(window.code, oldest.startLoginRequest, "first");
    for (let i = 0; i < 16; i++) exchange.start(window.code, login().startLoginRequest, "flood");
    // Sixteen newer starts pushed the oldest out.
    expect(() => exchange.finish(first.session, finishOf(oldest, first.response), window.code)).toThrow(
      /no pairing exchange/,
    );
    const late = login();
    const started = exchange.start(window.code, late.startLoginRequest, "late");
    now += 60_000;
    expect(() => exchange.finish(started.session, finishOf(late, started.response), window.code)).toThrow(
      /no pairing exchange/,
    );
  });
});

describe("failure limiter", () => {
  it("blocks an address after the limit within the window and frees it after", () => {
    let now = 0;
    const limiter = new FailureLimiter(3, 60_000, () => now);
    for (let i = 0; i < 3; i++) limiter.recordFailure("10.0.0.1");
    expect(limiter.blockedFor("10.0.0.1")).toBe(60_000);
    expect(limiter.blockedFor("10.0.0.2")).toBe(0);
    now = 30_000;
    expect(limiter.blockedFor("10.0.0.1")).toBe(30_000);
    now = 60_001;
    expect(limiter.blockedFor("10.0.0.1")).toBe(0);
  });

  it("forgets addresses whose failures left the window, however many sent one", () => {
    let now = 0;
    const limiter = new FailureLimiter(3, 60_000, () => now);
    for (let i = 0; i < 5000; i++) {
      now = i * 100;
      limiter.recordFailure(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    }
    // 600 addresses failed within the last minute; the map never held many more than twice that.
    expect(limiter.tracked).toBeLessThanOrEqual(2 * 600 + 1);
  });
});

describe("--token-file", () => {
  const file = (mode: number) => {
    const path = join(mkdtempSync(join(tmpdir(), "kiln-token-file-")), "token");
    writeFileSync(path, "a-deployment-secret-of-some-length\n", { mode });
    chmodSync(path, mode);
    return path;
  };

  it("reads a private file of this user", () => {
    expect(readTokenFile(file(0o600))).toBe("a-deployment-secret-of-some-length");
  });

  it("refuses a file others can read, a symbolic link, and (as root) another user's file", () => {
    const open = file(0o644);
    expect(() => readTokenFile(open)).toThrow(`chmod 600 ${open}`);
    const link = `${file(0o600)}.link`;
    symlinkSync(file(0o600), link);
    expect(() => readTokenFile(link)).toThrow(/symbolic link/);
    if (process.geteuid?.() === 0) {
      const theirs = file(0o600);
      chownSync(theirs, 65534, 65534);
      expect(() => readTokenFile(theirs)).toThrow(/belongs to another user/);
    } else {
      console.warn("SKIPPED the other-user check of --token-file: needs root to give a file away");
    }
  });
});
