import { create } from "zustand";

export type View = "create" | "gallery" | "farm";

/** Which view is open; a queue card's "Open in gallery" switches it too. */
export const useNavStore = create<{ view: View; show(view: View): void }>()((set) => ({
  view: "create",
  show: (view) => set({ view }),
}));
