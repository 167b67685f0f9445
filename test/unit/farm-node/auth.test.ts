import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FailureLimiter } from "../../../farm-node/auth/failure-limiter";
import { PairingWindow } from "../../../farm-node/auth/pairing-window";
import { TokenStore } from "../../../farm-node/auth/token-store";
import { StateDir } from "../../../farm-node/state-dir";

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
  it("matches with or without the dash while open, and rotates after use", () => {
    const window = new PairingWindow();
    window.open(60_000);
    const shown = window.display;
    expect(shown).toMatch(/^\d{3}-\d{3}$/);
    expect(window.matches(shown)).toBe(true);
    expect(window.matches(shown.replace("-", ""))).toBe(true);
    expect(window.matches(`${shown}0`)).toBe(false);
    expect(window.matches("")).toBe(false);
    window.rotate();
    // One in a million it draws the same code again; then the old one still matches.
    expect(window.matches(shown)).toBe(window.display === shown);
  });

  it("refuses even the right code before a person opens it and after it closes (injected clock)", () => {
    let now = 1_000;
    const window = new PairingWindow(() => now);
    expect(window.isOpen).toBe(false);
    expect(window.matches(window.display)).toBe(false);
    window.open(10 * 60_000);
    expect(window.closesAt).toBe(1_000 + 600_000);
    expect(window.matches(window.display)).toBe(true);
    now += 600_000;
    expect(window.isOpen).toBe(false);
    expect(window.matches(window.display)).toBe(false);
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
});
