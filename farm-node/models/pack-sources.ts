import { z } from "zod";
import type { PackSource } from "../../shared/model-push";
import type { StateDir } from "../state-dir";

/** The file in the node's state dir that says which packs were pushed, by whom and when. */
export const PACK_SOURCES_FILE = "model-sources.json";

const PushedPack = z.object({
  hash: z.string(),
  client: z.string(),
  clientName: z.string(),
  at: z.string(),
});
const PackSources = z.record(z.string(), PushedPack);
type PackSources = z.infer<typeof PackSources>;

/**
 * Where each pack of the models folder came from: pushed by a paired app
 * (recorded here at commit, by folder and hash), or put there by the node's
 * owner (everything else, and a pushed folder whose content has changed since).
 */
export class PackSourceBook {
  constructor(private readonly state: StateDir) {}

  private read(): PackSources {
    try {
      return this.state.readJson(PACK_SOURCES_FILE, PackSources, {});
    } catch {
      // A damaged record only loses provenance, never a pack.
      return {};
    }
  }

  recordPush(folder: string, hash: string, client: string, clientName: string): void {
    const all = this.read();
    all[folder] = { hash, client, clientName, at: new Date().toISOString() };
    this.state.writeJson(PACK_SOURCES_FILE, all);
  }

  sourceOf(folder: string, hash: string): PackSource {
    const pushed = this.read()[folder];
    if (pushed && pushed.hash === hash && hash !== "")
      return { source: "push", client: pushed.client, clientName: pushed.clientName, at: pushed.at };
    return { source: "owner" };
  }
}

/** One line's worth for `kiln-node models`. */
export function describeSource(source: PackSource): string {
  if (source.source === "owner") return "owner";
  const at = source.at ? ` at ${source.at.slice(0, 16).replace("T", " ")} UTC` : "";
  return `pushed by ${source.clientName ?? source.client ?? "an app"}${at}`;
}
