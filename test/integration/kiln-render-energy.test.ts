import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { readTextChunks } from "../../farm-node/png/png-text-chunks";
import { tempDir } from "../support/temp-dir";

const KILN = fileURLToPath(new URL("../../bin/kiln.js", import.meta.url));

function kiln(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [KILN, ...args, "--no-discovery"], { timeout: 120_000 }, (error, stdout, stderr) =>
      resolve({ code: typeof error?.code === "number" ? error.code : error ? 1 : 0, stdout, stderr }),
    );
  });
}

describe("kiln render: what the job cost in energy", () => {
  it("ends with the images, their watt-hours and watt-hours per image, the sum of their PNGs' energyJ", async () => {
    const out = tempDir("kiln-energy-out-");
    const { code, stderr } = await kiln([
      "render",
      "a kiln at night",
      "-n",
      "12",
      "--prefer",
      "efficient",
      "--out",
      out,
      "--data-dir",
      tempDir("kiln-energy-data-"),
      "--local-node-flags",
      "--simulate 1x24GB@20",
    ]);
    expect(code, stderr).toBe(0);
    const line = /^12 images, ([\d.]+) Wh \(([\d.]+) Wh\/image\)$/m.exec(stderr);
    expect(line, stderr).not.toBeNull();
    const [total, perImage] = [Number(line?.[1]), Number(line?.[2])];
    const joules = readdirSync(out)
      .filter((f) => f.endsWith(".png"))
      .map((f) => JSON.parse(readTextChunks(readFileSync(join(out, f))).kiln ?? "{}").energyJ as number);
    expect(joules).toHaveLength(12);
    // Every image has its share; a batch that drew no more than the learned idle draw is charged nothing, never less.
    expect(joules.every((j) => j >= 0)).toBe(true);
    expect(joules.filter((j) => j > 0).length, JSON.stringify(joules)).toBeGreaterThanOrEqual(10);
    const wh = joules.reduce((a, b) => a + b, 0) / 3600;
    // Printed to 2-3 significant figures.
    expect(Math.abs(total - wh) / wh).toBeLessThan(0.02);
    expect(Math.abs(perImage - wh / 12) / (wh / 12)).toBeLessThan(0.02);
  });

  it("says the energy was not measured when no device reports its draw", async () => {
    const { code, stderr } = await kiln([
      "render",
      "a lighthouse",
      "-n",
      "2",
      "--size",
      "128x128",
      "--steps",
      "2",
      "--out",
      tempDir("kiln-energy-out-"),
      "--data-dir",
      tempDir("kiln-energy-data-"),
    ]);
    expect(code, stderr).toBe(0);
    expect(stderr).toMatch(/^2 images, energy not measured \(no device reports its draw\)$/m);
  });
});
