import { execFileSync, spawn } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statfsSync,
  statSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { pushPack } from "../../../coordinator/models/pack-pusher";
import { NodeClient } from "../../../coordinator/nodes/node-client";
import type { RunningNode } from "../../support/kiln-node-process";
import { api } from "../../support/node-client";
import { waitUntil } from "../../support/wait-until";
import { LabFarm, type Tally } from "./lab-farm";
import { attackPushApi } from "./lab-hostile";
import { countingLink, mib, paddedPack, resentPerFile, runKiln, watchListing } from "./lab-push";

export interface ScenarioResult {
  name: string;
  tally: Tally;
  /** Broken promises other than lost or duplicated images; empty when the scenario passed. */
  problems: string[];
  notes: string[];
}

export interface Scenario {
  name: string;
  run(): Promise<Omit<ScenarioResult, "name">>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ADVERTISER = fileURLToPath(new URL("./advertise-garbage.ts", import.meta.url));
const RELAY = fileURLToPath(new URL("./relay-in-middle.ts", import.meta.url));
const FIXTURES = fileURLToPath(new URL("../../fixtures/", import.meta.url));
/** A recorded `nvidia-smi` output, printed by the fake nvidia-smi in test/fixtures/bin. */
const smiRecording = (name: string) => join(FIXTURES, "nvidia-smi", name);

/** What the machine in the middle read, once it is stopped. */
interface Capture {
  connections: number;
  seen: string;
}

/** Starts the TLS relay on the `mitm` host, in front of `node` on `target`, with the node's port. */
async function startRelay(farm: LabFarm, target: string, node: RunningNode): Promise<() => Promise<Capture>> {
  const capture = join(mkdtempSync(join(tmpdir(), "kiln-lab-mitm-")), "capture.json");
  const [command, ...rest] = [
    ...farm.lan.host("mitm").prefix,
    process.execPath,
    "--import",
    import.meta.resolve("tsx"),
    RELAY,
    farm.lan.host("mitm").address,
    String(node.port),
    farm.lan.host(target).address,
    node.pin.fingerprint,
    capture,
  ];
  const relay = spawn(command as string, rest, { stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise<void>((resolve) => relay.once("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    relay.stdout?.once("data", () => resolve());
    relay.once("exit", (code) => reject(new Error(`the relay exited (${code}) before it listened`)));
  });
  return async () => {
    relay.kill("SIGTERM");
    await exited;
    return JSON.parse(readFileSync(capture, "utf8")) as Capture;
  };
}

/** Builds the farm, runs the body, always tears the LAN down. */
async function withFarm(
  label: string,
  gpus: string[],
  extra: string[],
  body: (farm: LabFarm, notes: string[], problems: string[]) => Promise<Tally>,
): Promise<Omit<ScenarioResult, "name">> {
  const farm = new LabFarm(label, gpus, extra);
  const notes: string[] = [];
  const problems: string[] = [];
  try {
    const tally = await body(farm, notes, problems);
    return { tally, problems, notes };
  } finally {
    await farm.close();
  }
}

function expect(problems: string[], ok: boolean, what: string): void {
  if (!ok) problems.push(what);
}

/** An app's client of a lab node, by its LAN address, token and pinned certificate. */
function pushClient(farm: LabFarm, host: string, node: RunningNode): NodeClient {
  return new NodeClient(`https://${farm.lan.host(host).address}:${node.port}`, node.token, node.pin);
}

/** Waits until `read` gives the same number twice 300 ms apart (bytes in flight have landed). */
async function steady(read: () => number): Promise<void> {
  let last = read();
  for (;;) {
    await sleep(300);
    const now = read();
    if (now === last) return;
    last = now;
  }
}

/** Partial files left in the output folder (a write cut short). */
function partials(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).filter((f) => f.endsWith(".partial"));
}

/** For each image of the ledger, how many attempts ended in 'done': exactly one each, from the recorded history. */
function doneAttemptsPerImage(dataDir: string): number[] {
  const db = new Database(join(dataDir, "kiln.sqlite"), { readonly: true });
  try {
    return db
      .prepare(
        `SELECT count(a.id) AS n FROM images i LEFT JOIN attempts a ON a.image_id = i.id AND a.state = 'done' GROUP BY i.id`,
      )
      .pluck()
      .all() as number[];
  } finally {
    db.close();
  }
}

export const SCENARIOS: Scenario[] = [
  {
    name: "1. node killed with SIGKILL mid-batch",
    run: () =>
      withFarm("kill", ["gpu1", "gpu2", "gpu3"], [], async (farm) => {
        await farm.startNodes(20);
        await farm.startServe();
        const job = await farm.submit(60, 1000);
        await farm.waitForDone(job, 15);
        farm.nodes.get("gpu1")?.proc.kill("SIGKILL");
        await farm.waitForJob(job);
        return farm.tally(60, 1000);
      }),
  },
  {
    name: "2. link down 10 s, then back",
    run: () =>
      withFarm("link", ["gpu1", "gpu2"], [], async (farm, notes, problems) => {
        await farm.startNodes(15);
        await farm.startServe();
        const job = await farm.submit(80, 2000);
        await farm.waitForDone(job, 10);
        farm.lan.setLink("gpu1", false);
        await sleep(10_000);
        farm.lan.setLink("gpu1", true);
        await farm.waitForJob(job);
        const gpu1 = farm.nodes.get("gpu1")?.nodeId;
        await waitUntil(
          async () => (await farm.nodesNow()).find((n) => n.id === gpu1)?.status === "online",
          20_000,
          "gpu1 back online",
        );
        // Its new work is accepted: a second job, long enough (512×512, several seconds on one device) to be shared, runs on it too.
        const second = await farm.submit(120, 9000, 512);
        await farm.waitForJob(second);
        const onGpu1 = (await farm.api.call("jobImages", { jobId: second })).filter((i) => i.nodeId === gpu1).length;
        notes.push(`after the link came back gpu1 rendered ${onGpu1} of 120 new images`);
        expect(problems, onGpu1 > 0, "gpu1 took no new work after its link came back");
        return farm.tally(80, 2000);
      }),
  },
  {
    name: "3. 20% packet loss and 200 ms delay on one link",
    run: () =>
      withFarm("loss", ["gpu1", "gpu2"], [], async (farm, notes) => {
        await farm.startNodes(15);
        await farm.startServe();
        notes.push(farm.lan.impair("gpu2", 20, 200));
        const job = await farm.submit(60, 3000);
        await farm.waitForJob(job, 240_000);
        return farm.tally(60, 3000);
      }),
  },
  {
    name: "4. coordinator killed with SIGKILL mid-job and restarted",
    run: () =>
      withFarm("crd", ["gpu1", "gpu2"], [], async (farm, notes, problems) => {
        await farm.startNodes(15);
        const first = await farm.startServe();
        const job = await farm.submit(80, 4000);
        await farm.waitForDone(job, 20);
        first.proc.kill("SIGKILL");
        await first.exited;
        farm.ui?.close();
        await sleep(1500);
        await farm.startServe();
        await farm.waitForJob(job);
        expect(problems, partials(farm.outputDir).length === 0, "partial files left behind");
        notes.push("restarted with the same data dir; in-flight work delivered from the nodes' outboxes");
        return farm.tally(80, 4000);
      }),
  },
  {
    name: "5. node restarts with its id; an impostor advertises that id elsewhere",
    run: () =>
      withFarm("imp", ["gpu1", "gpu2"], ["intruder"], async (farm, notes, problems) => {
        await farm.startNodes(15);
        await farm.startServe();
        const job = await farm.submit(60, 5000);
        await farm.waitForDone(job, 10);
        const gpu1 = farm.nodes.get("gpu1");
        if (!gpu1) throw new Error("no gpu1");
        await gpu1.stop();
        const again = await farm.startNode("gpu1", 15, ["--port", String(gpu1.port)], {
          stateDir: gpu1.stateDir,
          token: gpu1.token,
        });
        expect(problems, again.nodeId === gpu1.nodeId, "gpu1 came back with another id");
        // The impostor: a real kiln-node whose state dir claims gpu1's id, with its own certificate.
        const impostorState = mkdtempSync(join(tmpdir(), "kiln-lab-impostor-"));
        mkdirSync(impostorState, { recursive: true });
        copyFileSync(join(gpu1.stateDir, "node.json"), join(impostorState, "node.json"));
        const impostor = await farm.startNode("intruder", 50, [], { stateDir: impostorState });
        farm.nodes.delete("intruder");
        await waitUntil(
          async () => (await farm.nodesNow()).some((n) => n.status === "conflict"),
          20_000,
          "the impostor shown as a conflict",
        );
        await farm.waitForJob(job);
        const info = (await (await api(impostor).get("/v1/node")).json()) as { devices: { imagesTotal: number }[] };
        const impostorImages = info.devices.reduce((sum, d) => sum + d.imagesTotal, 0);
        const tokensTried = impostor.logs.filter((l) => l.msg === "refused a request without a valid token").length;
        notes.push(`impostor rendered ${impostorImages} images and was offered ${tokensTried} tokens`);
        expect(problems, impostorImages === 0, "the impostor received work");
        expect(problems, tokensTried === 0, "the impostor was sent a token");
        await impostor.stop();
        return farm.tally(60, 5000);
      }),
  },
  {
    name: "6. malformed and oversized mDNS adverts",
    run: () =>
      withFarm("mdns", ["gpu1", "gpu2"], ["intruder"], async (farm, notes, problems) => {
        await farm.startNodes(15);
        await farm.startServe();
        // Node itself with tsx's loader, not the tsx CLI: the CLI would leave its child running when killed.
        const [command, ...rest] = [
          ...farm.lan.host("intruder").prefix,
          process.execPath,
          "--import",
          import.meta.resolve("tsx"),
          ADVERTISER,
        ];
        const advertiser = spawn(command as string, rest, { stdio: "ignore" });
        try {
          await sleep(3000);
          expect(problems, advertiser.exitCode === null, "the garbage advertiser did not stay up");
          const job = await farm.submit(40, 6000);
          await farm.waitForJob(job);
          const listed = await farm.nodesNow();
          const intruderAddress = farm.lan.host("intruder").address;
          const fromIntruder = listed.filter((n) => n.host === intruderAddress);
          notes.push(`${listed.length} nodes listed; ${fromIntruder.length} from the garbage advertiser`);
          expect(problems, fromIntruder.length === 0, "a malformed advert was listed as a node");
          expect(problems, listed.filter((n) => n.status === "online").length === 2, "a real node was harmed");
          return farm.tally(40, 6000);
        } finally {
          advertiser.kill("SIGKILL");
        }
      }),
  },
  {
    name: "7. results disk fills up, then space returns (resumes by itself)",
    run: () =>
      withFarm("disk", ["gpu1", "gpu2"], [], async (farm, notes, problems) => {
        const mount = mkdtempSync(join(tmpdir(), "kiln-lab-tmpfs-"));
        execFileSync("mount", ["-t", "tmpfs", "-o", "size=300k", "tmpfs", mount]);
        try {
          farm.outputDir = mount;
          await farm.startNodes(20);
          await farm.startServe();
          const job = await farm.submit(60, 7000, 256);
          await waitUntil(
            async () => (await farm.api.call("queueState", {})).paused,
            90_000,
            "queue paused on a full disk",
          );
          const error = (await farm.api.call("queueState", {})).reason ?? "";
          notes.push(`paused with: ${error || "(no message)"}`);
          expect(problems, /disk is full/i.test(error), "no clear disk-full reason on the paused queue");
          // Writes cut short by the full disk remove their partial files as they fail.
          await waitUntil(() => partials(mount).length === 0, 10_000, "partial files removed").catch(() =>
            problems.push("partial files left on the full disk"),
          );
          // Space returns: the queue starts again by itself.
          execFileSync("mount", ["-o", "remount,size=64m", mount]);
          await waitUntil(async () => !(await farm.api.call("queueState", {})).paused, 20_000, "the queue resumed");
          await farm.waitForJob(job);
          return farm.tally(60, 7000);
        } finally {
          await farm.close();
          execFileSync("umount", ["-l", mount]);
        }
      }),
  },
  {
    name: "8. node drained during a job",
    run: () =>
      withFarm("drn", ["gpu1", "gpu2"], [], async (farm, notes, problems) => {
        await farm.startNodes(12);
        await farm.startServe();
        const job = await farm.submit(60, 8000);
        await farm.waitForDone(job, 10);
        const gpu1 = farm.nodes.get("gpu1")?.nodeId as string;
        await farm.api.call("drainNode", { nodeId: gpu1, drained: true });
        // What it holds in flight may still finish; then nothing more lands on it.
        await sleep(4000);
        const onGpu1 = async () =>
          (await farm.api.call("jobImages", { jobId: job })).filter((i) => i.nodeId === gpu1 && i.state === "done")
            .length;
        const afterDrain = await onGpu1();
        await farm.waitForJob(job);
        const atEnd = await onGpu1();
        notes.push(`gpu1 stored ${afterDrain} before the drain settled, ${atEnd} at the end`);
        expect(problems, atEnd === afterDrain, "a drained node took new work");
        return farm.tally(60, 8000);
      }),
  },
  {
    name: "9. partition past the lease: late updates refused (409), fenced by attempt",
    run: () =>
      withFarm("part", ["gpu1", "gpu2"], [], async (farm, notes, problems) => {
        // gpu2 slow, so it renders what it holds through the partition and delivers it late.
        await farm.startNode("gpu1", 12);
        await farm.startNode("gpu2", 2);
        await farm.startServe();
        // At 512² gpu2 takes half a second an image: when 10 are done it is mid-task.
        const job = await farm.submit(80, 9100, 512);
        await farm.waitForDone(job, 10);
        farm.lan.setLink("gpu2", false);
        await sleep(8000);
        farm.lan.setLink("gpu2", true);
        await farm.waitForJob(job);
        const gpu2 = farm.nodes.get("gpu2");
        const refused =
          (await gpu2?.waitForLog((l) => l.msg === "a client refused an outcome", 20_000).catch(() => null)) ?? null;
        // It rendered what it held through the partition: those results arrive late and must be refused.
        notes.push(refused ? `gpu2 was told: ${String(refused.reason)}` : "gpu2's late results were not refused");
        expect(
          problems,
          refused !== null && /not assigned to you/.test(String(refused.reason)),
          "late update not refused",
        );
        const perImage = doneAttemptsPerImage(farm.dataDir);
        expect(
          problems,
          perImage.every((n) => n === 1),
          "an image ended with other than exactly one done attempt",
        );
        return farm.tally(80, 9100);
      }),
  },
  {
    name: "10. a node's event loop starved 5 s (SIGSTOP), then resumed",
    run: () =>
      withFarm("stop", ["gpu1", "gpu2", "gpu3"], [], async (farm, notes, problems) => {
        await farm.startNodes(15);
        const serve = await farm.startServe();
        const job = await farm.submit(90, 10_000);
        await farm.waitForDone(job, 10);
        const gpu3 = farm.nodes.get("gpu3");
        gpu3?.proc.kill("SIGSTOP");
        await sleep(5000);
        gpu3?.proc.kill("SIGCONT");
        await farm.waitForJob(job);
        await waitUntil(async () => (await farm.onlineNodes()).length === 3, 20_000, "gpu3 back online");
        const lost = serve.events.filter((e) => e.msg === "node lost; its in-flight images go back to the queue");
        const lostIds = new Set(lost.map((e) => e.node));
        notes.push(
          `nodes marked lost: ${[...lostIds].map((id) => [...farm.nodes].find(([, n]) => n.nodeId === id)?.[0]).join(", ")}`,
        );
        expect(problems, lostIds.has(gpu3?.nodeId), "the starved node was not marked lost");
        // Busy nodes never miss heartbeats: inference runs in worker processes, not the daemon's event loop.
        expect(problems, lostIds.size === 1, "a busy node missed its heartbeats");
        return farm.tally(90, 10_000);
      }),
  },
  {
    name: "11. a machine in the middle (ARP spoofing) during pairing and after: no token, no pin, no prompt",
    run: () =>
      withFarm("mitm", ["gpu1", "gpu2"], ["mitm"], async (farm, notes, problems) => {
        await farm.startNode("gpu2", 15);
        await farm.startServe();
        // Not advertised (a LAN that blocks multicast): the app has no advert to compare, only the code.
        const gpu1 = await farm.startNode("gpu1", 15, ["--pair", "--no-mdns"]);
        const address = farm.lan.host("gpu1").address;
        const stopRelay = await startRelay(farm, "gpu1", gpu1);
        let capture: Capture = { connections: 0, seen: "" };
        const job = { id: "" };
        const code = gpu1.pairingCode();
        try {
          // During pairing: the studio's packets for gpu1 reach the relay, which terminates TLS.
          farm.lan.poisonArp("studio", "gpu1", "mitm");
          const refused = await farm.api.call("pairNode", { host: address, port: gpu1.port, code }).then(
            () => null,
            (error: Error) => error,
          );
          expect(problems, refused !== null, "pairing through the machine in the middle succeeded");
          notes.push(`pairing through it: ${refused?.message.slice(0, 70) ?? "succeeded"}…`);
          farm.lan.healArp("studio", "gpu1", "mitm");
          // Without it, the same code pairs: the relay spent nothing of it.
          const paired = await farm.api.call("pairNode", { host: address, port: gpu1.port, code });
          expect(problems, paired.fingerprint === gpu1.pin.fingerprint, "the studio pinned another certificate");
          job.id = await farm.submit(60, 11_000);
          await farm.waitForDone(job.id, 10);
          // After pairing, mid-job: the relay is put in the middle again.
          farm.lan.poisonArp("studio", "gpu1", "mitm");
          await waitUntil(
            async () => (await farm.nodesNow()).find((n) => n.id === gpu1.nodeId)?.status === "identity-changed",
            20_000,
            "gpu1 shown as identity changed",
          ).catch(() => problems.push("the studio did not notice the machine in the middle"));
          await sleep(3000);
          farm.lan.healArp("studio", "gpu1", "mitm");
        } finally {
          capture = await stopRelay();
        }
        await farm.waitForJob(job.id);
        await waitUntil(
          async () => (await farm.nodesNow()).find((n) => n.id === gpu1.nodeId)?.status === "online",
          20_000,
          "gpu1 online again",
        );
        notes.push(`the relay took ${capture.connections} connections and read ${capture.seen.length} bytes`);
        expect(problems, capture.connections > 0, "the relay saw no connection: the spoofing did not work");
        expect(problems, !/"token"/.test(capture.seen), "the relay read a token");
        expect(problems, !capture.seen.includes(code.replace("-", "")), "the relay read the pairing code");
        expect(problems, !capture.seen.includes("lab 11000"), "the relay read a prompt");
        const pinned = (await farm.nodesNow()).find((n) => n.id === gpu1.nodeId)?.fingerprint;
        expect(problems, pinned === gpu1.pin.fingerprint, "the studio's pin for gpu1 is not gpu1's certificate");
        return farm.tally(60, 11_000);
      }),
  },
  {
    name: "12. a node's link goes down mid-push and comes back: the push resumes, no half pack is listed",
    run: () =>
      withFarm("push", ["gpu1", "gpu2"], [], async (farm, notes, problems) => {
        await farm.startNode("gpu1", 12);
        const gpu2 = await farm.startNode("gpu2", 12, ["--models", mkdtempSync(join(tmpdir(), "kiln-lab-models-"))]);
        await farm.startServe();
        const job = await farm.submit(60, 12_000);
        const pack = await paddedPack(48);
        const chunkBytes = 1 << 20;
        const client = pushClient(farm, "gpu2", gpu2);
        const link = countingLink(client);
        const listing = watchListing(client, pack.offer, link.commitAsked);
        let cut = false;
        let plugged: Promise<void> = Promise.resolve();
        try {
          const outcome = await pushPack(link, pack, {
            chunkBytes,
            onProgress: (p) => {
              if (cut || p.percent < 25) return;
              cut = true;
              farm.lan.setLink("gpu2", false);
              plugged = sleep(4000).then(() => farm.lan.setLink("gpu2", true));
            },
          });
          expect(problems, outcome.kind === "installed", `the push ended as ${outcome.kind}`);
        } catch (error) {
          problems.push(`the push failed: ${(error as Error).message}`);
        } finally {
          await plugged;
        }
        const resent = resentPerFile(link, pack.offer);
        notes.push(
          `cable pulled at 25% for 4 s; ${mib(link.uploadedBytes())} handed to uploads for a ${mib(pack.bytes)} pack; sent twice: ${mib(resent.total)} in all, at most ${mib(resent.worst)} of one file (bound: one ${mib(chunkBytes)} chunk per file)`,
        );
        expect(problems, cut, "the push ended before the cable was pulled");
        expect(problems, resent.worst <= chunkBytes, "more than one chunk of a file was sent twice");
        const half = listing.stop();
        expect(problems, half === null, `gpu2 listed half a pack: ${half}`);
        const listed = (await client.info()).models.find((m) => m.name === pack.offer.name);
        expect(problems, listed?.hash === pack.offer.hash, "gpu2 does not list the pushed pack with its hash");
        client.close();
        await farm.waitForJob(job);
        return farm.tally(60, 12_000);
      }),
  },
  {
    name: "13. a node's disk fills mid-push: the app is told why, nothing of the push is left, the node renders on",
    run: () =>
      withFarm("fill", ["gpu1", "gpu2"], [], async (farm, notes, problems) => {
        const pack = await paddedPack(64);
        // Room for the pack, the 1 GiB a node keeps free and a little more: the offer is taken.
        // A tmpfs holds only what is written.
        const mount = mkdtempSync(join(tmpdir(), "kiln-lab-models-tmpfs-"));
        const sizeMiB = 1024 + Math.ceil(pack.bytes / 2 ** 20) + 16;
        execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeMiB}m`, "tmpfs", mount]);
        try {
          await farm.startNode("gpu1", 12);
          const gpu2 = await farm.startNode("gpu2", 12, ["--models", mount]);
          await farm.startServe();
          notes.push(farm.lan.limitRateTo("gpu2", 400));
          const job = await farm.submit(60, 13_000);
          const client = pushClient(farm, "gpu2", gpu2);
          const name = basename(pack.dir);
          const listing = watchListing(client, { ...pack.offer, name }, () => false);
          const used = () => {
            const fs = statfsSync(mount);
            return (fs.blocks - fs.bfree) * fs.bsize;
          };
          const started = Date.now();
          // The studio's own command, on the studio host: what it prints is what a person reads.
          const pushArgs = [
            "models",
            "push",
            name,
            "--models",
            dirname(pack.dir),
            "--data-dir",
            mkdtempSync(join(tmpdir(), "kiln-lab-cli-")),
            ...["--node", `${farm.lan.host("gpu2").address}:${gpu2.port}`, "--token", gpu2.token],
            ...["--fingerprint", gpu2.pin.fingerprint, "--no-discovery", "--no-local"],
          ];
          const push = runKiln(farm.lan.host("studio").prefix, pushArgs);
          await waitUntil(
            () => used() >= pack.bytes / 4 || push.proc.exitCode !== null,
            60_000,
            "a quarter of the pack on gpu2's disk",
          );
          // Something else takes the disk but for 256 KiB; the sender is held meanwhile so the disk fills mid-push.
          push.proc.kill("SIGSTOP");
          await steady(used);
          const landed = used();
          const fs = statfsSync(mount);
          execFileSync("fallocate", ["-l", String(fs.bavail * fs.bsize - 256 * 1024), join(mount, ".other-data")]);
          push.proc.kill("SIGCONT");
          const result = await push.done;
          const took = ((Date.now() - started) / 1000).toFixed(1);
          const said = /failed: (.*)/.exec(result.stdout)?.[1] ?? `(no failure line) ${result.stdout}${result.stderr}`;
          notes.push(`disk filled with ${mib(landed)} of the ${mib(pack.bytes)} pack on it`);
          notes.push(`kiln models push exited ${result.code} after ${took} s: ${said.slice(0, 150)}`);
          expect(problems, result.code === 1, `kiln models push exited ${result.code}, not 1`);
          expect(
            problems,
            /disk filled up|may be used/.test(said),
            "the app was not told that the node's disk is full",
          );
          const half = listing.stop();
          expect(problems, half === null, `gpu2 listed half a pack: ${half}`);
          const left = (readdirSync(mount, { recursive: true }) as string[]).filter(
            (f) => !f.endsWith("-data") && f !== ".incoming",
          );
          notes.push(
            `left on gpu2's models disk besides the other data: ${left.length === 0 ? "nothing" : left.join(", ")}`,
          );
          expect(problems, left.length === 0, "files of the push were left on the node's disk");
          expect(problems, !(await client.info()).models.some((m) => m.name === name), "gpu2 lists the pack");
          // Pushed again onto a disk with no byte free: refused before a byte is sent, both sizes named.
          const rest = statfsSync(mount);
          execFileSync("fallocate", ["-l", String(rest.bavail * rest.bsize), join(mount, ".more-data")]);
          const again = await runKiln(farm.lan.host("studio").prefix, pushArgs).done;
          const saidAgain =
            /failed: (.*)/.exec(again.stdout)?.[1] ?? `(no failure line) ${again.stdout}${again.stderr}`;
          notes.push(`pushed again onto the full disk: exit ${again.code}: ${saidAgain.slice(0, 150)}`);
          expect(
            problems,
            /needs .* \(\d+ bytes\) more on this node but only .* \(\d+ bytes\) may be used/.test(saidAgain),
            "a push onto a full disk was not refused naming both sizes",
          );
          expect(problems, readdirSync(join(mount, ".incoming")).length === 0, "a refused push left a staging");
          client.close();
          await farm.waitForJob(job);
          // It renders on: a second job, long enough to be shared, runs on it too.
          const second = await farm.submit(120, 13_500, 256);
          await farm.waitForJob(second);
          const onGpu2 = (await farm.api.call("jobImages", { jobId: second })).filter(
            (i) => i.nodeId === gpu2.nodeId,
          ).length;
          notes.push(`after the failed push gpu2 rendered ${onGpu2} of 120 new images`);
          expect(problems, onGpu2 > 0, "gpu2 took no work after the failed push");
          return farm.tally(60, 13_000);
        } finally {
          await farm.close();
          execFileSync("umount", ["-l", mount]);
        }
      }),
  },
  {
    name: "14. a node restarts mid-push (SIGKILL, started again on its dirs): the push resumes from the bytes there",
    run: () =>
      withFarm("rst", ["gpu1", "gpu2"], [], async (farm, notes, problems) => {
        const models = mkdtempSync(join(tmpdir(), "kiln-lab-models-"));
        await farm.startNode("gpu1", 12);
        const gpu2 = await farm.startNode("gpu2", 12, ["--models", models]);
        await farm.startServe();
        notes.push(farm.lan.limitRateTo("gpu2", 400));
        const job = await farm.submit(60, 14_000);
        const pack = await paddedPack(48);
        // Larger than the 1 MiB the node writes at a time, so a file's size on disk can show a chunk half in.
        const chunkBytes = 4 << 20;
        const client = pushClient(farm, "gpu2", gpu2);
        const link = countingLink(client);
        const listing = watchListing(client, pack.offer, link.commitAsked);
        const biggest = pack.offer.files.reduce((a, b) => (b.size > a.size ? b : a));
        const staged = join(models, ".incoming", pack.offer.hash, "pack", biggest.path);
        const started = Date.now();
        const pushing = pushPack(link, pack, { chunkBytes }).catch((error: Error) => error);
        // Killed mid-chunk: a quarter of the biggest file there and the chunk under way partly in.
        const onDisk = await new Promise<number>((resolve) => {
          const timer = setInterval(() => {
            const have = existsSync(staged) ? statSync(staged).size : 0;
            if (have >= biggest.size / 4 && have < biggest.size && have % chunkBytes > 0) {
              clearInterval(timer);
              resolve(have);
            }
          }, 2);
          void pushing.then(() => {
            clearInterval(timer);
            resolve(-1);
          });
        });
        expect(problems, onDisk >= 0, "the push ended before gpu2 was killed");
        gpu2.proc.kill("SIGKILL");
        await gpu2.exited;
        const down = Date.now();
        await farm.startNode("gpu2", 12, ["--models", models, "--port", String(gpu2.port)], {
          stateDir: gpu2.stateDir,
          token: gpu2.token,
        });
        const back = Date.now();
        const outcome = await pushing;
        const took = ((Date.now() - started) / 1000).toFixed(1);
        if (outcome instanceof Error) problems.push(`the push failed: ${outcome.message}`);
        else expect(problems, outcome.kind === "installed", `the push ended as ${outcome.kind}`);
        const resent = resentPerFile(link, pack.offer);
        const restart = `kiln-node up again in ${((back - down) / 1000).toFixed(1)} s; push done in ${took} s`;
        notes.push(
          onDisk < 0
            ? restart
            : `SIGKILL with ${mib(onDisk)} of ${biggest.path} on disk (${mib(onDisk % chunkBytes)} into a chunk); ${restart}`,
        );
        notes.push(
          `${mib(link.uploadedBytes())} handed to uploads for a ${mib(pack.bytes)} pack; sent twice: ${mib(resent.total)} in all, at most ${mib(resent.worst)} of one file (bound: one ${mib(chunkBytes)} chunk per file)`,
        );
        expect(problems, resent.worst <= chunkBytes, "more than one chunk of a file was sent twice");
        const half = listing.stop();
        expect(problems, half === null, `gpu2 listed half a pack: ${half}`);
        const listed = (await client.info()).models.find((m) => m.name === pack.offer.name);
        expect(problems, listed?.hash === pack.offer.hash, "gpu2 does not list the pushed pack with its hash");
        expect(problems, !existsSync(join(models, ".incoming", pack.offer.hash)), "the push's staging was left");
        client.close();
        await farm.waitForJob(job);
        return farm.tally(60, 14_000);
      }),
  },
  {
    name: "15. a hostile paired app and unpaired callers on a node's push API: every trick refused, nothing written outside staging",
    run: () =>
      withFarm("host", ["gpu1", "gpu2"], [], async (farm, notes, problems) => {
        const models = mkdtempSync(join(tmpdir(), "kiln-lab-models-"));
        await farm.startNode("gpu1", 12);
        const gpu2 = await farm.startNode("gpu2", 12, ["--models", models]);
        await farm.startServe();
        const job = await farm.submit(60, 15_000);
        const { trials, outsideTouched, keptOfUndeclared } = await attackPushApi({
          host: farm.lan.host("gpu2").address,
          port: gpu2.port,
          pin: gpu2.pin,
          token: gpu2.token,
          modelsDir: models,
        });
        const byStatus = new Map<number, number>();
        for (const t of trials) byStatus.set(t.got, (byStatus.get(t.got) ?? 0) + 1);
        const wrong = trials.filter((t) => t.got !== t.expected || t.broke !== null);
        notes.push(
          `${trials.length} raw HTTPS requests, ${trials.length - wrong.length} answered as they should: ${[...byStatus]
            .sort(([a], [b]) => a - b)
            .map(([status, n]) => `${n}×${status}`)
            .join(", ")}`,
        );
        for (const what of ["a 16 TiB pack", "a folder linked out"]) {
          const trial = trials.find((t) => t.what.includes(what));
          if (trial) notes.push(`${what}: ${trial.got} "${trial.said.slice(0, 140)}…"`);
        }
        notes.push(`an upload of 8 MiB + 64 KiB declaring no length: the node kept ${mib(keptOfUndeclared)} of it`);
        for (const t of wrong)
          problems.push(
            `${t.what}: ${t.got} (expected ${t.expected})${t.broke ? `, ${t.broke}` : ""}: ${t.said.slice(0, 100)}`,
          );
        for (const place of outsideTouched) problems.push(`written outside the staging: ${place}`);
        // Still serving: it lists only its own model, stays online, and takes an honest push.
        const client = pushClient(farm, "gpu2", gpu2);
        const listed = (await client.info()).models.map((m) => m.name);
        expect(problems, listed.join() === "kiln-demo", `gpu2 lists ${listed.join(", ")}`);
        const pack = await paddedPack(4);
        const outcome = await pushPack(client, pack).catch((error: Error) => error);
        expect(
          problems,
          !(outcome instanceof Error) && outcome.kind === "installed",
          `an honest push afterwards: ${outcome instanceof Error ? outcome.message : outcome.kind}`,
        );
        const pushed = (await client.info()).models.find((m) => m.name === pack.offer.name);
        expect(problems, pushed?.hash === pack.offer.hash, "gpu2 does not list the honest push");
        client.close();
        const gpu2Now = (await farm.nodesNow()).find((n) => n.id === gpu2.nodeId);
        expect(problems, gpu2Now?.status === "online", `gpu2 is ${gpu2Now?.status} in the app`);
        await farm.waitForJob(job);
        return farm.tally(60, 15_000);
      }),
  },
  {
    name: "16. a workstation's owner opens Blender mid-job: its GPU yields, the farm renders the rest, it takes work again",
    run: () =>
      withFarm("yld", ["gpu1", "ws"], [], async (farm, notes, problems) => {
        // The workstation's GPU is the fake nvidia-smi's RTX 3090 (renders run on its CPU); what
        // --query-compute-apps lists is this file, read on every call, swapped by the scenario.
        const apps = join(mkdtempSync(join(tmpdir(), "kiln-lab-yield-")), "compute-apps.csv");
        copyFileSync(smiRecording("compute-apps-none.csv"), apps);
        // Slow enough that the job is still running when Blender starts, whatever the load.
        await farm.startNode("gpu1", 2);
        const ws = await farm.startNodeWith(
          "ws",
          ["--providers", "cpu", "--yield", "auto", "--yield-resume-after", "3"],
          {
            PATH: `${join(FIXTURES, "bin")}:${process.env.PATH}`,
            KILN_FAKE_NVIDIA_SMI: smiRecording("one-rtx-3090.csv"),
            KILN_FAKE_NVIDIA_SMI_POWER: smiRecording("two-rtx-3090-power-loop.csv"),
            KILN_FAKE_NVIDIA_SMI_APPS: apps,
          },
        );
        await farm.startServe();
        const gpu = async () =>
          (await farm.nodesNow()).find((n) => n.id === ws.nodeId)?.devices.find((d) => d.kind === "nvidia");
        const onWs = async (jobId: string) =>
          (await farm.api.call("jobImages", { jobId })).filter((i) => i.nodeId === ws.nodeId && i.state === "done")
            .length;
        const job = await farm.submit(120, 16_000, 256);
        await waitUntil(async () => (await onWs(job)) > 0, 60_000, "the workstation rendering");
        copyFileSync(smiRecording("compute-apps-blender.csv"), apps);
        const yielded = await waitUntil(
          async () => ((await gpu())?.state === "yielded" ? await gpu() : undefined),
          20_000,
          "the workstation's GPU yielded",
        );
        notes.push(`yielded: ${yielded?.yielded?.reason} (${yielded?.yielded?.process})`);
        expect(problems, yielded?.yielded?.process === "blender", "the yield does not name blender");
        await sleep(12_000);
        const whileYielded = await onWs(job);
        await farm.waitForJob(job);
        const summary = await farm.job(job);
        const atEnd = await onWs(job);
        notes.push(`the workstation stored ${atEnd} of 120 (none after its batch in hand), the farm the rest`);
        expect(problems, atEnd === whileYielded, "the yielded workstation stored images of the job");
        expect(problems, summary?.counts.failed === 0, `${summary?.counts.failed} images failed`);
        const wsNode = (await farm.nodesNow()).find((n) => n.id === ws.nodeId);
        expect(problems, (wsNode?.blockedModels.length ?? 0) === 0, "the workstation was blocklisted");
        expect(problems, (await gpu())?.state === "yielded", "the GPU took work while Blender ran");
        // Blender closed: after the resume delay the workstation takes work again.
        copyFileSync(smiRecording("compute-apps-none.csv"), apps);
        await waitUntil(async () => ["ready", "busy"].includes((await gpu())?.state ?? ""), 30_000, "back at work");
        const again = await farm.submit(40, 16_100, 256);
        await farm.waitForJob(again);
        const later = await onWs(again);
        notes.push(`after Blender: the workstation stored ${later} of 40`);
        expect(problems, later > 0, "the workstation took no work after Blender closed");
        const second = farm.tally(40, 16_100);
        expect(
          problems,
          second.lost + second.duplicated + second.wrongSeed === 0,
          "the second job lost or doubled images",
        );
        return farm.tally(120, 16_000);
      }),
  },
];
