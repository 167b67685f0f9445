import { spawnSync } from "node:child_process";
import { request as httpsRequest } from "node:https";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { startA1111Farm } from "../support/a1111-farm";
import { addNodeArgs, startNode } from "../support/kiln-node-process";
import { startServe } from "../support/kiln-serve-process";
import { tempDir } from "../support/temp-dir";
import { waitUntil } from "../support/wait-until";

const KILN = fileURLToPath(new URL("../../bin/kiln.js", import.meta.url));
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
  it("refuses to start on the LAN without --api-auth, naming both ways out, and starts with --no-a1111", async () => {
    const refused = spawnSync(
      process.execPath,
      [KILN, "serve", "--lan", "--no-local", "--no-discovery", "--port", "0", "--data-dir", tempDir("kiln-a1111-lan-")],
      { encoding: "utf8", timeout: 60_000 },
    );
    expect(refused.status).toBe(2);
    expect(refused.stderr).toMatch(/--api-auth user:password/);
    expect(refused.stderr).toMatch(/--no-a1111/);

    const serve = await startServe(["--lan", "--no-a1111", "--no-local", "--data-dir", tempDir("kiln-a1111-lan-")]);
    stops.push(() => serve.stop());
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

  it("answers a txt2img in flight when it stops, with the images finished so far, instead of waiting for the job", async () => {
    const node = await startNode(["--simulate", "1x24GB@2", "--name", "rack-stop"]);
    stops.push(() => node.stop());
    const serve = await startServe(["--no-local", "--data-dir", tempDir("kiln-a1111-stop-"), ...addNodeArgs([node])]);
    stops.push(() => serve.stop());
    const api = `http://127.0.0.1:${serve.port}/sdapi/v1`;
    await waitUntil(
      async () => ((await (await fetch(`${api}/sd-models`)).json()) as unknown[]).length > 0,
      30_000,
      "the node's models",
    );
    const answer = fetch(`${api}/txt2img`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "still rendering at the stop", batch_size: 200, steps: 4 }),
      // Read as it comes, as a client does (undici fails a body left unread when the server then closes).
    }).then((r) => r.json() as Promise<{ images: string[]; info: string }>);
    await waitUntil(
      async () => ((await (await fetch(`${api}/progress`)).json()) as { current_image: string | null }).current_image,
      30_000,
      "the first image finished",
    );
    const stopped = Date.now();
    expect(await serve.stop()).toBe(0);
    expect(Date.now() - stopped).toBeLessThan(10_000);
    const body = await answer;
    expect(body.images.length).toBeGreaterThan(0);
    expect(body.images.length).toBeLessThan(200);
    expect(JSON.parse(body.info).warnings.some((w: string) => w.startsWith("interrupted"))).toBe(true);
  });
});

describe("a request no device can render", () => {
  /** A txt2img of 64 slow images on one simulated GPU, answered once its job stalls (grace 1 s). */
  async function stallingRequest() {
    const farm = await startA1111Farm(["1x24GB@1"], { stallGraceMs: 1000 });
    stops.push(() => farm.stop());
    const answer = fetch(`${farm.base}/sdapi/v1/txt2img`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "nobody left to render it", batch_size: 64, steps: 30 }),
    });
    const job = () => farm.coordinator.listJobs().find((j) => j.source);
    await waitUntil(() => (job()?.counts.running ?? 0) > 0, 30_000, "the job running");
    return { farm, answer, job };
  }

  it("is answered 503 with the reason once the grace passes, its job cancelled, instead of hanging", async () => {
    const { farm, answer, job } = await stallingRequest();
    // The only node dies before any image is finished: lost after the lease, and no device has the model.
    expect(job()?.counts.done).toBe(0);
    farm.nodes[0]?.proc.kill("SIGKILL");
    const refused = await answer;
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { detail: string }).detail).toMatch(/no online node has model kiln-demo/);
    expect(job()?.state).toBe("cancelled");
  });

  it("is answered with the images finished before it stalled, and why the rest were not", async () => {
    const { farm, answer, job } = await stallingRequest();
    await waitUntil(() => (job()?.counts.done ?? 0) > 0, 60_000, "an image finished");
    await farm.nodes[0]?.stop();
    const res = await answer;
    expect(res.status).toBe(200);
    const body = (await res.json()) as { images: string[]; info: string };
    expect(job()?.state).toBe("cancelled");
    expect(body.images).toHaveLength(job()?.counts.done ?? -1);
    expect(body.images.length).toBeLessThan(64);
    expect(
      Buffer.from(body.images[0] as string, "base64")
        .subarray(1, 4)
        .toString(),
    ).toBe("PNG");
    expect(JSON.parse(body.info).warnings).toContainEqual(
      expect.stringMatching(
        /^no device of the farm can render the rest, .*no online node has model kiln-demo.*images were finished$/,
      ),
    );
  });
});
