import { dismissNotice, useNoticeStore } from "../stores/notice-store";
import { Icon } from "./Icon";

/** Outcomes of actions that have no field to sit next to: errors stay until dismissed, info fades by itself. */
export function NoticeArea() {
  const notices = useNoticeStore((s) => s.notices);
  return (
    <div className="notices">
      {notices.map((n) => (
        <div key={n.id} className={`notice notice-${n.kind}`} role={n.kind === "error" ? "alert" : "status"}>
          <p>{n.text}</p>
          <button
            type="button"
            className="icon-button"
            aria-label="Dismiss"
            onClick={() => useNoticeStore.setState((s) => dismissNotice(s, n.id))}
          >
            <Icon name="close" />
          </button>
        </div>
      ))}
    </div>
  );
}
