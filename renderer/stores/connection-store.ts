import { create } from "zustand";
import type { ConnectionStatus } from "../api/ui-transport";

/** Whether the coordinator is reachable, for the banner; written by the transport's status callback. */
export const useConnectionStore = create<{ status: ConnectionStatus }>()(() => ({ status: { state: "connecting" } }));
