import { EventEmitter } from "node:events";
import { pathToFileURL } from "node:url";
import type { Session, WebContents } from "electron";
import { describe, expect, it, vi } from "vitest";
import {
  CSP,
  DEV_CSP,
  guardNavigation,
  handleWindowOpen,
  hardenSession,
  isAllowedSender,
  isExternalHttpUrl,
} from "../../../electron/main/security";

const INDEX_HTML = "/opt/Kiln/resources/app/out/renderer/index.html";
const built = { kind: "file", indexHtml: INDEX_HTML } as const;
const dev = { kind: "dev", url: "http://localhost:5173/" } as const;

function directives(policy: string): Map<string, string[]> {
  return new Map(
    policy.split(";").map((d) => {
      const [name, ...values] = d.trim().split(/\s+/);
      return [name as string, values];
    }),
  );
}

describe("content security policy", () => {
  it("allows only our own scripts, styles and connections, and images from the image scheme", () => {
    const csp = directives(CSP);
    expect(csp.get("default-src")).toEqual(["'self'"]);
    expect(csp.get("script-src")).toEqual(["'self'"]);
    expect(csp.get("style-src")).toEqual(["'self'"]);
    expect(csp.get("connect-src")).toEqual(["'self'"]);
    expect(csp.get("img-src")).toEqual(["'self'", "data:", "blob:", "kiln-image:"]);
    expect(csp.get("object-src")).toEqual(["'none'"]);
    expect(CSP).not.toMatch(/unsafe-eval|file:|\*/);
  });

  it("loosens only script-src for the dev server's inline React Refresh preamble", () => {
    const strict = directives(CSP);
    const loose = directives(DEV_CSP);
    expect(loose.get("script-src")).toEqual(["'self'", "'unsafe-inline'"]);
    loose.delete("script-src");
    strict.delete("script-src");
    expect(loose).toEqual(strict);
  });
});

describe("isAllowedSender", () => {
  it("accepts the built index.html, with or without a hash route or query", () => {
    expect(isAllowedSender(`file://${INDEX_HTML}`, built)).toBe(true);
    expect(isAllowedSender(`file://${INDEX_HTML}#/jobs/j1`, built)).toBe(true);
    expect(isAllowedSender(`file://${INDEX_HTML}?view=nodes`, built)).toBe(true);
  });

  it("refuses other files, hosts, schemes and garbage", () => {
    for (const url of [
      "file:///tmp/evil.html",
      "file:///opt/Kiln/resources/app/out/renderer/other.html",
      `file://${INDEX_HTML.replace("/out/", "/out/../evil/")}`,
      `file://fileserver${INDEX_HTML}`,
      "https://evil.example/index.html",
      "http://localhost:5173/",
      "kiln-image://image/?path=/x.png",
      "about:blank",
      "devtools://devtools/bundled/inspector.html",
      "not a url",
      "",
    ]) {
      expect(isAllowedSender(url, built), url).toBe(false);
    }
  });

  it("accepts the dev server's origin only", () => {
    expect(isAllowedSender("http://localhost:5173/", dev)).toBe(true);
    expect(isAllowedSender("http://localhost:5173/src/main.tsx", dev)).toBe(true);
    expect(isAllowedSender("http://localhost:5174/", dev)).toBe(false);
    expect(isAllowedSender("http://127.0.0.1:5173/", dev)).toBe(false);
    expect(isAllowedSender(`file://${INDEX_HTML}`, dev)).toBe(false);
  });
});

