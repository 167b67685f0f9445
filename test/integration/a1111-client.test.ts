import { readdirSync } from "node:fs";
import { join } from "node:path";
import { StableDiffusionApi } from "a1111-webui-api";
import { SqliteError } from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { API_SPOOL_DIR } from "../../coordinator/coordinator";
import { type A1111Farm, startA1111Farm } from "../support/a1111-farm";
import { waitUntil } from "../support/wait-until";

/**
 * Kiln's A1111 API driven by a third-party A1111 client from npm, used as it is
 * (a1111-webui-api, TypeScript, axios): the calls a studio's tools make, against
 * a real coordinator and two real kiln-node processes with simulated GPUs and
 * the built-in kiln-demo model.
 */
let farm: A1111Farm;
let api: StableDiffusionApi;

beforeAll(async () => {
  // Two nodes of one simulated GPU each; short tasks, so a 4-image request spreads over both.
  farm = await startA1111Farm(["1x24GB@3", "1x24GB@3"], { targetTaskSeconds: 0.3 });
  api = new StableDiffusionApi({ baseUrl: farm.base });
});

afterAll(async () => {
  await farm?.stop();
});

function pngFiles(dir: string): string[] {
  try {
    return (readdirSync(dir, { recursive: true }) as string[]).filter((f) => f.endsWith(".png"));
  } catch {
    return [];
  }
}

