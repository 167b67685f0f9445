import { describe, expect, it } from "vitest";
import { Img2ImgRequest, Txt2ImgRequest } from "../../../../coordinator/a1111/txt2img-request";

const PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";

function issues(result: { success: boolean; error?: { issues: { path: PropertyKey[]; message: string }[] } }) {
  return (result.error?.issues ?? []).map((i) => `${i.path.join(".")}: ${i.message}`);
}

describe("denoising_strength in A1111 request bodies", () => {
  it("takes 0 in txt2img without a hires pass, as A1111's own example body sends it", () => {
    const body = { prompt: "a lighthouse", enable_hr: false, denoising_strength: 0 };
    expect(issues(Txt2ImgRequest.safeParse(body))).toEqual([]);
  });

  it("refuses 0 where the strength is read: txt2img's hires pass and img2img, naming the field and why", () => {
    expect(issues(Txt2ImgRequest.safeParse({ enable_hr: true, denoising_strength: 0 }))).toEqual([
      "denoising_strength: must be above 0 (0 would leave the hires pass's picture as it is)",
    ]);
    expect(issues(Img2ImgRequest.safeParse({ init_images: [PIXEL], denoising_strength: 0 }))).toEqual([
      "denoising_strength: must be above 0 (0 would leave the picture as it is)",
    ]);
  });

  it("refuses a strength outside 0–1 on either route", () => {
    expect(issues(Txt2ImgRequest.safeParse({ denoising_strength: -0.1 }))).toEqual([
      "denoising_strength: must not be negative",
    ]);
    expect(issues(Img2ImgRequest.safeParse({ init_images: [PIXEL], denoising_strength: 1.5 }))).toEqual([
      "denoising_strength: must be at most 1",
    ]);
  });
});
