import { describe, expect, it } from "vitest";
import { NodeToken, PairResponse } from "../../../shared/pairing";
import { UiCommands } from "../../../shared/ui-api";

const NODE_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

describe("a node's token is one an HTTP header can carry, from a node at pairing or from a person adding a node", () => {
  it("takes what nodes make (43 base64url characters) and a deployment's own secret", () => {
    expect(
      PairResponse.parse({ nodeId: NODE_ID, token: "Jm1Xq3V0b2tlbi1mcm9tLWEtbm9kZS1hdC1wYWlyaW5n" }).token,
    ).toHaveLength(44);
    expect(NodeToken.parse("a-deployment-secret of some length")).toBe("a-deployment-secret of some length");
  });

  it("refuses a node's token with a line break in it, which would make every later connection throw (and the app's start)", () => {
    const parsed = PairResponse.safeParse({ nodeId: NODE_ID, token: `${"a".repeat(40)}\r\nX-Injected: 1` });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]?.message).toBe("must be printable ASCII (it travels in an HTTP header)");
  });

  it("refuses a 4 MiB token, non-ASCII text and spaces at either end, naming the field when a person adds a node", () => {
    expect(NodeToken.safeParse("x".repeat(4 * 2 ** 20)).success).toBe(false);
    expect(NodeToken.safeParse("пароль-пароль-пароль").success).toBe(false);
    expect(NodeToken.safeParse(" a-deployment-secret").success).toBe(false);
    const added = UiCommands.addNode.args.safeParse({
      host: "render-01.local",
      port: 7878,
      token: "short",
      trustFirstUse: true,
    });
    expect(added.error?.issues.map((i) => [i.path.join("."), i.message])).toEqual([
      ["token", "must be at least 16 characters"],
    ]);
  });
});
