/**
 * The fixed lists of A1111's API as Kiln fills them: what a client offers its
 * user in pickers. Only what a Kiln farm really runs is listed, so a client
 * never offers a choice that would be ignored.
 */

/** Samplers Kiln's pipelines run (farm-node's sampler plans), A1111 spelling; `options` as A1111 has them. */
export const SAMPLERS = [
  { name: "Euler", aliases: ["k_euler"], options: {} },
  { name: "Euler a", aliases: ["k_euler_a", "k_euler_ancestral"], options: { uses_ensd: "True" } },
  { name: "LCM", aliases: ["k_lcm"], options: {} },
];

/** The canonical name of a sampler a client asked for (name or alias, any case), or null when Kiln has none such. */
export function resolveSampler(wanted: string): string | null {
  const key = wanted.trim().toLowerCase();
  if (key === "euler ancestral") return "Euler a";
  const found = SAMPLERS.find((s) => s.name.toLowerCase() === key || s.aliases.includes(key));
  return found?.name ?? null;
}

/** A1111 1.9's schedulers list; Kiln's models each run their own schedule, which is A1111's "Automatic". */
export const SCHEDULERS = [
  { name: "automatic", label: "Automatic", aliases: null, default_rho: -1, need_inner_model: false },
];

/** No upscaler packs yet: A1111 always lists "None". */
export const UPSCALERS = [{ name: "None", model_name: null, model_path: null, model_url: null, scale: 4 }];
