import { describe, expect, it } from "vitest";
import { galleryImages, galleryRows, rowAt } from "../../../renderer/model/gallery-items";
import {
  applyImage,
  applyJobImages,
  type GalleryData,
  noFilters,
  reduceGalleryEvent,
  togglePick,
} from "../../../renderer/stores/gallery-store";
import { image, job } from "./ui-fixtures";

const empty: GalleryData = { byJob: {}, filters: noFilters, selectedId: null };

describe("gallery reducers", () => {
  it("image.done fills the image's own place, leaving the other cells' objects alone", () => {
    const start = applyJobImages(
      empty,
      "a",
      [0, 1, 2].map((i) => image({ id: `a${i}`, jobId: "a", index: i })),
    );
    const done = image({ id: "a1", jobId: "a", index: 1, state: "done", path: "/out/a1.png", nodeId: "n1" });
    const next = reduceGalleryEvent(start, { type: "image.done", image: done });
    expect(next.byJob.a?.map((i) => i.state)).toEqual(["queued", "done", "queued"]);
    expect(next.byJob.a?.[0]).toBe(start.byJob.a?.[0]);
    expect(next.byJob.a?.[1]).toBe(done);
  });

  it("an image.done for a job not fetched yet is kept, and the fetch merges around it", () => {
    const done = image({ id: "a2", jobId: "a", index: 2, state: "done", path: "/out/a2.png" });
    const early = applyImage(empty, done);
    const fetched = applyJobImages(
      early,
      "a",
      [0, 1, 2].map((i) => image({ id: `a${i}`, jobId: "a", index: i })),
    );
    expect(fetched.byJob.a?.map((i) => i.state)).toEqual(["queued", "queued", "done"]);
  });

  it("a stored image never goes back to a placeholder; a failed one may be retried", () => {
    const start = applyJobImages(empty, "a", [
      image({ id: "a0", jobId: "a", index: 0, state: "done", path: "/x.png" }),
      image({ id: "a1", jobId: "a", index: 1, state: "failed", error: "E_OOM" }),
    ]);
    const next = applyJobImages(start, "a", [
      image({ id: "a0", jobId: "a", index: 0, state: "queued" }),
      image({ id: "a1", jobId: "a", index: 1, state: "queued" }),
    ]);
    expect(next.byJob.a?.map((i) => i.state)).toEqual(["done", "queued"]);
  });

  it("telemetry and queue events leave the gallery state as it was", () => {
    expect(reduceGalleryEvent(empty, { type: "queue.changed", jobs: [], queuePaused: false })).toBe(empty);
  });
});

describe("gallery items and rows", () => {
  const byJob = {
    old: [0, 1, 2].map((i) => image({ id: `o${i}`, jobId: "old", index: i, state: "done", nodeId: "n1" })),
    new: [
      image({ id: "n0", jobId: "new", index: 0, prompt: "a red fox", model: "sd-turbo" }),
      image({ id: "n1", jobId: "new", index: 1, prompt: "a red fox", model: "sd-turbo", state: "cancelled" }),
    ],
  };
  const jobs = [job({ id: "old", createdAt: 1 }), job({ id: "new", createdAt: 2 })];

  it("lists the newest job first, in job order, without cancelled images", () => {
    expect(galleryImages(byJob, jobs, noFilters).map((i) => i.id)).toEqual(["n0", "o0", "o1", "o2"]);
  });

  it("filters by job, prompt text, model and node", () => {
    const ids = (f: Partial<typeof noFilters>) => galleryImages(byJob, jobs, { ...noFilters, ...f }).map((i) => i.id);
    expect(ids({ jobId: "old" })).toEqual(["o0", "o1", "o2"]);
    expect(ids({ text: "RED FOX" })).toEqual(["n0"]);
    expect(ids({ model: "sd-turbo" })).toEqual(["n0"]);
    expect(ids({ nodeId: "n1" })).toEqual(["o0", "o1", "o2"]);
  });

  it("lays out a header per job and fixed-height rows with stable keys", () => {
    const images = galleryImages(byJob, jobs, noFilters);
    const rows = galleryRows(images, 2, { header: 40, row: 184 });
    expect(rows.map((r) => [r.key, r.start])).toEqual([
      ["h:new", 0],
      ["c:new:0", 40],
      ["h:old", 224],
      ["c:old:0", 264],
      ["c:old:1", 448],
    ]);
    expect(rowAt(rows, 0)).toBe(0);
    expect(rowAt(rows, 300)).toBe(3);
    expect(rowAt(rows, 10_000)).toBe(4);
  });

  it("lays out 10,000 images of one job: one header, then rows of seven, the last one short", () => {
    const big = {
      big: Array.from({ length: 10_000 }, (_, i) => image({ id: `b${i}`, jobId: "big", index: i, state: "done" })),
    };
    const rows = galleryRows(galleryImages(big, [job({ id: "big" })], noFilters), 7, { header: 40, row: 184 });
    expect(rows).toHaveLength(1 + Math.ceil(10_000 / 7));
    expect(rows.at(-1)?.key).toBe(`c:big:${Math.floor(10_000 / 7)}`);
  });
});

describe("picking gallery images (Ctrl/Cmd+click)", () => {
  it("adds an image at the end, lets a picked one go, keeps the others' order", () => {
    const picked = togglePick(togglePick(togglePick([], "b"), "a"), "c");
    expect(picked).toEqual(["b", "a", "c"]);
    expect(togglePick(picked, "a")).toEqual(["b", "c"]);
    expect(togglePick(picked, "b")[0]).toBe("a");
  });
});
