import type { InitImageRef } from "../../shared/img2img";
import type { TaskRequest } from "../../shared/task";
import { type UpscaleScale, upscaleWorkEdge } from "../../shared/upscale";

/**
 * What a task carries of its job's picture (the jobs.init column): an img2img
 * init image reference as it is, or an upscale job's picture with the size
 * the image comes out at. An upscale task's own width and height are the
 * job's cost key (a task's sizes are multiples of 8 up to 2048; an upscaled
 * picture is whatever its source times the factor makes).
 */
export function taskPicture(
  init: string,
  image: { width: number; height: number },
): Partial<Pick<TaskRequest, "init" | "upscale" | "width" | "height">> {
  const parsed = JSON.parse(init) as InitImageRef | { upscale: { source: string; scale: UpscaleScale } };
  if (!("upscale" in parsed)) return { init: parsed };
  return {
    width: upscaleWorkEdge(image.width),
    height: upscaleWorkEdge(image.height),
    upscale: { ...parsed.upscale, width: image.width, height: image.height },
  };
}
