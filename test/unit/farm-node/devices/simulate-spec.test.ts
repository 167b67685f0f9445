import { describe, expect, it } from "vitest";
import { parseSimulateSpec } from "../../../../farm-node/devices/simulate-spec";

describe("parseSimulateSpec", () => {
  it("reads count, memory in MiB and rate", () => {
    expect(parseSimulateSpec("2x24GB@4")).toEqual([{ count: 2, vramMb: 24576, rate: 4 }]);
    expect(parseSimulateSpec("1x8GB@0.5")).toEqual([{ count: 1, vramMb: 8192, rate: 0.5 }]);
    expect(parseSimulateSpec("4x80GB@12")).toEqual([{ count: 4, vramMb: 81920, rate: 12 }]);
  });

  it("accepts MB units, any case and spaces around the parts", () => {
    expect(parseSimulateSpec("1X512mb@1")).toEqual([{ count: 1, vramMb: 512, rate: 1 }]);
    expect(parseSimulateSpec(" 3 x 16 gib @ 2.5 ")).toEqual([{ count: 3, vramMb: 16384, rate: 2.5 }]);
  });

  it("reads a comma-separated list in order", () => {
    expect(parseSimulateSpec("2x24GB@4,1x8GB@1.5")).toEqual([
      { count: 2, vramMb: 24576, rate: 4 },
      { count: 1, vramMb: 8192, rate: 1.5 },
    ]);
  });

  it.each([
    ["0x24GB@4", /count must be 1 to 64/],
    ["100x24GB@4", /count must be 1 to 64/],
    ["2x24GB", /not understood/],
    ["2x24GB@-1", /not understood/],
    ["2x24GB@0", /rate must be more than 0/],
    ["2x0GB@4", /memory must be more than 0/],
    ["1x24000GB@4", /memory must be at most 16384 GB/],
    ["1x24GB@200000", /rate must be at most 100000 images\/s/],
    ["2x24@4", /not understood/],
    ["lots of gpus", /not understood/],
    ["", /no device given/],
    ["2x24GB@4,", /not understood/],
  ])("rejects %j naming the flag and showing an example", (text, why) => {
    expect(() => parseSimulateSpec(text)).toThrow(why);
    expect(() => parseSimulateSpec(text)).toThrow(/^--simulate ".*".*e\.g\. 2x24GB@4/);
  });
});
