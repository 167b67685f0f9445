import { type DragEvent, useCallback, useEffect, useRef, useState } from "react";
import type { ResizeMode } from "../../shared/img2img";
import { useActions } from "../api/actions-context";
import { UiError } from "../api/ui-error";
import { EMPTY_MASK, invertMask } from "../model/mask-drawing";
import { editDraft, type PromptDraft, setInitImage, usePromptStore } from "../stores/prompt-store";
import { useSettingsStore } from "../stores/settings-store";
import { FieldError, fieldErrorId, invalidProps } from "./FieldError";
import { MaskEditor, type MaskTool } from "./MaskEditor";
import { NumberField } from "./NumberField";

const RESIZE_MODES: { value: ResizeMode; label: string }[] = [
  { value: "resize", label: "Just resize" },
  { value: "crop", label: "Crop and resize" },
  { value: "fill", label: "Resize and fill" },
];

interface Props {
  draft: PromptDraft;
  errors: {
    initImage?: string;
    strength?: string;
    resizeMode?: string;
    mask?: string;
    maskBlur?: string;
    maskPadding?: string;
  };
  onBlur(field: "strength" | "maskBlur" | "maskPadding"): void;
}

function edit(patch: Partial<PromptDraft>): void {
  usePromptStore.setState((s) => editDraft(s, patch));
}

/** The first picture a drop or a paste carries, if any. */
function pictureOf(data: DataTransfer | null): File | null {
  for (const file of data?.files ?? []) if (file.type.startsWith("image/")) return file;
  return null;
}

/**
 * img2img on the Create view: a picture dropped here, pasted anywhere on the
 * view (Ctrl/Cmd+V; a text paste stays a text paste) or picked; its preview
 * with the mask painted over it (brush, eraser, size, invert, clear); the
 * denoising strength, resize mode and the mask's blur and "only masked".
 * The picture goes to the app's init image store at once, so a refusal shows
 * here before Render.
 */
