import { type KeyboardEvent, useEffect, useRef, useState } from "react";
import { useShallow } from "zustand/react/shallow";
import type { ImageSummary } from "../../shared/ui-api";
import { useActions } from "../api/actions-context";
import { deviceNames } from "../model/device-names";
import { farmModels } from "../model/farm-models";
import { parametersText } from "../model/image-parameters";
import { useFarmStore } from "../stores/farm-store";
import { useGalleryStore } from "../stores/gallery-store";
import { Icon } from "./Icon";
import { UpscaleControl } from "./UpscaleControl";
import "../styles/viewer.css";

/**
 * The selected image in a modal <dialog> (focus trapped, Esc closes, focus
 * returns to the cell): the picture, every parameter, copy as A1111 text,
 * re-run the seed, use it as the Create view's init image, upscale it with
 * an upscaler pack, reveal the file (desktop), ←/→ through the gallery as filtered.
 */
export function ImageViewer({ images }: { images: ImageSummary[] }) {
  const actions = useActions();
  const dialog = useRef<HTMLDialogElement>(null);
  const parameters = useRef<HTMLTextAreaElement>(null);
  const selectedId = useGalleryStore((s) => s.selectedId);
  const select = useGalleryStore((s) => s.select);
  // Tied to the image it is about, so it disappears when the viewer moves on.
  const [copyNote, setCopyNote] = useState({ imageId: "", text: "" });
  // Off while the request is out, so a double click queues one job, not two.
  const [rerunning, setRerunning] = useState(false);
  const at = selectedId === null ? -1 : images.findIndex((i) => i.id === selectedId);
  const image = at >= 0 ? images[at] : undefined;
  const model = useFarmStore(useShallow((s) => farmModels(s.nodes))).find((m) => m.name === image?.model);
  const place = useFarmStore(
    useShallow((s) => {
      if (!image) return { node: "", device: "" };
      return {
        node: s.nodes.find((n) => n.id === image.nodeId)?.name ?? image.nodeId ?? "",
        device: image.device ? (deviceNames(s.nodes).get(image.device) ?? image.device) : "",
      };
    }),
  );

  useEffect(() => {
    const element = dialog.current;
    if (!element) return;
    if (image && !element.open) element.showModal();
    if (!image && element.open) element.close();
  }, [image]);

  async function rerun() {
    if (!image) return;
    setRerunning(true);
    try {
      await actions.rerun(image);
    } finally {
      setRerunning(false);
    }
  }

  function go(step: -1 | 1) {
    const next = images[at + step];
    if (next) select(next.id);
  }

  function onKeyDown(e: KeyboardEvent<HTMLDialogElement>) {
    if (e.target instanceof HTMLTextAreaElement || e.target instanceof HTMLInputElement) return;
    if (e.key === "ArrowLeft") go(-1);
    if (e.key === "ArrowRight") go(1);
  }

  async function copy(text: string) {
    try {
      await navigator.clipboard.writeText(text);
      setCopyNote({ imageId: image?.id ?? "", text: "Copied" });
    } catch {
      // No clipboard API on plain http to another host: select the text for Ctrl+C instead.
      parameters.current?.closest("details")?.setAttribute("open", "");
      parameters.current?.select();
      setCopyNote({ imageId: image?.id ?? "", text: "Press Ctrl+C to copy the selected text" });
    }
  }

  const text = image ? parametersText(image, model) : "";

  return (
    <dialog
      ref={dialog}
      className="viewer"
      aria-labelledby="viewer-title"
      onClose={() => select(null)}
      onKeyDown={onKeyDown}
    >
      {image && (
        <div className="viewer-body">
          <div className="viewer-picture">
            {image.state === "done" && image.path ? (
              <img src={actions.imageUrl(image.path)} alt={`Seed ${image.seed}: ${image.prompt}`} />
            ) : (
              <p className="viewer-placeholder">
                {image.state === "failed"
                  ? `This image failed: ${image.error ?? "no reason given"}`
                  : `This image is ${image.state}.`}
              </p>
            )}
          </div>
          <aside className="viewer-info">
            <header className="viewer-head">
              <h2 id="viewer-title">Seed: {image.seed}</h2>
              <button type="button" className="icon-button" aria-label="Close" onClick={() => select(null)}>
                <Icon name="close" />
              </button>
            </header>
            <dl className="viewer-params">
              <dt>Prompt</dt>
              <dd>{image.prompt}</dd>
              {image.negativePrompt && (
                <>
                  <dt>Negative prompt</dt>
                  <dd>{image.negativePrompt}</dd>
                </>
              )}
              <dt>Model</dt>
              <dd>{image.model}</dd>
              <dt>Size</dt>
              <dd>
                {image.width}×{image.height}
              </dd>
              <dt>Steps</dt>
              <dd>{image.steps}</dd>
              <dt>CFG scale</dt>
              <dd>{image.guidance}</dd>
              {place.node && (
                <>
                  <dt>Rendered on</dt>
                  <dd>{place.device || place.node}</dd>
                </>
              )}
              {image.path && (
                <>
                  <dt>File</dt>
                  <dd className="viewer-path">{image.path}</dd>
                </>
              )}
            </dl>
            <div className="viewer-actions">
              <button type="button" onClick={() => void copy(text)}>
                Copy parameters
              </button>
              <button type="button" className="primary" disabled={rerunning} onClick={() => void rerun()}>
                Re-run seed
              </button>
              {image.state === "done" && (
                <button type="button" onClick={() => void actions.makeInitImage(image)}>
                  Use as init image
                </button>
              )}
              {image.state === "done" && <UpscaleControl images={[image]} />}
              {actions.canReveal && image.path && (
                <button type="button" onClick={() => void actions.reveal(image)}>
                  Reveal in folder
                </button>
              )}
              <span className="viewer-note" role="status">
                {copyNote.imageId === image.id ? copyNote.text : ""}
              </span>
            </div>
            <details className="viewer-a1111">
              <summary>A1111 parameters</summary>
              <textarea ref={parameters} readOnly rows={5} value={text} aria-label="A1111 parameters" />
            </details>
            <nav className="viewer-nav" aria-label="Browse">
              <button type="button" aria-label="Previous image" disabled={at <= 0} onClick={() => go(-1)}>
                <Icon name="left" />
              </button>
              <span>
                {at + 1} of {images.length}
              </span>
              <button type="button" aria-label="Next image" disabled={at >= images.length - 1} onClick={() => go(1)}>
                <Icon name="right" />
              </button>
            </nav>
          </aside>
        </div>
      )}
    </dialog>
  );
}
