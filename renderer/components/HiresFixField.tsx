import type { PromptDraft } from "../stores/prompt-store";
import { FieldError, fieldErrorId, invalidProps } from "./FieldError";
import { NumberField } from "./NumberField";

interface Props {
  draft: PromptDraft;
  /** "Latent", "Lanczos" and the farm's upscaler packs. */
  upscalers: { value: string; label: string }[];
  errors: { hiresScale?: string; hiresStrength?: string; hiresSteps?: string; hiresUpscaler?: string };
  onChange(patch: Partial<PromptDraft>): void;
  onBlur(field: "hiresScale" | "hiresStrength" | "hiresSteps"): void;
}

/**
 * A1111's hires fix: render at the size, upscale by a factor (in latent space
 * or through an upscaler), rework at the larger size. Text-to-image only, as
 * the job schema says: with an init image it is shown off, saying why.
 */
export function HiresFixField({ draft, upscalers, errors, onChange, onBlur }: Props) {
  const img2img = draft.initImage !== null;
  const on = draft.hiresEnabled && !img2img;
  return (
    <div className="field hires-field">
      <label className="check">
        <input
          type="checkbox"
          checked={on}
          disabled={img2img}
          aria-describedby={img2img ? "hires-off-reason" : undefined}
          onChange={(e) => onChange({ hiresEnabled: e.target.checked })}
        />
        <span>Hires fix</span>
      </label>
      {img2img && (
        <p className="hint" id="hires-off-reason">
          Hires fix is for text-to-image: remove the init image to use it.
        </p>
      )}
      {on && (
        <>
          <div className="field-row">
            <NumberField
              id="field-hires-scale"
              label="Upscale by"
              decimal
              value={draft.hiresScale}
              onChange={(hiresScale) => onChange({ hiresScale })}
              onBlur={() => onBlur("hiresScale")}
              error={errors.hiresScale}
            />
            <NumberField
              id="field-hires-steps"
              label="Hires steps"
              value={draft.hiresSteps}
              placeholder="as Steps"
              onChange={(hiresSteps) => onChange({ hiresSteps })}
              onBlur={() => onBlur("hiresSteps")}
              error={errors.hiresSteps}
            />
            <NumberField
              id="field-hires-strength"
              label="Hires denoising strength"
              decimal
              value={draft.hiresStrength}
              onChange={(hiresStrength) => onChange({ hiresStrength })}
              onBlur={() => onBlur("hiresStrength")}
              error={errors.hiresStrength}
            />
          </div>
          <FieldError id={fieldErrorId("field-hires-scale")} message={errors.hiresScale} />
          <FieldError id={fieldErrorId("field-hires-steps")} message={errors.hiresSteps} />
          <FieldError id={fieldErrorId("field-hires-strength")} message={errors.hiresStrength} />
          <div className="field">
            <label htmlFor="field-hires-upscaler">Upscaler</label>
            <select
              id="field-hires-upscaler"
              value={draft.hiresUpscaler}
              onChange={(e) => onChange({ hiresUpscaler: e.target.value })}
              {...invalidProps("field-hires-upscaler", errors.hiresUpscaler)}
            >
              {!upscalers.some((u) => u.value === draft.hiresUpscaler) && (
                <option value={draft.hiresUpscaler}>{draft.hiresUpscaler} (not on the farm now)</option>
              )}
              {upscalers.map((u) => (
                <option key={u.value} value={u.value}>
                  {u.label}
                </option>
              ))}
            </select>
            <FieldError id={fieldErrorId("field-hires-upscaler")} message={errors.hiresUpscaler} />
          </div>
        </>
      )}
    </div>
  );
}
