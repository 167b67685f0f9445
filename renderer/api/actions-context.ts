import { createContext, useContext } from "react";
import type { Actions } from "./actions";

export const ActionsContext = createContext<Actions | null>(null);

/** The UI's actions (see actions.ts), provided once by main.tsx. */
export function useActions(): Actions {
  const actions = useContext(ActionsContext);
  if (!actions) throw new Error("useActions needs <ActionsContext.Provider> (main.tsx provides it)");
  return actions;
}
