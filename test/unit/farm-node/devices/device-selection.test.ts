import { describe, expect, it } from "vitest";
import { parseDeviceSelection } from "../../../../farm-node/devices/device-selection";

describe("parseDeviceSelection", () => {
  it("reads the keywords in any case", () => {
    expect(parseDeviceSelection("auto")).toEqual({ kind: "auto" });
    expect(parseDeviceSelection("ALL")).toEqual({ kind: "all" });
    expect(parseDeviceSelection(" cpu ")).toEqual({ kind: "cpu" });
  });

  it("reads an index list in the order given", () => {
    expect(parseDeviceSelection("0,2")).toEqual({ kind: "indices", indices: [0, 2] });
    expect(parseDeviceSelection("3, 1")).toEqual({ kind: "indices", indices: [3, 1] });
    expect(parseDeviceSelection("7")).toEqual({ kind: "indices", indices: [7] });
  });

  it.each([
    ["", /"" is not a GPU index/],
    ["gpu0", /"gpu0" is not a GPU index/],
    ["0,-1", /"-1" is not a GPU index/],
    ["0,,2", /"" is not a GPU index/],
    ["1.5", /"1.5" is not a GPU index/],
    ["0,cpu", /"cpu" is not a GPU index/],
    ["0,0", /GPU 0 is listed twice/],
  ])("rejects %j naming --devices and the accepted forms", (text, why) => {
    expect(() => parseDeviceSelection(text)).toThrow(why);
    expect(() => parseDeviceSelection(text)).toThrow(/^--devices ".*": .*use auto, all, cpu, or NVIDIA GPU indices/);
  });
});