describe("an A1111 client from npm (a1111-webui-api) against kiln serve's /sdapi/v1", () => {
  it("lists the farm's models as A1111 titles and sets the checkpoint option by name", async () => {
    const models = await api.getSdModels();
    const demo = models.find((m) => m.model_name === "kiln-demo");
    expect(demo).toBeDefined();
    expect(demo?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(demo?.hash).toBe(demo?.sha256.slice(0, 10));
    expect(demo?.title).toBe(`kiln-demo [${demo?.hash}]`);
    // The client's setModel posts the model_name it found as sd_model_checkpoint.
    await api.setModel("kiln-demo");
    expect(await api.getCurrentModel()).toBe(demo?.title);
    const samplers = await api.getSamplers();
    expect(samplers.map((s) => s.name)).toEqual(expect.arrayContaining(["Euler", "Euler a"]));
  });

  it("txt2img with batch_size 4: one job sharded over both nodes, progress while it runs, PNGs with their parameters", async () => {
    const seen: Array<{ progress: number; jobCount: number; current: boolean }> = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const p = await api.getProgress();
        if (p.state.job_count > 0)
          seen.push({ progress: p.progress, jobCount: p.state.job_count, current: Boolean(p.current_image) });
        await new Promise((r) => setTimeout(r, 40));
      }
    })();
    const result = await api.txt2img({ prompt: "a lighthouse at dusk", batch_size: 4, steps: 8, seed: 1234 });
    polling = false;
    await poller;

    expect(result.images).toHaveLength(4);
    const info = JSON.parse(result.info as string);
    expect(info.all_seeds).toEqual([1234, 1235, 1236, 1237]);
    expect(info.seed).toBe(1234);
    expect(info.all_prompts).toEqual(Array(4).fill("a lighthouse at dusk"));
    expect(info.sd_model_name).toBe("kiln-demo");
    expect(info.steps).toBe(8);
    expect(info.infotexts).toHaveLength(4);
    expect(info.infotexts[2]).toContain("Seed: 1236");
    for (const image of result.images) expect((await image.metadata()).width).toBe(512);

    // Progress was reported while it ran, rising, with the request's shape.
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((s) => s.progress > 0 && s.progress <= 1 && s.jobCount === 1)).toBe(true);
    expect(seen.at(-1)?.progress).toBeGreaterThanOrEqual(seen[0]?.progress ?? 1);

    // One job in Kiln's queue, marked as the API's with the client's address, rendered on both nodes.
    const job = farm.coordinator.listJobs().find((j) => j.source?.kind === "a1111-api" && j.counts.total === 4);
    expect(job?.source?.client).toBe("127.0.0.1");
    expect(job?.state).toBe("done");
    const nodes = new Set(farm.coordinator.jobImages(job?.id as string).map((i) => i.nodeId));
    expect(nodes.size).toBe(2);
    // save_images false (the client's default, as A1111's): nothing in the gallery folder, nothing left in the spool.
    expect(pngFiles(farm.outputDir)).toEqual([]);
    expect(pngFiles(join(farm.dataDir, API_SPOOL_DIR))).toEqual([]);
    // …and the job says so, so that the gallery asks for none of its pictures (it showed broken cells).
    expect(job?.transient).toBe(true);

    // png-info of a returned image: the client re-encodes with sharp, which keeps the text only when asked to.
    const first = result.images[0];
    if (!first) throw new Error("no image");
    const pngInfo = await api.pngInfo(first.keepMetadata());
    expect(pngInfo.info).toBe(info.infotexts[0]);
    expect(pngInfo.parameters).toMatchObject({ Prompt: "a lighthouse at dusk", Seed: "1234", Model: "kiln-demo" });
  });

  it("interrupt stops the client's request: it answers with the images finished so far and the job is cancelled", async () => {
    const request = api.txt2img({ prompt: "a long night", batch_size: 8, n_iter: 2, steps: 30, seed: 7 });
    await waitUntil(
      async () => (await api.getProgress(true)).progress > 0.05,
      30_000,
      "the first images of the long request",
    );
    // The client has no interrupt method; its own axios instance posts it.
    const interrupted = await api.api.post("/sdapi/v1/interrupt");
    expect(interrupted.status).toBe(200);
    const result = await request;
    expect(result.images.length).toBeLessThan(16);
    const info = JSON.parse(result.info as string);
    expect(info.warnings.some((w: string) => w.startsWith("interrupted"))).toBe(true);
    const job = farm.coordinator.listJobs().find((j) => j.source && j.counts.total === 16);
    expect(job?.state).toBe("cancelled");
    expect((await api.getProgress()).state.job_count).toBe(0);
  });

  it("a server of the API that stops (the desktop switch turned off) cancels its transient jobs: nobody else would get their pictures", async () => {
    const second = await farm.serveAgain({});
    const asked = (saved: boolean) =>
      fetch(`${second.base}/sdapi/v1/txt2img`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          prompt: `switched off, saved ${saved}`,
          batch_size: 8,
          n_iter: 2,
          steps: 30,
          save_images: saved,
        }),
      }).catch(() => null);
    const requests = [asked(false), asked(true)];
    const job = (saved: boolean) =>
      farm.coordinator.listJobs().find((j) => j.name.startsWith(`switched off, saved ${saved}`));
    // Both requests queued (under load the second may come a moment after the first runs), the first running.
    await waitUntil(
      () => job(true) !== undefined && (job(false)?.counts.running ?? 0) > 0,
      30_000,
      "both requests queued, the transient one's job running",
    );
    await second.close();
    await Promise.all(requests);
    expect(job(false)?.state).toBe("cancelled");
    // The saved one goes on into the gallery, as any job of the queue.
    expect(job(true)?.state).toMatch(/^(queued|running|done)$/);
    farm.coordinator.cancelJob(job(true)?.id as string);
  });

  it("a stopping server answers every request even when the queue file is too busy to cancel a job", async () => {
    const second = await farm.serveAgain({});
    const asked = (n: number) =>
      fetch(`${second.base}/sdapi/v1/txt2img`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ prompt: `busy at stop ${n}`, batch_size: 8, n_iter: 2, steps: 30 }),
      });
    const requests = [asked(1), asked(2)];
    const job = (n: number) => farm.coordinator.listJobs().find((j) => j.name.startsWith(`busy at stop ${n}`));
    await waitUntil(() => job(1) !== undefined && job(2) !== undefined, 30_000, "both requests queued");
    const cancel = farm.coordinator.cancelJob.bind(farm.coordinator);
    let refused = 0;
    farm.coordinator.cancelJob = (jobId: string) => {
      if (refused++ === 0) throw new SqliteError("database is locked", "SQLITE_BUSY");
      cancel(jobId);
    };
    try {
      await second.close();
      expect((await Promise.all(requests)).map((r) => r.status)).toEqual([200, 200]);
    } finally {
      farm.coordinator.cancelJob = cancel;
    }
    // The one the busy ledger refused is left to the next start's sweep; the other was cancelled.
    expect([job(1)?.state, job(2)?.state].filter((state) => state === "cancelled")).toHaveLength(1);
    for (const n of [1, 2]) if (job(n)?.state !== "cancelled") cancel(job(n)?.id as string);
  });

  it("a job a person cancels in Kiln answers its client with the images finished so far and why, not an error", async () => {
    const request = api.txt2img({ prompt: "cancelled from the app", batch_size: 8, n_iter: 2, steps: 30, seed: 9 });
    const job = () =>
      farm.coordinator.listJobs().find((j) => j.source && j.counts.total === 16 && j.state !== "cancelled");
    await waitUntil(() => (job()?.counts.running ?? 0) > 0, 30_000, "the request's job running");
    farm.coordinator.cancelJob(job()?.id as string);
    const result = await request;
    expect(result.images.length).toBeLessThan(16);
    const info = JSON.parse(result.info as string);
    expect(info.warnings).toContainEqual(expect.stringMatching(/^cancelled in Kiln: \d+ of 16 images were finished$/));
  });
});
