import type { Page } from "playwright-core";

/** One frame at 60 Hz, the refresh rate headless Chromium paints at. */
export const FRAME_MS = 1000 / 60;

export interface FrameFigures {
  /** Frames the page painted. */
  frames: number;
  p95Ms: number;
  worstMs: number;
  /** Frames missed, over frames painted plus missed, in percent. */
  droppedPct: number;
}

/**
 * The page's frame intervals (requestAnimationFrame to requestAnimationFrame)
 * while `drive` is called over and over for `ms`. A frame that took longer than
 * one refresh shows as a long interval: the main thread (React, layout, the
 * image decodes it waits for) held the frame back.
 */
export async function recordFrames(page: Page, ms: number, drive: (elapsedMs: number) => Promise<void>) {
  // Scripts as strings: tsx's name-keeping helpers do not exist inside the page.
  await page.evaluate(`(() => {
    window.__frames = [];
    window.__recording = true;
    let last = null;
    const loop = (t) => {
      if (last !== null) window.__frames.push(t - last);
      last = t;
      if (window.__recording) requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
  })()`);
  const started = Date.now();
  while (Date.now() - started < ms) await drive(Date.now() - started);
  return (await page.evaluate("(window.__recording = false, window.__frames)")) as number[];
}

/** p95 and worst interval, and frames missed: an interval of n refreshes stands for n − 1 missed frames. */
export function frameFigures(intervals: number[]): FrameFigures {
  const sorted = [...intervals].sort((a, b) => a - b);
  const missed = sorted.reduce((sum, ms) => sum + Math.max(0, Math.round(ms / FRAME_MS) - 1), 0);
  return {
    frames: sorted.length,
    p95Ms: round2(sorted[Math.floor(sorted.length * 0.95)] ?? Number.NaN),
    worstMs: round2(sorted.at(-1) ?? Number.NaN),
    droppedPct: round2(sorted.length === 0 ? Number.NaN : (100 * missed) / (sorted.length + missed)),
  };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
