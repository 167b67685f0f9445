import { create } from "zustand";
import type { ResizeMode } from "../../shared/img2img";
import type { SeedMode } from "../../shared/job";
import type { ImageSummary, StoredInitImage } from "../../shared/ui-api";
import { EMPTY_MASK, type MaskDrawing } from "../model/mask-drawing";
import { defaultPreferences, type Preferences } from "./settings-store";

/** The prompt form as typed: numbers stay text until submission, so a half-typed value is never lost. */
export interface PromptDraft {
  prompt: string;
  negativePrompt: string;
  model: string;
  width: string;
  height: string;
  /** Empty: the model's default. */
  steps: string;
  /** Empty: the model's default. */
  cfg: string;
  seed: string;
  /** Keep the seed after Render; otherwise a new one is drawn for the next job. */
  seedLocked: boolean;
  seedMode: SeedMode;
  count: string;
  gridEnabled: boolean;
  grid: string;
  /** Favour devices with less energy per image, the job ending at most 10% later. */
  preferEfficient: boolean;
  /** img2img: the picture in the app's init image store; null for text-to-image. Lives in memory only. */
  initImage: StoredInitImage | null;
  /** Denoising strength, 0.01–1. */
  strength: string;
  resizeMode: ResizeMode;
  /** Inpainting: what the artist painted over the init image (stored as a PNG when the job is submitted). */
  mask: MaskDrawing;
  maskBlur: string;
  onlyMasked: boolean;
  /** Only masked: pixels kept around the mask's box. */
  maskPadding: string;
  /** Hires fix (text-to-image only): a second pass at scale × the size. */
  hiresEnabled: boolean;
  hiresScale: string;
  hiresStrength: string;
  /** Empty: the job's steps. */
  hiresSteps: string;
  /** "latent", "Lanczos" or an upscaler pack's name. */
  hiresUpscaler: string;
}

export type FormField =
  | "prompt"
  | "negativePrompt"
  | "model"
  | "width"
  | "height"
  | "steps"
  | "cfg"
  | "seed"
  | "count"
  | "grid"
  | "initImage"
  | "strength"
  | "resizeMode"
  | "mask"
  | "maskBlur"
  | "maskPadding"
  | "hiresScale"
  | "hiresStrength"
  | "hiresSteps"
  | "hiresUpscaler";

export type FieldMessages = Partial<Record<FormField, string>>;

export interface PromptState {
  draft: PromptDraft;
  /** Fields left at least once: their errors show from then on, not while first typed. */
  touched: Partial<Record<FormField, true>>;
  /** Render was pressed: every error shows. */
  attempted: boolean;
  /** The coordinator's field errors of the last submission, until that field changes. */
  serverErrors: FieldMessages;
  /** The coordinator's error that names no field. */
  formError: string | null;
  submitting: boolean;
  /** The job this form queued last: the Create view shows its images as they land. */
  lastJobId: string | null;
}

/** The form's fields a draft key belongs to (seedLocked and seedMode belong to the seed). */
const FIELD_OF: Record<keyof PromptDraft, FormField> = {
  prompt: "prompt",
  negativePrompt: "negativePrompt",
  model: "model",
  width: "width",
  height: "height",
  steps: "steps",
  cfg: "cfg",
  seed: "seed",
  seedLocked: "seed",
  seedMode: "seed",
  count: "count",
  gridEnabled: "grid",
  grid: "grid",
  preferEfficient: "count",
  initImage: "initImage",
  strength: "strength",
  resizeMode: "resizeMode",
  mask: "mask",
  maskBlur: "maskBlur",
  onlyMasked: "maskPadding",
  maskPadding: "maskPadding",
  hiresEnabled: "hiresScale",
  hiresScale: "hiresScale",
  hiresStrength: "hiresStrength",
  hiresSteps: "hiresSteps",
  hiresUpscaler: "hiresUpscaler",
};

export function draftFromPreferences(p: Preferences, seed: number): PromptDraft {
  return {
    prompt: "",
    negativePrompt: "",
    model: p.model ?? "",
    width: String(p.width),
    height: String(p.height),
    steps: p.steps === null ? "" : String(p.steps),
    cfg: p.cfg === null ? "" : String(p.cfg),
    seed: String(seed),
    seedLocked: false,
    seedMode: "increment",
    count: String(p.count),
    gridEnabled: false,
    grid: "",
    preferEfficient: false,
    initImage: null,
    strength: String(p.strength),
    resizeMode: "resize",
    mask: EMPTY_MASK,
    maskBlur: "4",
    onlyMasked: false,
    maskPadding: "32",
    hiresEnabled: false,
    hiresScale: "2",
    hiresStrength: "0.7",
    hiresSteps: "",
    hiresUpscaler: "latent",
  };
}

/** A new init image: its own blank mask (a mask belongs to the picture it was painted over). */
export function setInitImage(state: PromptState, image: StoredInitImage | null): PromptState {
  return editDraft(state, { initImage: image, mask: EMPTY_MASK });
}

/**
 * A gallery image as the init image: rendered at its own size, and with its
 * prompts when the form has none yet (the artist's own prompt is never replaced).
 */
export function initImageFromGallery(state: PromptState, stored: StoredInitImage, image: ImageSummary): PromptState {
  const prompts =
    state.draft.prompt.trim() === "" ? { prompt: image.prompt, negativePrompt: image.negativePrompt } : {};
  const next = setInitImage(state, stored);
  return editDraft(next, { width: String(stored.width), height: String(stored.height), ...prompts });
}

/** An edit clears the coordinator's complaint about the edited field (it may be fixed now). */
export function editDraft(state: PromptState, patch: Partial<PromptDraft>): PromptState {
  const serverErrors = { ...state.serverErrors };
  for (const key of Object.keys(patch) as (keyof PromptDraft)[]) delete serverErrors[FIELD_OF[key]];
  return { ...state, draft: { ...state.draft, ...patch }, serverErrors, formError: null };
}

export const usePromptStore = create<PromptState>()(() => ({
  draft: draftFromPreferences(defaultPreferences, 0),
  touched: {},
  attempted: false,
  serverErrors: {},
  formError: null,
  submitting: false,
  lastJobId: null,
}));
