import { describe, expect, it } from "vitest";
import { devicesSeenBy, lanViewer } from "../../../farm-node/api/caller-view";
import { DeviceInfo } from "../../../shared/device";

const device = DeviceInfo.parse({
  uuid: "GPU-1",
  index: 0,
  name: "RTX 4090",
  kind: "nvidia",
  simulated: false,
  backend: "cuda",
  state: "busy",
  queueDepth: 2,
  queueLimit: 4,
  currentTaskId: "task-of-anna",
  imagesTotal: 10,
  imagesPerSec: 2,
  vramTotalMb: 24_576,
  vramUsedMb: 8_000,
  utilizationPct: 90,
  temperatureC: 70,
  powerW: 300,
  sharing: {
    current: "anna-app-id",
    windowS: 300,
    clients: [
      { client: "anna-app-id", name: "kiln on anna-ws", weight: 1, share: 0.7, tasks: 2 },
      { client: "ben-app-id", name: "kiln on ben-ws", weight: 1, share: 0.3, tasks: 1 },
    ],
  },
});
const owners: Record<string, string> = { "task-of-anna": "anna-app-id" };
const ownerOf = (task: string) => owners[task];

describe("what a paired app sees of a shared node's devices", () => {
  it("its own running task by id and itself by its id", () => {
    const [seen] = devicesSeenBy([device], lanViewer("anna-app-id", ownerOf));
    expect(seen?.currentTaskId).toBe("task-of-anna");
    expect(seen?.sharing.current).toBe("anna-app-id");
  });

  it("another app's work as busy, under an alias, with no task id or client id it could act on", () => {
    const [seen] = devicesSeenBy([device], lanViewer("ben-app-id", ownerOf));
    expect(seen?.currentTaskId).toBeNull();
    const text = JSON.stringify(seen);
    expect(text).not.toContain("anna-app-id");
    expect(text).not.toContain("task-of-anna");
    expect(seen?.sharing.current).toMatch(/^another-app-[0-9a-f]{12}$/);
    // The name stays: it is how a person tells who the GPU is busy for. The share is still there to plan with.
    expect(seen?.sharing.clients.find((c) => c.client === seen.sharing.current)).toMatchObject({
      name: "kiln on anna-ws",
      share: 0.7,
    });
    expect(seen?.sharing.clients.map((c) => c.client)).toContain("ben-app-id");
  });

  it("gives the same alias to the same app every time, and another one to each caller", () => {
    const once = devicesSeenBy([device], lanViewer("ben-app-id", ownerOf))[0]?.sharing.current;
    const again = devicesSeenBy([device], lanViewer("ben-app-id", ownerOf))[0]?.sharing.current;
    const toThird = devicesSeenBy([device], lanViewer("carl-app-id", ownerOf))[0]?.sharing.current;
    expect(again).toBe(once);
    expect(toThird).not.toBe(once);
  });
});
