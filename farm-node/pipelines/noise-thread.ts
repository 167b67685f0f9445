import { parentPort } from "node:worker_threads";
import { type NoiseJob, produceNoise } from "./noise-ring";

/** Entry of the noise thread: one batch's ring at a time, in the order the batches opened them. */
parentPort?.on("message", (job: NoiseJob) => produceNoise(job));
parentPort?.postMessage("ready");
