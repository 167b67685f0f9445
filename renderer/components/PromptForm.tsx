import { type FormEvent, type KeyboardEvent, useEffect, useMemo, useState } from "react";
import { useShallow } from "zustand/react/shallow";
import { useActions } from "../api/actions-context";
import { UiError } from "../api/ui-error";
import { bytesToBase64 } from "../model/base64";
import { farmModels } from "../model/farm-models";
import { encodeGrayPng } from "../model/gray-png";
import { hiresUpscalers, upscalerPacks } from "../model/hires-upscalers";
import { checkDraft, placeServerErrors, withMask } from "../model/job-draft";
import { maskExportSize, maskHasPaint, rasterizeMask, scaleDrawing } from "../model/mask-drawing";
import { modelDevices, modelDevicesText, pickerModels } from "../model/model-devices";
import { randomSeed } from "../model/random-seed";
import { useFarmStore } from "../stores/farm-store";
import { editDraft, type FormField, type PromptDraft, usePromptStore } from "../stores/prompt-store";
import { useSettingsStore } from "../stores/settings-store";
import { FieldError, fieldErrorId, invalidProps } from "./FieldError";
import { GridField } from "./GridField";
import { HiresFixField } from "./HiresFixField";
import { InitImageField } from "./InitImageField";
import { ModelSelect } from "./ModelSelect";
import { NumberField } from "./NumberField";
import { SeedField } from "./SeedField";
import { SizeFields } from "./SizeFields";
import "../styles/prompt.css";

const FIELD_IDS: Record<FormField, string> = {
  prompt: "field-prompt",
  negativePrompt: "field-negative",
  model: "field-model",
  width: "field-width",
  height: "field-height",
  steps: "field-steps",
  cfg: "field-cfg",
  seed: "field-seed",
  count: "field-count",
  grid: "field-grid",
  initImage: "field-init-image",
  strength: "field-strength",
  resizeMode: "field-resize-mode",
  mask: "field-init-image",
  maskBlur: "field-mask-blur",
  maskPadding: "field-mask-padding",
  hiresScale: "field-hires-scale",
  hiresStrength: "field-hires-strength",
  hiresSteps: "field-hires-steps",
  hiresUpscaler: "field-hires-upscaler",
};

function edit(patch: Partial<PromptDraft>): void {
  usePromptStore.setState((s) => editDraft(s, patch));
}

function touch(field: FormField): void {
  usePromptStore.setState((s) => (s.touched[field] ? s : { touched: { ...s.touched, [field]: true } }));
}

/**
 * The prompt form. Errors show once a field is left or Render is pressed
 * (not while a number is half typed); grid syntax errors show as typed. The
 * coordinator's field errors show next to their fields until edited.
 * Ctrl/Cmd+Enter renders from anywhere in the form.
 */
