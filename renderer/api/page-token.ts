/** Where the browser UI keeps the access token for the tab's lifetime (survives reloads, not the tab). */
export const TOKEN_KEY = "kiln.token";

export interface PageAccess {
  location: { href: string };
  history: { state: unknown; replaceState(data: unknown, unused: string, url?: string | null): void };
  storage: { getItem(key: string): string | null; setItem(key: string, value: string): void };
}

/**
 * The access token of the browser UI: `kiln serve` prints an address with
 * `?token=…`. The token is moved out of the address bar (so it is not
 * bookmarked, shared in a screenshot or sent as a Referer) into sessionStorage.
 */
export function takePageToken(page: PageAccess): string | null {
  const url = new URL(page.location.href);
  const fromUrl = url.searchParams.get("token");
  if (fromUrl) {
    try {
      page.storage.setItem(TOKEN_KEY, fromUrl);
    } catch {
      // Storage may be disabled; the token still works until the next reload.
    }
    url.searchParams.delete("token");
    page.history.replaceState(page.history.state, "", url.toString());
    return fromUrl;
  }
  try {
    return page.storage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}
