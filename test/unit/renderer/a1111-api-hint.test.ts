import { describe, expect, it } from "vitest";
import { a1111ApiHint } from "../../../renderer/model/a1111-api-hint";

describe("the A1111 panel's line under its switch", () => {
  it("says starting, and asks again, for a switch that is on but neither serves nor says why yet", () => {
    expect(a1111ApiHint({ enabled: true, port: 7860, url: null, problem: null })).toEqual({
      text: "Starting on port 7860…",
      starting: true,
    });
  });

  it("says serving with the address, why it does not serve, or off", () => {
    expect(a1111ApiHint({ enabled: true, port: 7860, url: "http://127.0.0.1:7860", problem: null }).text).toMatch(
      /^Serving: enter http:\/\/127\.0\.0\.1:7860 as the AUTOMATIC1111 base URL/,
    );
    expect(a1111ApiHint({ enabled: true, port: 80, url: null, problem: "port 80 is in use" })).toEqual({
      text: "Not served: port 80 is in use.",
      starting: false,
    });
    expect(a1111ApiHint({ enabled: false, port: 7860, url: null, problem: null })).toMatchObject({
      text: expect.stringMatching(/^Off\./),
      starting: false,
    });
  });
});
