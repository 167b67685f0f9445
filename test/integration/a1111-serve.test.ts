import { request as httpsRequest } from "node:https";
import { afterEach, describe, expect, it } from "vitest";
import { startServe } from "../support/kiln-serve-process";
import { tempDir } from "../support/temp-dir";
import { waitUntil } from "../support/wait-until";

const stops: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    // The self-signed certificate `kiln serve --lan` printed; this test trusts it as a person would after comparing.
    const req = httpsRequest(url, { headers, rejectUnauthorized: false }, (res) => {
      let body = "";
      res.on("data", (c) => {
        body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("kiln serve --lan and the A1111 API", () => {
  it("does not serve the API to the network without --api-auth, and says so", async () => {
    const serve = await startServe(["--lan", "--no-local", "--data-dir", tempDir("kiln-a1111-lan-")]);
    stops.push(() => serve.stop());
    await waitUntil(
      () => serve.logs.some((l) => l.includes("A1111 API off")),
      10_000,
      "kiln serve saying the API is off",
    );
    expect((await get(`https://127.0.0.1:${serve.port}/sdapi/v1/sd-models`)).status).toBe(404);
  });

  it("serves it behind HTTP Basic with --api-auth", async () => {
    const serve = await startServe([
      "--lan",
      "--no-local",
      "--data-dir",
      tempDir("kiln-a1111-lan-"),
      "--api-auth",
      "studio:hunter22",
    ]);
    stops.push(() => serve.stop());
    const url = `https://127.0.0.1:${serve.port}/sdapi/v1/sd-models`;
    expect((await get(url)).status).toBe(401);
    const ok = await get(url, { authorization: `Basic ${Buffer.from("studio:hunter22").toString("base64")}` });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toEqual([]);
  });
});
