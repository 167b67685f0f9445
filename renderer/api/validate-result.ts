import { type UiCommandName, UiCommands, type UiResult } from "../../shared/ui-api";
import { UiError } from "./ui-error";

/** Results are checked at the boundary like events: a coordinator of another version fails loudly here, not deep in a view. */
export function validateResult<C extends UiCommandName>(command: C, result: unknown): UiResult<C> {
  const parsed = UiCommands[command].result.safeParse(result);
  if (!parsed.success) {
    throw new UiError("E_INTERNAL", `the coordinator's answer to ${command} does not match this UI's contract`);
  }
  return parsed.data as UiResult<C>;
}
