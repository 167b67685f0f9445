import { describe, expect, it } from "vitest";
import { checkDraft } from "../../../renderer/model/job-draft";
import { draftFromPreferences } from "../../../renderer/stores/prompt-store";
import { defaultPreferences } from "../../../renderer/stores/settings-store";
import { JobSpec } from "../../../shared/job";
import { model } from "./ui-fixtures";

describe("the Create form's 'Prefer efficient devices' switch", () => {
  const draft = { ...draftFromPreferences(defaultPreferences, 42), prompt: "a lighthouse", model: "kiln-demo" };

  it("is off by default and asks for nothing", () => {
    expect(draft.preferEfficient).toBe(false);
    expect(checkDraft(draft, [model({ name: "kiln-demo" })]).spec).not.toHaveProperty("prefer");
  });

  it("asks the job for efficient devices, in the shape the coordinator takes", () => {
    const spec = checkDraft({ ...draft, preferEfficient: true }, [model({ name: "kiln-demo" })]).spec;
    expect(spec?.prefer).toBe("efficient");
    expect(JobSpec.parse(spec).prefer).toBe("efficient");
  });
});
