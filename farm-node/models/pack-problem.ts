/**
 * Why a model pack cannot be used, worded for the person who installed it:
 * which file, what is wrong, what to do. A pack with a problem is listed as
 * unavailable with this message; it never stops the node.
 */
export class PackProblem extends Error {
  override name = "PackProblem";
}
