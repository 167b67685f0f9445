import { describe, expect, it } from "vitest";
import { TaskRegistry } from "../../../farm-node/task-registry";

const images = (task: string, n = 64) => Array.from({ length: n }, (_, i) => `${task}-image-${i}`);

describe("task registry (every task id the node has seen, bounded)", () => {
  it("keeps an ended task only as much as recognising its id again needs, not its image ids", () => {
    const registry = new TaskRegistry();
    registry.add("t1", "gpu-0", "app-a", "lan", images("t1"));
    expect(registry.imageClaim("t1-image-5")).toBe("app-a");

    registry.setState("t1", "done");

    // A node that ran 20,000 tasks of 64 images held every id: about 175 MB of heap.
    expect(registry.get("t1")).toEqual({
      device: "gpu-0",
      client: "app-a",
      source: "lan",
      state: "done",
      imageIds: [],
    });
    expect(registry.imageClaim("t1-image-5")).toBeUndefined();
  });

  it("forgets the oldest ended tasks past its capacity, never a queued or running one", () => {
    const registry = new TaskRegistry(3);
    registry.add("queued", "gpu-0", "app-a", "lan", images("queued", 1));
    for (const id of ["old", "mid", "new"]) {
      registry.add(id, "gpu-0", "app-a", "lan", images(id, 1));
      registry.setState(id, "done");
    }

    expect(registry.get("queued")?.state).toBe("queued");
    expect(registry.get("old")).toBeUndefined();
    expect(registry.get("mid")?.state).toBe("done");
    expect(registry.get("new")?.state).toBe("done");
    expect(registry.imageClaim("queued-image-0")).toBe("app-a");
  });
});
