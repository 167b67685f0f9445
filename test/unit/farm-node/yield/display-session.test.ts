import { describe, expect, it } from "vitest";
import { defaultYieldMode } from "../../../../farm-node/yield/display-session";

describe("--yield's default", () => {
  it("is auto on a machine with a display, in the environment or as a logged-in graphical session", () => {
    expect(defaultYieldMode({ DISPLAY: ":0" }, [])).toBe("auto");
    expect(defaultYieldMode({ WAYLAND_DISPLAY: "wayland-0" }, [])).toBe("auto");
    // A node started by systemd has no $DISPLAY; the owner's desktop session is in logind.
    expect(defaultYieldMode({}, ["tty", "wayland"])).toBe("auto");
  });

  it("is never on a headless box (only text logins, or none)", () => {
    expect(defaultYieldMode({}, [])).toBe("never");
    expect(defaultYieldMode({ DISPLAY: "" }, ["tty", "unspecified"])).toBe("never");
  });
});
