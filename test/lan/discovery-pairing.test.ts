import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { startNode } from "../support/kiln-node-process";
import { Lan, NETNS_SKIP_REASON } from "../support/netns";

const KILN = fileURLToPath(new URL("../../bin/kiln.js", import.meta.url));

if (NETNS_SKIP_REASON) console.warn(`SKIPPED LAN discovery and pairing test: ${NETNS_SKIP_REASON}`);

/** Runs the kiln CLI on a host of the test LAN, discovery on (multicast stays inside the namespaces). */
function kilnOn(prefix: string[], args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const [command, ...rest] = [...prefix, process.execPath, KILN, ...args];
  const proc = spawn(command as string, rest, { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  proc.stdout.on("data", (c) => {
    stdout += c;
  });
  proc.stderr.on("data", (c) => {
    stderr += c;
  });
  return new Promise((resolve) => proc.on("exit", (code) => resolve({ code, stdout, stderr })));
}

describe.skipIf(NETNS_SKIP_REASON !== null)("two hosts on a bridge (network namespaces, real mDNS)", () => {
  const cleanup: Array<() => unknown> = [];
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c();
  });

  it("the coordinator discovers a node on the other host by mDNS, pairs with its code and renders", async () => {
    const lan = new Lan("pair", ["studio", "gpu1"]);
    cleanup.push(() => lan.destroy());
    const gpu = lan.host("gpu1");
    const studio = lan.host("studio");
    const node = await startNode(["--simulate", "1x24GB@20", "--name", "gpu-box-1", "--pair"], {
      prefix: gpu.prefix,
      host: "0.0.0.0",
    });
    cleanup.push(() => node.stop());
    const data = mkdtempSync(join(tmpdir(), "kiln-lan-data-"));
    const out = mkdtempSync(join(tmpdir(), "kiln-lan-out-"));

    const seen = await kilnOn(studio.prefix, ["nodes", "--no-local", "--data-dir", data]);
    expect(seen.code, seen.stderr).toBe(0);
    expect(seen.stdout).toContain(`gpu-box-1  ${gpu.address}:${node.port}  unpaired  id ${node.nodeId}`);

    const paired = await kilnOn(studio.prefix, [
      "pair",
      `${gpu.address}:${node.port}`,
      node.pairingCode(),
      "--data-dir",
      data,
    ]);
    expect(paired.code, paired.stderr).toBe(0);

    const rendered = await kilnOn(studio.prefix, [
      "render",
      "across the bridge",
      "-n",
      "4",
      "--size",
      "256x256",
      "--no-local",
      "--data-dir",
      data,
      "--out",
      out,
    ]);
    expect(rendered.code, rendered.stderr).toBe(0);
    expect(readdirSync(out).filter((f) => f.endsWith(".png"))).toHaveLength(4);
  });
});
