import type { InitImageRef } from "../../shared/img2img";
import type { TaskRequest } from "../../shared/task";
import { farmTiles, type UpscaleJob, upscaleWorkEdge } from "../../shared/upscale";

/**
 * What a task carries of its job's picture (the jobs.init column): an img2img
 * init image reference as it is, or an upscale job's picture with the size
 * the image comes out at (and, for a picture cut into farm tiles, the region
 * of image i: tile i of the plan its size gives). An upscale task's own width
 * and height are the job's cost key (a task's sizes are multiples of 8 up to
 * 2048; an upscaled picture is whatever its source times the factor makes).
 */
export function taskPicture(
  init: string,
  image: { index: number; width: number; height: number },
): Partial<Pick<TaskRequest, "init" | "upscale" | "width" | "height">> {
  const parsed = JSON.parse(init) as InitImageRef | { upscale: UpscaleJob };
  if (!("upscale" in parsed)) return { init: parsed };
  const { source, scale } = parsed.upscale;
  const tile = farmTiles(parsed.upscale)?.[image.index];
  return {
    width: upscaleWorkEdge(image.width),
    height: upscaleWorkEdge(image.height),
    upscale: {
      source,
      scale,
      width: image.width,
      height: image.height,
      ...(tile
        ? {
            region: {
              x: tile.x.start,
              y: tile.y.start,
              width: tile.x.end - tile.x.start,
              height: tile.y.end - tile.y.start,
            },
          }
        : {}),
    },
  };
}

/** Whether a queued image's job is an upscale: each of its images is a task of its own (one picture or region each). */
export function isUpscaleWork(init: string | undefined): boolean {
  return init?.startsWith('{"upscale"') === true;
}
