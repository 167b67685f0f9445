import { describe, expect, it } from "vitest";
import { ApiGuard, hostOnly, parseApiAuth } from "../../../../coordinator/a1111/api-guard";

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

describe("the A1111 API's guard", () => {
  it("reads --api-auth as A1111 does, a password may hold colons, and names a malformed pair", () => {
    expect([...parseApiAuth("alice:one,bob:two:three")]).toEqual([
      ["alice", "one"],
      ["bob", "two:three"],
    ]);
    expect(() => parseApiAuth("alice")).toThrow(/"alice" is not user:password/);
    expect(() => parseApiAuth("alice:")).toThrow(/is not user:password/);
  });

  it("takes the name of a Host header without its port, and nothing that is not a host name", () => {
    expect(hostOnly("LocalHost:7870")).toBe("localhost");
    expect(hostOnly("[::1]:7870")).toBe("[::1]");
    expect(hostOnly("10.0.0.5")).toBe("10.0.0.5");
    expect(hostOnly("evil example")).toBeNull();
    expect(hostOnly(undefined)).toBeNull();
  });

  it("answers loopback names, IP addresses and configured names; other names are refused before any password", () => {
    const guard = new ApiGuard({ credentials: null, hostNames: ["render.studio.lan"], corsOrigins: [] });
    for (const host of ["127.0.0.1:1", "localhost", "[::1]:7870", "192.168.1.20:7870", "RENDER.studio.lan:7870"])
      expect(guard.check({ host, ip: "127.0.0.1" })).toEqual({ ok: true, user: null });
    for (const host of ["evil.example", "localhost.evil.example:7870", "render.studio.lan.evil.example"])
      expect(guard.check({ host, ip: "127.0.0.1" })).toMatchObject({ ok: false, status: 403 });
  });

  it("lets a page call only from an origin --cors-allow-origins lists, or the one it addressed", () => {
    const guard = new ApiGuard({ credentials: null, hostNames: [], corsOrigins: ["https://tools.example"] });
    const check = (origin: string) => guard.check({ host: "127.0.0.1:7870", origin, ip: "127.0.0.1" });
    expect(check("https://tools.example")).toMatchObject({ ok: true });
    expect(check("http://127.0.0.1:7870")).toMatchObject({ ok: true });
    expect(check("http://127.0.0.1:7871")).toMatchObject({ ok: false, status: 403 });
    expect(check("null")).toMatchObject({ ok: false, status: 403 });
    expect(guard.corsHeaders("https://tools.example")).toMatchObject({
      "access-control-allow-origin": "https://tools.example",
    });
    expect(guard.corsHeaders("http://127.0.0.1:7870")).toBeNull();
  });

  it("checks Basic credentials of every user, and stops an address after 10 wrong ones for a minute", () => {
    let now = 0;
    const guard = new ApiGuard(
      {
        credentials: new Map([
          ["alice", "a"],
          ["bob", "b"],
        ]),
        hostNames: [],
        corsOrigins: [],
      },
      () => now,
    );
    const check = (authorization?: string, ip = "10.0.0.1") => guard.check({ host: "127.0.0.1", authorization, ip });
    expect(check(basic("bob", "b"))).toEqual({ ok: true, user: "bob" });
    expect(check(basic("bob", "a"))).toMatchObject({
      ok: false,
      status: 401,
      headers: { "www-authenticate": "Basic" },
    });
    expect(check("Bearer x")).toMatchObject({ ok: false, status: 401 });
    expect(check(`Basic ${Buffer.from("alice").toString("base64")}`)).toMatchObject({ ok: false, status: 401 });
    for (let i = 0; i < 8; i++) check(basic("alice", `guess ${i}`));
    expect(check(basic("alice", "a"))).toMatchObject({ ok: false, status: 429 });
    // Another address is not held up by it; the minute passes.
    expect(check(basic("alice", "a"), "10.0.0.2")).toEqual({ ok: true, user: "alice" });
    now += 61_000;
    expect(check(basic("alice", "a"))).toEqual({ ok: true, user: "alice" });
  });
});