describe("links and navigation", () => {
  it("treats only http and https as external links", () => {
    expect(isExternalHttpUrl("https://kiln.example/docs")).toBe(true);
    expect(isExternalHttpUrl("http://10.0.0.7:7878/health")).toBe(true);
    for (const url of [
      "javascript:alert(1)",
      "file:///etc/passwd",
      "smb://server/share",
      "kiln-image://image/?path=/a.png",
      "data:text/html,<script>1</script>",
      "mailto:a@b.c",
      "/relative",
      "",
    ]) {
      expect(isExternalHttpUrl(url), url).toBe(false);
    }
  });

  it("denies every new window and sends web links to the system browser", () => {
    const openExternal = vi.fn(async () => undefined);
    expect(handleWindowOpen("https://kiln.example/", openExternal)).toEqual({ action: "deny" });
    expect(openExternal).toHaveBeenCalledWith("https://kiln.example/");
    expect(handleWindowOpen("file:///etc/passwd", openExternal)).toEqual({ action: "deny" });
    expect(handleWindowOpen("javascript:alert(1)", openExternal)).toEqual({ action: "deny" });
    expect(openExternal).toHaveBeenCalledTimes(1);
  });

  it("blocks every navigation and webview, and opens web links outside", () => {
    const contents = Object.assign(new EventEmitter(), { setWindowOpenHandler: vi.fn() });
    const openExternal = vi.fn(async () => undefined);
    guardNavigation(contents as unknown as WebContents, openExternal);

    const navigate = (url: string) => {
      const event = { preventDefault: vi.fn() };
      contents.emit("will-navigate", event, url);
      return event.preventDefault;
    };
    expect(navigate("https://kiln.example/")).toHaveBeenCalled();
    expect(navigate("file:///tmp/evil.html")).toHaveBeenCalled();
    expect(navigate("http://localhost:5173/")).toHaveBeenCalled();
    expect(openExternal.mock.calls).toEqual([["https://kiln.example/"], ["http://localhost:5173/"]]);

    const webview = { preventDefault: vi.fn() };
    contents.emit("will-attach-webview", webview);
    expect(webview.preventDefault).toHaveBeenCalled();

    const openHandler = contents.setWindowOpenHandler.mock.calls[0]?.[0] as (d: { url: string }) => unknown;
    expect(openHandler({ url: "file:///etc/passwd" })).toEqual({ action: "deny" });
  });

  it("survives a browser that cannot be opened", async () => {
    const openExternal = vi.fn(async () => {
      throw new Error("no browser");
    });
    expect(handleWindowOpen("https://kiln.example/", openExternal)).toEqual({ action: "deny" });
    await new Promise((r) => setTimeout(r, 0));
  });
});

describe("hardenSession", () => {
  it("puts the CSP on every response, replacing any other, and denies every permission but our page's clipboard write", () => {
    let onHeaders: ((details: unknown, callback: (r: unknown) => void) => void) | undefined;
    let onPermission:
      | ((c: unknown, p: string, callback: (granted: boolean) => void, details: unknown) => void)
      | undefined;
    let onCheck: ((c: unknown, p: string, origin: string, details: unknown) => boolean) | undefined;
    const session = {
      webRequest: { onHeadersReceived: (l: typeof onHeaders) => (onHeaders = l) },
      setPermissionRequestHandler: (h: typeof onPermission) => (onPermission = h),
      setPermissionCheckHandler: (h: typeof onCheck) => (onCheck = h),
    };
    hardenSession(session as unknown as Session, CSP, built);

    const callback = vi.fn();
    onHeaders?.(
      { responseHeaders: { "content-type": ["text/html"], "content-security-policy": ["default-src *"] } },
      callback,
    );
    expect(callback).toHaveBeenCalledWith({
      responseHeaders: { "content-type": ["text/html"], "Content-Security-Policy": [CSP] },
    });
    onHeaders?.({}, callback);
    expect(callback).toHaveBeenLastCalledWith({ responseHeaders: { "Content-Security-Policy": [CSP] } });

    const ours = pathToFileURL(INDEX_HTML).href;
    const request = (permission: string, requestingUrl: string, isMainFrame = true) => {
      const granted = vi.fn();
      onPermission?.({}, permission, granted, { requestingUrl, isMainFrame });
      return granted.mock.calls[0]?.[0];
    };
    const check = (permission: string, requestingUrl: string, isMainFrame = true) =>
      onCheck?.({ getURL: () => requestingUrl }, permission, "file://", { requestingUrl, isMainFrame });
    for (const permission of ["media", "notifications", "geolocation", "clipboard-read", "openExternal"]) {
      expect(request(permission, ours)).toBe(false);
      expect(check(permission, ours)).toBe(false);
    }
    // "Copy parameters" writes the clipboard: Chromium checks, then asks, before every navigator.clipboard.writeText.
    expect(request("clipboard-sanitized-write", ours)).toBe(true);
    expect(check("clipboard-sanitized-write", ours)).toBe(true);
    // Nobody else gets it: another page, another file, or a frame inside ours.
    for (const url of ["https://example.com/", pathToFileURL("/tmp/other.html").href]) {
      expect(request("clipboard-sanitized-write", url)).toBe(false);
      expect(check("clipboard-sanitized-write", url)).toBe(false);
    }
    expect(request("clipboard-sanitized-write", ours, false)).toBe(false);
    expect(check("clipboard-sanitized-write", ours, false)).toBe(false);
  });
});
