import { create } from "zustand";

export interface Notice {
  id: number;
  kind: "info" | "error";
  text: string;
}

export interface NoticeState {
  notices: Notice[];
  nextId: number;
}

/** At most this many notices stay on screen; older ones give way. */
const MAX_NOTICES = 4;

export function addNotice(state: NoticeState, kind: Notice["kind"], text: string): NoticeState {
  const notice = { id: state.nextId, kind, text };
  return { nextId: state.nextId + 1, notices: [...state.notices, notice].slice(-MAX_NOTICES) };
}

export function dismissNotice(state: NoticeState, id: number): NoticeState {
  return { ...state, notices: state.notices.filter((n) => n.id !== id) };
}

/** Results of actions that have no field to show them next to (a failed cancel, a queued re-run). */
export const useNoticeStore = create<NoticeState>()(() => ({ notices: [], nextId: 1 }));