export function InitImageField({ draft, errors, onBlur }: Props) {
  const actions = useActions();
  const brushSize = useSettingsStore((s) => s.preferences.brushSize);
  const setPreferences = useSettingsStore((s) => s.setPreferences);
  const [tool, setTool] = useState<MaskTool>("brush");
  const [storing, setStoring] = useState(false);
  const [dragging, setDragging] = useState(false);
  const picker = useRef<HTMLInputElement>(null);
  const image = draft.initImage;

  const load = useCallback(
    async (file: File) => {
      setStoring(true);
      try {
        await actions.loadInitImageFile(file);
      } catch (error) {
        const field = error instanceof UiError ? error.fields[0] : undefined;
        const message = field ? `Init image ${field.message}` : (error as Error).message;
        usePromptStore.setState((s) => ({ serverErrors: { ...s.serverErrors, initImage: message } }));
      } finally {
        setStoring(false);
      }
    },
    [actions],
  );

  useEffect(() => {
    const onPaste = (e: ClipboardEvent) => {
      const file = pictureOf(e.clipboardData);
      if (!file) return;
      // Text copied from an office program also carries a picture of it: into a text field, the text wins.
      const target = e.target as HTMLElement | null;
      const typing = target?.tagName === "TEXTAREA" || target?.tagName === "INPUT";
      if (typing && e.clipboardData?.types.includes("text/plain")) return;
      e.preventDefault();
      void load(file);
    };
    window.addEventListener("paste", onPaste);
    return () => window.removeEventListener("paste", onPaste);
  }, [load]);

  function onDrop(e: DragEvent) {
    e.preventDefault();
    setDragging(false);
    const file = pictureOf(e.dataTransfer);
    if (file) void load(file);
  }

  function onDragOver(e: DragEvent) {
    if (![...e.dataTransfer.types].includes("Files")) return;
    e.preventDefault();
    setDragging(true);
  }

  return (
    <fieldset className="init-image">
      <legend>Init image</legend>
      <section
        className={`init-drop${dragging ? " dragging" : ""}${image ? " has-image" : ""}`}
        aria-label="Init image drop zone"
        onDragOver={onDragOver}
        onDragLeave={() => setDragging(false)}
        onDrop={onDrop}
      >
        {image ? (
          <MaskEditor
            image={image}
            url={actions.initImageUrl(image.sha256)}
            drawing={draft.mask}
            tool={tool}
            brushSize={brushSize}
            onChange={(mask) => edit({ mask })}
          />
        ) : (
          <p className="hint">{storing ? "Storing the picture…" : "Drop a picture here or paste one (Ctrl+V)."}</p>
        )}
        <div className="init-pick">
          <button
            type="button"
            id="field-init-image"
            onClick={() => picker.current?.click()}
            {...invalidProps("field-init-image", errors.initImage)}
          >
            {image ? "Replace picture…" : "Choose picture…"}
          </button>
          <input
            ref={picker}
            className="visually-hidden"
            tabIndex={-1}
            aria-label="Init image file"
            type="file"
            accept="image/png,image/jpeg,image/webp"
            onChange={(e) => {
              const file = e.target.files?.[0];
              e.target.value = "";
              if (file) void load(file);
            }}
          />
          {image && (
            <>
              <span className="hint">
                {image.width}×{image.height}
              </span>
              <button
                type="button"
                className="link-button"
                onClick={() => usePromptStore.setState((s) => setInitImage(s, null))}
              >
                Remove init image
              </button>
            </>
          )}
        </div>
      </section>
      <FieldError id={fieldErrorId("field-init-image")} message={errors.initImage} />

      {image && (
        <>
          <div className="mask-tools" role="toolbar" aria-label="Mask tools">
            <button type="button" aria-pressed={tool === "brush"} onClick={() => setTool("brush")}>
              Brush
            </button>
            <button type="button" aria-pressed={tool === "eraser"} onClick={() => setTool("eraser")}>
              Eraser
            </button>
            <label className="brush-size">
              <span>Brush size</span>
              <input
                type="range"
                min={2}
                max={200}
                value={brushSize}
                onChange={(e) => setPreferences({ brushSize: Number(e.target.value) })}
              />
              <output>{brushSize}</output>
            </label>
            <button type="button" onClick={() => edit({ mask: invertMask(draft.mask) })}>
              Invert mask
            </button>
            <button type="button" onClick={() => edit({ mask: EMPTY_MASK })}>
              Clear mask
            </button>
          </div>
          <p className="hint" id="field-mask-hint">
            Paint where the picture should change; with nothing painted the whole picture is reworked.
          </p>
          <FieldError id="field-mask-error" message={errors.mask} />

          <div className="field">
            <label htmlFor="field-strength">Denoising strength</label>
            <div className="strength-row">
              <input
                type="range"
                aria-label="Denoising strength slider"
                min={0.01}
                max={1}
                step={0.01}
                value={Number(draft.strength) || 0.75}
                onChange={(e) => edit({ strength: e.target.value })}
              />
              <input
                id="field-strength"
                type="number"
                inputMode="decimal"
                min={0.01}
                max={1}
                step={0.01}
                value={draft.strength}
                onChange={(e) => edit({ strength: e.target.value })}
                onBlur={() => onBlur("strength")}
                {...invalidProps("field-strength", errors.strength)}
              />
            </div>
            <FieldError id={fieldErrorId("field-strength")} message={errors.strength} />
          </div>
          <div className="field-row">
            <div className="field">
              <label htmlFor="field-resize-mode">Resize mode</label>
              <select
                id="field-resize-mode"
                value={draft.resizeMode}
                onChange={(e) => edit({ resizeMode: e.target.value as ResizeMode })}
                {...invalidProps("field-resize-mode", errors.resizeMode)}
              >
                {RESIZE_MODES.map((m) => (
                  <option key={m.value} value={m.value}>
                    {m.label}
                  </option>
                ))}
              </select>
            </div>
            <NumberField
              id="field-mask-blur"
              label="Mask blur"
              value={draft.maskBlur}
              onChange={(maskBlur) => edit({ maskBlur })}
              onBlur={() => onBlur("maskBlur")}
              error={errors.maskBlur}
            />
            <label className="check only-masked">
              <input
                type="checkbox"
                checked={draft.onlyMasked}
                onChange={(e) => edit({ onlyMasked: e.target.checked })}
              />
              <span>Only masked</span>
            </label>
          </div>
          <FieldError id={fieldErrorId("field-resize-mode")} message={errors.resizeMode} />
          <FieldError id={fieldErrorId("field-mask-blur")} message={errors.maskBlur} />
          {draft.onlyMasked && (
            <>
              <NumberField
                id="field-mask-padding"
                label="Masked padding"
                value={draft.maskPadding}
                onChange={(maskPadding) => edit({ maskPadding })}
                onBlur={() => onBlur("maskPadding")}
                error={errors.maskPadding}
              />
              <FieldError id={fieldErrorId("field-mask-padding")} message={errors.maskPadding} />
            </>
          )}
        </>
      )}
    </fieldset>
  );
}
