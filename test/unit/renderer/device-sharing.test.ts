import { describe, expect, it } from "vitest";
import { sharingText } from "../../../renderer/model/device-sharing";
import { device } from "./ui-fixtures";

const client = (id: string, name: string, share: number, tasks: number) => ({
  client: id,
  name,
  weight: 1,
  share,
  tasks,
});

describe("device sharing text (farm panel)", () => {
  it("says the device is busy for another studio app, by name, while that app's batch renders", () => {
    const d = device({
      uuid: "GPU-1",
      sharing: {
        current: "b",
        windowS: 300,
        clients: [client("a", "kiln on ws-1", 0.4, 1), client("b", "kiln on ws-2", 0.6, 3)],
      },
    });
    expect(sharingText(d, "a")).toEqual({
      task: "busy for another studio app (kiln on ws-2)",
      share: "40 % ours over 5 min, shared with 1 other app",
    });
    expect(sharingText(d, "b").task).toBeNull();
  });

  it("says nothing about sharing on a device only this app uses", () => {
    const d = device({ uuid: "GPU-1", sharing: { current: "a", windowS: 300, clients: [client("a", "me", 1, 2)] } });
    expect(sharingText(d, "a")).toEqual({ task: null, share: null });
  });
});
