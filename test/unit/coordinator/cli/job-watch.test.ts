import { describe, expect, it } from "vitest";
import {
  NODE_RETURN_GRACE_MS,
  PAUSED_BY_A_PERSON,
  refuseAPersonsPause,
  STALL_GRACE_MS,
  StallWatch,
  startQueue,
  type WatchReading,
} from "../../../../coordinator/cli/job-watch";
import { formatDuration } from "../../../../coordinator/cli/progress-view";
import type { JobSummary } from "../../../../shared/ui-api";

const at = (now: number, rest: Partial<WatchReading> = {}): WatchReading => ({
  now,
  stalled: null,
  nodeAway: false,
  pause: null,
  ...rest,
});

describe("when kiln render and kiln upscale stop waiting for their jobs", () => {
  it("gives up on a job no device can run after the stall grace, and waits again once one can", () => {
    const watch = new StallWatch();
    const stalled = "no device with kiln-demo (rack-01) has the memory for one 1024x1024 image";
    expect(watch.observe(at(0, { stalled }))).toEqual({ wait: true });
    expect(watch.observe(at(STALL_GRACE_MS, { stalled }))).toEqual({ wait: true });
    // A device that could run it came and went: the grace starts again.
    expect(watch.observe(at(STALL_GRACE_MS + 100))).toEqual({ wait: true });
    expect(watch.observe(at(STALL_GRACE_MS + 200, { stalled }))).toEqual({ wait: true });
    expect(watch.observe(at(2 * STALL_GRACE_MS + 300, { stalled }))).toEqual({ wait: false, reason: stalled });
  });

  it("gives a node that is away (a reboot, a Wi-Fi drop) a minute to come back, and says so once", () => {
    const watch = new StallWatch();
    const stalled = "no online node has model kiln-demo";
    const first = watch.observe(at(0, { stalled, nodeAway: true }));
    expect(first).toEqual({ wait: true, say: `${stalled}; waiting up to 60 s for a node to come back` });
    expect(watch.observe(at(1000, { stalled, nodeAway: true }))).toEqual({ wait: true });
    expect(watch.observe(at(STALL_GRACE_MS * 2, { stalled, nodeAway: true }))).toEqual({ wait: true });
    expect(watch.observe(at(NODE_RETURN_GRACE_MS + 1, { stalled, nodeAway: true }))).toEqual({
      wait: false,
      reason: stalled,
    });
  });

  it("gives a node that came back the same minute from its return, while its workers load its models", () => {
    const watch = new StallWatch();
    const stalled = "no online node has model sdxl";
    watch.observe(at(0, { stalled, nodeAway: true }));
    expect(watch.observe(at(40_000, { stalled, nodeAway: true }))).toEqual({ wait: true });
    // Online again, no models listed yet: still stalled, not given up.
    expect(watch.observe(at(40_250, { stalled }))).toEqual({ wait: true });
    expect(watch.observe(at(40_250 + NODE_RETURN_GRACE_MS - 1000, { stalled }))).toEqual({ wait: true });
    expect(watch.observe(at(40_250 + NODE_RETURN_GRACE_MS + 1, { stalled }))).toEqual({ wait: false, reason: stalled });
  });

  it("waits out a queue paused for a full disk (it resumes by itself), saying why once; gives up on any other pause at once", () => {
    const full = new StallWatch();
    const reason = "the output disk is full (/mnt/renders)";
    expect(full.observe(at(0, { pause: { reason, resumesBySelf: true } }))).toEqual({
      wait: true,
      say: `paused: ${reason}; waiting for the disk to have room`,
    });
    expect(full.observe(at(10 * NODE_RETURN_GRACE_MS, { pause: { reason, resumesBySelf: true } }))).toEqual({
      wait: true,
    });

    const unwritable = "the output folder /mnt/renders cannot be written (EACCES)";
    expect(new StallWatch().observe(at(0, { pause: { reason: unwritable, resumesBySelf: false } }))).toEqual({
      wait: false,
      reason: unwritable,
    });
    expect(new StallWatch().observe(at(0, { pause: { reason: null, resumesBySelf: false } }))).toEqual({
      wait: false,
      reason: PAUSED_BY_A_PERSON,
    });
  });

  it("refuses to override a person's pause before queueing; once queued, ends the app's own pause and says so", () => {
    const said: string[] = [];
    let paused: { reason: string | null; resumesBySelf: boolean } | null = { reason: null, resumesBySelf: false };
    const coordinator = {
      queuePause: () => paused,
      resumeQueue: () => {
        paused = null;
      },
      // A paused job waits for its person: it does not render into this command's output.
      listJobs: () => [{ id: "mine" }, { id: "left-by-serve" }, { id: "held", state: "paused" }] as JobSummary[],
    };
    expect(() => refuseAPersonsPause(coordinator)).toThrow(PAUSED_BY_A_PERSON);
    expect(paused).toEqual({ reason: null, resumesBySelf: false });

    paused = { reason: "the output folder /mnt/renders cannot be written (EACCES)", resumesBySelf: false };
    refuseAPersonsPause(coordinator);
    expect(paused).not.toBeNull();
    startQueue(coordinator, ["mine"], (line) => said.push(line));
    expect(paused).toBeNull();
    expect(said).toEqual([
      "the queue was paused (the output folder /mnt/renders cannot be written (EACCES)); resuming it for this command",
      "1 other unfinished job is queued in this data dir and renders too, into this command's output: cancel it in kiln serve's UI, or give this command its own --data-dir",
    ]);
  });

  it("writes durations in whole seconds: 59.5 s is 1m00s and 119.6 s is 2m00s", () => {
    expect(formatDuration(12.2)).toBe("13s");
    expect(formatDuration(59.5)).toBe("1m00s");
    expect(formatDuration(119.6)).toBe("2m00s");
    expect(formatDuration(3599.5)).toBe("1h00m");
  });
});
