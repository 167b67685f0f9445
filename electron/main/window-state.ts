import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { z } from "zod";

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

export const DEFAULT_SIZE = { width: 1280, height: 820 };
export const MIN_SIZE = { width: 900, height: 600 };

const WindowState = z.object({
  x: z.number().int(),
  y: z.number().int(),
  width: z.number().int().min(MIN_SIZE.width).max(100_000),
  height: z.number().int().min(MIN_SIZE.height).max(100_000),
  maximized: z.boolean(),
});
export type WindowState = z.infer<typeof WindowState>;

/** The saved window, or null when there is none or the file is not ours (hand-edited, truncated). */
export function loadWindowState(file: string): WindowState | null {
  try {
    const parsed = WindowState.safeParse(JSON.parse(readFileSync(file, "utf8")));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

export function saveWindowState(file: string, state: WindowState): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state));
  renameSync(tmp, file);
}

/** A window can be grabbed when a stretch of its top edge (the title bar) lies on a display. */
function titleBarOn(bounds: Rect, area: Rect): boolean {
  const overlap = Math.min(bounds.x + bounds.width, area.x + area.width) - Math.max(bounds.x, area.x);
  return overlap >= 100 && bounds.y >= area.y && bounds.y <= area.y + area.height - 40;
}

/**
 * Where the window opens: where it was, if its title bar is still on one of the
 * displays (shrunk to that display), else centred on the primary display. A
 * monitor unplugged since the last run must not leave the window out of reach.
 */
export function placeWindow(saved: WindowState | null, workAreas: Rect[], primary: Rect): Rect {
  const home = saved ? workAreas.find((area) => titleBarOn(saved, area)) : undefined;
  if (saved && home) {
    return {
      x: saved.x,
      y: saved.y,
      width: Math.min(saved.width, home.width),
      height: Math.min(saved.height, home.height),
    };
  }
  const width = Math.min(saved?.width ?? DEFAULT_SIZE.width, primary.width);
  const height = Math.min(saved?.height ?? DEFAULT_SIZE.height, primary.height);
  return {
    x: primary.x + Math.round((primary.width - width) / 2),
    y: primary.y + Math.round((primary.height - height) / 2),
    width,
    height,
  };
}
