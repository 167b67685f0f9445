import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { afterEach, describe, expect, it } from "vitest";
import { readTextChunks } from "../../farm-node/png/png-text-chunks";
import { formatFingerprint } from "../../shared/fingerprint";
import { parseParameters } from "../../shared/png-parameters";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { startServe } from "../support/kiln-serve-process";
import { eachLine, Observed } from "../support/observed";

const KILN = fileURLToPath(new URL("../../bin/kiln.js", import.meta.url));
const nodesToStop: RunningNode[] = [];
afterEach(async () => {
  for (const n of nodesToStop.splice(0)) await n.stop();
});

function temp(label: string): string {
  return mkdtempSync(join(tmpdir(), `kiln-cli-${label}-`));
}

/** Runs the real `kiln` CLI; mDNS discovery stays off so nothing multicasts on the machine's network. */
function kiln(args: string[]) {
  const proc = spawn(process.execPath, [KILN, ...args, "--no-discovery"], { stdio: ["ignore", "pipe", "pipe"] });
  const stderr = new Observed<string>();
  let stdout = "";
  proc.stdout.setEncoding("utf8");
  proc.stdout.on("data", (c: string) => {
    stdout += c;
  });
  eachLine(proc.stderr, (line) => stderr.push(line));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    proc.on("exit", (code) => resolve({ code, stdout, stderr: stderr.items.join("\n") })),
  );
  return { proc, stderr, done };
}

/** `kiln render` of 40 images on a slow simulated device, once its job is queued (its line printed). */
async function slowRenderQueued(out: string) {
  const run = kiln([
    "render",
    "slow",
    "-n",
    "40",
    "--size",
    "256x256",
    "--out",
    out,
    "--data-dir",
    temp("data"),
    "--local-node-flags",
    "--simulate 1x24GB@4",
  ]);
  await run.stderr.waitFor(
    (l) => /job j_/.test(l),
    60_000,
    () => run.stderr.items.join("\n"),
  );
  return run;
}

