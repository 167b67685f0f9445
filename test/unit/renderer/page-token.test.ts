import { describe, expect, it } from "vitest";
import { type PageAccess, TOKEN_KEY, takePageToken } from "../../../renderer/api/page-token";

function page(href: string, stored: Record<string, string> = {}) {
  const storage = new Map(Object.entries(stored));
  const replaced: string[] = [];
  const access: PageAccess = {
    location: { href },
    history: { state: { view: 1 }, replaceState: (_data, _unused, url) => replaced.push(String(url)) },
    storage: { getItem: (k) => storage.get(k) ?? null, setItem: (k, v) => void storage.set(k, v) },
  };
  return { access, storage, replaced };
}

describe("page token", () => {
  it("takes the token from the address, keeps it for the tab and removes it from the address bar", () => {
    const p = page("http://studio:7870/?token=s3cr%2Bt&view=farm#top");
    expect(takePageToken(p.access)).toBe("s3cr+t");
    expect(p.storage.get(TOKEN_KEY)).toBe("s3cr+t");
    expect(p.replaced).toEqual(["http://studio:7870/?view=farm#top"]);
  });

  it("uses the kept token after a reload", () => {
    const p = page("http://studio:7870/", { [TOKEN_KEY]: "kept" });
    expect(takePageToken(p.access)).toBe("kept");
    expect(p.replaced).toEqual([]);
  });

  it("has none when neither has one", () => {
    expect(takePageToken(page("http://studio:7870/").access)).toBeNull();
  });
});
