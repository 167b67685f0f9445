import { describe, expect, it } from "vitest";
import { submitWithInit } from "../../../../coordinator/dispatch/dispatcher";
import type { SubmitOutcome } from "../../../../coordinator/nodes/node-client";
import type { NodeConnection } from "../../../../coordinator/nodes/node-connection";
import { KilnError } from "../../../../shared/errors";
import type { TaskRequest } from "../../../../shared/task";

const SHA = "ab".repeat(32);
const PNG = Buffer.from("png bytes");

/** A node that holds no init image until one is PUT, then takes every task naming it. */
function fakeNode(opts: { putFails?: boolean } = {}) {
  const held = new Set<string>();
  const puts: string[] = [];
  const submitted: string[] = [];
  const client = {
    async submit(task: TaskRequest): Promise<SubmitOutcome> {
      submitted.push(task.id);
      if (task.init && !held.has(task.init.sha256))
        return { kind: "rejected", error: new KilnError("E_INIT_IMAGE_MISSING", "send it", { sha256: SHA }) };
      return { kind: "accepted", accepted: { id: task.id, device: "d", state: "queued", duplicate: false } };
    },
    async putInitImage(sha256: string): Promise<void> {
      puts.push(sha256);
      await new Promise((r) => setTimeout(r, 10));
      if (opts.putFails) throw new Error("connection reset");
      held.add(sha256);
    },
  };
  return { node: { id: "n1", client } as unknown as NodeConnection, puts, submitted };
}

const task = (id: string, init = true): TaskRequest => ({
  id,
  model: "m",
  width: 256,
  height: 256,
  steps: 4,
  images: [{ id: `${id}-i`, seed: 1, prompt: "p" }],
  ...(init ? { init: { sha256: SHA, strength: 0.5, resizeMode: "resize" } } : {}),
});

describe("init images travel to a node once", () => {
  it("five tasks sent at once naming the same image: one upload, every task accepted", async () => {
    const { node, puts } = fakeNode();
    const uploads = new Map<string, Promise<void>>();
    const store = { get: async (sha: string) => (sha === SHA ? PNG : null) };
    const outcomes = await Promise.all([1, 2, 3, 4, 5].map((k) => submitWithInit(node, task(`t${k}`), store, uploads)));
    expect(outcomes.map((o) => o.kind)).toEqual(Array(5).fill("accepted"));
    expect(puts).toEqual([SHA]);
    // Later tasks find it there: no upload at all.
    expect((await submitWithInit(node, task("t6"), store, uploads)).kind).toBe("accepted");
    expect(puts).toHaveLength(1);
  });

  it("a task without an init image never uploads", async () => {
    const { node, puts, submitted } = fakeNode();
    expect((await submitWithInit(node, task("t1", false), undefined, new Map())).kind).toBe("accepted");
    expect(puts).toEqual([]);
    expect(submitted).toEqual(["t1"]);
  });

  it("says why when the studio no longer holds the picture, and counts a failed upload as unreachable", async () => {
    const gone = await submitWithInit(fakeNode().node, task("t1"), { get: async () => null }, new Map());
    expect(gone).toMatchObject({ kind: "rejected", error: { code: "E_INIT_IMAGE_MISSING" } });
    expect(gone.kind === "rejected" && gone.error.message).toMatch(/no longer holds it/);
    const failing = await submitWithInit(
      fakeNode({ putFails: true }).node,
      task("t2"),
      { get: async () => PNG },
      new Map(),
    );
    expect(failing).toMatchObject({ kind: "unreachable" });
  });

  it("refuses a task whose picture the studio cannot read, saying why, rather than sending it again every pass", async () => {
    const unreadable = {
      get: async () => {
        throw Object.assign(new Error("EIO: i/o error, read"), { code: "EIO" });
      },
    };
    const { node, puts } = fakeNode();
    const outcome = await submitWithInit(node, task("t1"), unreadable, new Map());
    expect(outcome).toMatchObject({ kind: "rejected", error: { code: "E_INIT_IMAGE_MISSING" } });
    expect(outcome.kind === "rejected" && outcome.error.message).toMatch(/could not read it \(EIO: i\/o error, read\)/);
    expect(puts).toEqual([]);
  });
});

describe("an inpainting mask travels as the init image", () => {
  const MASK = "cd".repeat(32);
  /** A node that names whichever of the picture and the mask it lacks, the picture first. */
  function inpaintNode() {
    const held = new Set<string>();
    const puts: string[] = [];
    const client = {
      async submit(t: TaskRequest): Promise<SubmitOutcome> {
        for (const sha of [t.init?.sha256, t.init?.mask?.sha256]) {
          if (sha && !held.has(sha))
            return { kind: "rejected", error: new KilnError("E_INIT_IMAGE_MISSING", "send it", { sha256: sha }) };
        }
        return { kind: "accepted", accepted: { id: t.id, device: "d", state: "queued", duplicate: false } };
      },
      async putInitImage(sha256: string): Promise<void> {
        puts.push(sha256);
        held.add(sha256);
      },
    };
    return { node: { id: "n1", client } as unknown as NodeConnection, puts, held };
  }
  const masked = (id: string): TaskRequest => ({
    ...task(id),
    init: { sha256: SHA, strength: 0.5, resizeMode: "resize", mask: { sha256: MASK } },
  });
  const store = { get: async (sha: string) => (sha === SHA || sha === MASK ? PNG : null) };

  it("a node lacking both gets the picture, then the mask, then takes the task; later tasks send nothing", async () => {
    const { node, puts } = inpaintNode();
    const uploads = new Map<string, Promise<void>>();
    expect((await submitWithInit(node, masked("t1"), store, uploads)).kind).toBe("accepted");
    expect(puts).toEqual([SHA, MASK]);
    expect((await submitWithInit(node, masked("t2"), store, uploads)).kind).toBe("accepted");
    expect(puts).toHaveLength(2);
  });

  it("a node holding the picture gets only the mask; a mask the studio lost is named", async () => {
    const { node, puts, held } = inpaintNode();
    held.add(SHA);
    expect((await submitWithInit(node, masked("t1"), store, new Map())).kind).toBe("accepted");
    expect(puts).toEqual([MASK]);
    const lost = await submitWithInit(
      inpaintNode().node,
      masked("t2"),
      { get: async (s) => (s === SHA ? PNG : null) },
      new Map(),
    );
    expect(lost.kind === "rejected" && lost.error.message).toMatch(/^mask c{1}d.*no longer holds it/);
  });
});