describe("kiln CLI", () => {
  it('renders "a lighthouse at dusk" -n 8 through the embedded local node (real ONNX Runtime)', async () => {
    const out = temp("out");
    const { code, stdout, stderr } = await kiln([
      "render",
      "a lighthouse at dusk",
      "-n",
      "8",
      "--size",
      "256x256",
      "--out",
      out,
      "--data-dir",
      temp("data"),
    ]).done;
    expect(code, stderr).toBe(0);
    const files = readdirSync(out).filter((f) => f.endsWith(".png"));
    expect(files).toHaveLength(8);
    expect(stdout.trim().split("\n")).toHaveLength(8);
    const seeds = new Set<number>();
    for (const file of files) {
      const png = readFileSync(join(out, file));
      const params = parseParameters(readTextChunks(png).parameters ?? "");
      expect(params.prompt).toBe("a lighthouse at dusk");
      seeds.add(params.seed as number);
      expect((await sharp(png).metadata()).width).toBe(256);
    }
    expect(seeds.size).toBe(8);
    expect(stderr).toMatch(/done: 8 of 8 images stored/);
  });

  it("refuses an unknown model with the farm's models, exit code 2 (bad input)", async () => {
    const { code, stderr } = await kiln([
      "render",
      "x",
      "--model",
      "sdxl-nope",
      "--data-dir",
      temp("data"),
      "--local-node-flags",
      "--simulate 1x8GB@20",
    ]).done;
    expect(code).toBe(2);
    expect(stderr).toMatch(/no node of the farm has model "sdxl-nope"; models on the farm: kiln-demo/);
  });

  it("exits non-zero when images fail, with the reason", async () => {
    // 1 GB of simulated VRAM cannot hold one 1024x1024 image: the first attempt runs out of memory, and from then
    // on the node reports that not one image of that size fits, so the studio sends it no more and says why.
    const { code, stderr } = await kiln([
      "render",
      "too big",
      "--size",
      "1024x1024",
      "--data-dir",
      temp("data"),
      "--out",
      temp("out"),
      "--local-node-flags",
      "--simulate 1x1GB@50",
    ]).done;
    expect(code).toBe(1);
    expect(stderr).toMatch(
      /stalled: no device with kiln-demo \(This computer\) has the memory for one 1024x1024 image; choose a smaller size/,
    );
  });

  it("cancels cleanly on Ctrl-C (SIGINT) and exits 130", async () => {
    const out = temp("out");
    const run = await slowRenderQueued(out);
    await new Promise((r) => setTimeout(r, 600));
    run.proc.kill("SIGINT");
    const { code, stderr } = await run.done;
    expect(code).toBe(130);
    expect(stderr).toMatch(/cancelling/);
    expect(stderr).toMatch(/cancelled: \d+ of 40 images stored/);
    expect(readdirSync(out).filter((f) => f.endsWith(".png")).length).toBeLessThan(40);
  });

  it("cancels on SIGTERM (a closed terminal, a timeout) as on Ctrl-C: nothing of the job is left queued to run later", async () => {
    const run = await slowRenderQueued(temp("out"));
    run.proc.kill("SIGTERM");
    const { code, stderr } = await run.done;
    expect(code).toBe(130);
    expect(stderr).toMatch(/cancelled: \d+ of 40 images stored/);
  });

  it("stops with the reason when --out cannot be written, and the next render on that data dir takes the queue again", async () => {
    const data = temp("data");
    const blocker = join(temp("out"), "a-file");
    writeFileSync(blocker, "not a folder\n");
    const flags = ["--size", "256x256", "--data-dir", data, "--local-node-flags", "--simulate 1x24GB@20"];
    const refused = await kiln(["render", "x", "-n", "2", "--out", join(blocker, "renders"), ...flags]).done;
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/stalled: the output folder .*a-file\/renders cannot be written/);
    expect(refused.stderr).toMatch(/cancelled: 0 of 2 images stored/);

    const out = temp("out");
    const next = await kiln(["render", "y", "-n", "2", "--out", out, ...flags]).done;
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toMatch(/the queue was paused \(the output folder .* cannot be written.*\); resuming it/);
    expect(readdirSync(out).filter((f) => f.endsWith(".png"))).toHaveLength(2);
  });

  it("pairs with a node's printed code, then lists it with its devices", async () => {
    const node = await startNode(["--simulate", "2x24GB@10", "--name", "rack-01", "--pair"]);
    nodesToStop.push(node);
    const data = temp("data");
    const paired = await kiln(["pair", `127.0.0.1:${node.port}`, node.pairingCode(), "--data-dir", data]).done;
    expect(paired.code, paired.stderr).toBe(0);
    expect(paired.stdout).toContain(`paired with rack-01 (${node.nodeId})`);
    // The pinned certificate is shown, to compare with what the node prints.
    expect(paired.stdout).toContain(formatFingerprint(node.pin.fingerprint));
    const listed = await kiln(["nodes", "--no-local", "--data-dir", data]).done;
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/rack-01 {2}127\.0\.0\.1:\d+ {2}online/);
    expect(listed.stdout.match(/Simulated GPU 24 GB @10 img\/s {2}\[sim\] {2}VRAM \d+\/24576 MiB/g)).toHaveLength(2);
  });

  it("the embedded node stops when the app that started it is killed with SIGKILL", async () => {
    const serve = await startServe(["--data-dir", temp("data"), "--local-node-flags", "--simulate 1x8GB@20"]);
    const children = execFileSync("pgrep", ["-P", String(serve.proc.pid), "-f", "kiln-node.js"], { encoding: "utf8" })
      .trim()
      .split("\n")
      .map(Number);
    expect(children).toHaveLength(1);
    const localNode = children[0] as number;
    serve.proc.kill("SIGKILL");
    const alive = () => {
      try {
        process.kill(localNode, 0);
        return true;
      } catch {
        return false;
      }
    };
    const deadline = Date.now() + 15_000;
    while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(alive()).toBe(false);
  });

  it("refuses a second Kiln on one data dir, naming the fix, and takes the dir once the first is killed (SIGKILL)", async () => {
    const data = temp("data");
    const serve = await startServe(["--data-dir", data, "--no-local"]);
    const second = await kiln(["render", "x", "-n", "1", "--data-dir", data, "--no-local"]).done;
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(
      /^kiln: the data dir .* is in use by another Kiln \(kiln serve, kiln render or the desktop app\): work through that one \(its window or UI\), stop it, or give this one its own folder with --data-dir$/m,
    );
    // The first is unharmed: still serving.
    expect(serve.proc.exitCode).toBeNull();
    serve.proc.kill("SIGKILL");
    await serve.exited;
    // A crash leaves no stale lock behind.
    const again = await startServe(["--data-dir", data, "--no-local"]);
    expect(again.port).toBeGreaterThan(0);
    await again.stop();
  });

  it("names the flag and the fix for bad input, with exit code 2 whether commander or kiln refuses it", async () => {
    const refused = async (args: string[]) => {
      const { code, stderr } = await kiln([...args, "--data-dir", temp("data")]).done;
      expect(code, stderr).toBe(2);
      return stderr;
    };
    expect(await refused(["render", "x", "--size", "512by512"])).toMatch(
      /--size.*"512by512" is not a size like 512x512/,
    );
    expect(await refused(["render", "x", "--bogus"])).toMatch(/unknown option '--bogus'/);
    expect(await refused(["render", "--prompts", "/nonexistent/shots.txt"])).toMatch(
      /^kiln: --prompts \/nonexistent\/shots\.txt: ENOENT$/m,
    );
    expect(await refused(["render", "x", "--init-image", "/nonexistent/plate.png"])).toMatch(
      /^kiln: --init-image \/nonexistent\/plate\.png: ENOENT$/m,
    );
    expect(await refused(["render", "x", "--prompts", "/nonexistent/shots.txt"])).toMatch(
      /give a prompt or --prompts FILE, not both/,
    );
    const wide = join(temp("pictures"), "wide.png");
    writeFileSync(
      wide,
      await sharp({ create: { width: 16_400, height: 8, channels: 3, background: "#000" } })
        .png()
        .toBuffer(),
    );
    expect(await refused(["render", "x", "--init-image", wide])).toMatch(
      /init image may be at most 16384 pixels per side/,
    );
    expect(await refused(["render", "x", "--seed", "3", "--seed-mode", "random"])).toMatch(
      /--seed applies to --seed-mode increment or fixed/,
    );
  });

  it("sends a --node's --token only to the certificate named by --fingerprint; without one it refuses unless --trust-first-use", async () => {
    const node = await startNode(["--simulate", "1x24GB@20"]);
    nodesToStop.push(node);
    const common = ["--no-local", "--size", "256x256", "--node", `127.0.0.1:${node.port}`, "--token", node.token];
    const bare = await kiln(["render", "x", ...common, "--data-dir", temp("data")]).done;
    expect(bare.code).toBe(2);
    expect(bare.stderr).toMatch(/give one --fingerprint per --node .*certificate SHA-256.*or --trust-first-use/);

    const other = "ab".repeat(32);
    const wrong = await kiln(["render", "x", ...common, "--fingerprint", other, "--data-dir", temp("data")]).done;
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(`presents certificate ${formatFingerprint(node.pin.fingerprint)}`);
    expect(wrong.stderr).toContain("the token was not sent");

    // As the node prints it: groups of four, which the flag accepts as they are.
    const printed = formatFingerprint(node.pin.fingerprint);
    const right = await kiln(["render", "x", ...common, "--fingerprint", printed, "--data-dir", temp("data")]).done;
    expect(right.code, right.stderr).toBe(0);
    const trusted = await kiln(["render", "x", ...common, "--trust-first-use", "--data-dir", temp("data")]).done;
    expect(trusted.code, trusted.stderr).toBe(0);
  });

  it("refuses a pairing code that is not six digits before contacting anything", async () => {
    const { code, stderr } = await kiln(["pair", "127.0.0.1:9", "１２３-４５６", "--data-dir", temp("data")]).done;
    expect(code).toBe(2);
    expect(stderr).toMatch(/invalid pairing code: code: must be the six digits the node shows, e.g. 123-456/);
  });
});
