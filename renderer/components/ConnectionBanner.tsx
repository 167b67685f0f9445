import { useConnectionStore } from "../stores/connection-store";

/** Says, over the page (never moving it), when the coordinator cannot be reached and what happens next. */
export function ConnectionBanner() {
  const status = useConnectionStore((s) => s.status);
  if (status.state === "open") return null;
  if (status.state === "refused") {
    return (
      <div className="banner banner-error" role="alert">
        {status.reason}
      </div>
    );
  }
  return (
    <div className="banner" role="status">
      {status.state === "connecting"
        ? "Connecting to Kiln…"
        : `Lost the connection to Kiln. Trying again in ${Math.max(1, Math.round(status.inMs / 1000))} s (attempt ${status.attempt}); nothing you queued is lost.`}
    </div>
  );
}
