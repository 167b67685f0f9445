import { type ErrorCode, KilnError } from "../../shared/errors";

/**
 * A result its node sent that is not what it announced (size, hash) or not a
 * PNG of its task's size. The attempt fails as any bad result does, and unlike
 * a download cut by the network it counts toward blocklisting that node.
 */
export class RefusedResult extends KilnError {
  constructor(code: ErrorCode, message: string) {
    super(code, message);
    this.name = "RefusedResult";
  }
}