export function PromptForm() {
  const actions = useActions();
  const { draft, touched, attempted, serverErrors, formError, submitting } = usePromptStore(
    useShallow((s) => ({
      draft: s.draft,
      touched: s.touched,
      attempted: s.attempted,
      serverErrors: s.serverErrors,
      formError: s.formError,
      submitting: s.submitting,
    })),
  );
  // Model objects keep their identity across telemetry, so this re-renders only when the farm's models change.
  const models = useFarmStore(useShallow((s) => pickerModels(s.nodes, s.library)));
  const modelLabels = useFarmStore(
    useShallow((s) =>
      pickerModels(s.nodes, s.library).map((m) => modelDevicesText(modelDevices(s.nodes, s.library, m.name))),
    ),
  );
  const packs = useFarmStore(useShallow((s) => upscalerPacks(farmModels(s.nodes))));
  const upscalers = useMemo(() => hiresUpscalers(packs), [packs]);
  const preferredModel = useSettingsStore((s) => s.preferences.model);
  const [queued, setQueued] = useState("");
  const check = checkDraft(draft, models);
  const model = models.find((m) => m.name === draft.model);

  useEffect(() => {
    if (draft.model !== "" || models.length === 0) return;
    const preferred = models.find((m) => m.name === preferredModel) ?? models[0];
    if (preferred) edit({ model: preferred.name });
  }, [draft.model, models, preferredModel]);

  function message(field: FormField): string | undefined {
    const live = field === "grid" && draft.grid.trim() !== "";
    return serverErrors[field] ?? (attempted || touched[field] || live ? check.errors[field] : undefined);
  }

  async function submit() {
    // Ctrl+Enter bypasses the disabled button: pressed twice or held (key repeat), it must not queue the job twice.
    if (usePromptStore.getState().submitting) return;
    usePromptStore.setState({ attempted: true });
    if (!check.spec) {
      const first = (Object.keys(FIELD_IDS) as FormField[]).find((f) => check.errors[f]);
      if (first) document.getElementById(FIELD_IDS[first])?.focus();
      return;
    }
    usePromptStore.setState({ submitting: true, formError: null });
    let spec = check.spec;
    const init = draft.initImage;
    if (init && maskHasPaint(draft.mask)) {
      // The mask goes to the init image store now, at the picture's size: the job names it by sha256.
      try {
        const size = maskExportSize(init.width, init.height);
        const pixels = rasterizeMask(scaleDrawing(draft.mask, size.scale), size.width, size.height);
        const png = pixels.includes(255) ? await encodeGrayPng(pixels, size.width, size.height) : null;
        const stored = png ? await actions.storeInitImage({ data: bytesToBase64(png) }) : null;
        spec = withMask(spec, stored?.sha256 ?? null);
      } catch (error) {
        usePromptStore.setState((s) => ({
          submitting: false,
          serverErrors: { ...s.serverErrors, mask: `The mask could not be stored: ${(error as Error).message}` },
        }));
        return;
      }
    }
    try {
      const result = await actions.submitJob(spec);
      useSettingsStore.getState().setPreferences({
        model: draft.model,
        width: Number(draft.width),
        height: Number(draft.height),
        steps: draft.steps.trim() === "" ? null : Number(draft.steps),
        cfg: draft.cfg.trim() === "" ? null : Number(draft.cfg),
        count: Number(draft.count),
        ...(init ? { strength: Number(draft.strength) } : {}),
      });
      usePromptStore.setState((s) => ({
        submitting: false,
        attempted: false,
        lastJobId: result.jobId,
        touched: {},
        draft: s.draft.seedLocked ? s.draft : { ...s.draft, seed: String(randomSeed()) },
      }));
      setQueued(`Queued ${result.images} image${result.images === 1 ? "" : "s"}`);
    } catch (error) {
      const fields = error instanceof UiError ? error.fields : [];
      const { errors, rest } = placeServerErrors(fields);
      const placed = Object.keys(errors).length > 0;
      usePromptStore.setState({
        submitting: false,
        serverErrors: errors,
        formError: rest.length > 0 ? rest.join("; ") : placed ? null : (error as Error).message,
      });
      setQueued("");
    }
  }

  function onSubmit(e: FormEvent) {
    e.preventDefault();
    void submit();
  }

  function onKeyDown(e: KeyboardEvent<HTMLFormElement>) {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      // Held down, the key repeats every 30 ms or so: each repeat past the first answer would queue the job again.
      if (!e.repeat) void submit();
    }
  }

  const err = {
    prompt: message("prompt"),
    negativePrompt: message("negativePrompt"),
    steps: message("steps"),
    cfg: message("cfg"),
    count: message("count"),
  };
  const img2imgErrors = {
    initImage: message("initImage"),
    strength: message("strength"),
    resizeMode: message("resizeMode"),
    mask: message("mask"),
    maskBlur: message("maskBlur"),
    maskPadding: message("maskPadding"),
  };
  const hiresErrors = {
    hiresScale: message("hiresScale"),
    hiresStrength: message("hiresStrength"),
    hiresSteps: message("hiresSteps"),
    hiresUpscaler: message("hiresUpscaler"),
  };

  return (
    <form className="prompt-form" aria-label="New job" noValidate onSubmit={onSubmit} onKeyDown={onKeyDown}>
      <div className="field">
        <label htmlFor="field-prompt">Prompt</label>
        <textarea
          id="field-prompt"
          rows={4}
          value={draft.prompt}
          placeholder="a lighthouse at dusk, volumetric light"
          onChange={(e) => edit({ prompt: e.target.value })}
          onBlur={() => touch("prompt")}
          {...invalidProps("field-prompt", err.prompt)}
        />
        <FieldError id={fieldErrorId("field-prompt")} message={err.prompt} />
      </div>
      <div className="field">
        <label htmlFor="field-negative">Negative prompt</label>
        <textarea
          id="field-negative"
          rows={2}
          value={draft.negativePrompt}
          onChange={(e) => edit({ negativePrompt: e.target.value })}
          onBlur={() => touch("negativePrompt")}
          {...invalidProps("field-negative", err.negativePrompt)}
        />
        <FieldError id={fieldErrorId("field-negative")} message={err.negativePrompt} />
      </div>

      <InitImageField draft={draft} errors={img2imgErrors} onBlur={touch} />

      <ModelSelect
        value={draft.model}
        models={models}
        labels={modelLabels}
        error={message("model")}
        onChange={(name) => edit({ model: name })}
        onBlur={() => touch("model")}
      />

      <SizeFields
        width={draft.width}
        height={draft.height}
        widthError={message("width")}
        heightError={message("height")}
        onChange={(size) => edit(size)}
        onBlur={touch}
      />

      <div className="field-row">
        <NumberField
          id="field-steps"
          label="Steps"
          value={draft.steps}
          placeholder={model ? String(model.defaultSteps) : "default"}
          onChange={(steps) => edit({ steps })}
          onBlur={() => touch("steps")}
          error={err.steps}
        />
        <NumberField
          id="field-cfg"
          label="CFG scale"
          decimal
          value={draft.cfg}
          placeholder={model ? String(model.defaultGuidance) : "default"}
          onChange={(cfg) => edit({ cfg })}
          onBlur={() => touch("cfg")}
          error={err.cfg}
        />
        <NumberField
          id="field-count"
          label="Images"
          value={draft.count}
          onChange={(count) => edit({ count })}
          onBlur={() => touch("count")}
          error={err.count}
        />
      </div>
      <FieldError id={fieldErrorId("field-steps")} message={err.steps} />
      <FieldError id={fieldErrorId("field-cfg")} message={err.cfg} />
      <FieldError id={fieldErrorId("field-count")} message={err.count} />

      <SeedField
        seed={draft.seed}
        locked={draft.seedLocked}
        mode={draft.seedMode}
        error={message("seed")}
        onChange={edit}
        onBlur={() => touch("seed")}
      />

      <GridField
        enabled={draft.gridEnabled}
        text={draft.grid}
        grid={check.grid}
        error={message("grid")}
        onChange={edit}
        onBlur={() => touch("grid")}
      />

      <HiresFixField draft={draft} upscalers={upscalers} errors={hiresErrors} onChange={edit} onBlur={touch} />

      <div className="field prefer-field">
        <label className="check" title="Favour devices with less energy per image; the job ends at most 10% later">
          <input
            type="checkbox"
            checked={draft.preferEfficient}
            onChange={(e) => edit({ preferEfficient: e.target.checked })}
          />
          <span>Prefer efficient devices</span>
        </label>
        <p className="hint">Less energy per image; the job ends at most 10% later.</p>
      </div>

      {formError && (
        <p className="form-error" role="alert">
          {formError}
        </p>
      )}
      <div className="submit-row">
        <button type="submit" className="primary" disabled={submitting} aria-keyshortcuts="Control+Enter Meta+Enter">
          Render
        </button>
        <span className="submit-total">
          {check.images === null ? "" : `${check.images} image${check.images === 1 ? "" : "s"}`}
        </span>
        <span className="submit-status" role="status">
          {queued}
        </span>
      </div>
    </form>
  );
}
