import { useVirtualizer } from "@tanstack/react-virtual";
import {
  type CSSProperties,
  type KeyboardEvent,
  useCallback,
  useEffect,
  useLayoutEffect,
  useMemo,
  useRef,
  useState,
} from "react";
import type { ImageSummary, JobSummary } from "../../shared/ui-api";
import { FlingDetector } from "../model/fling-detector";
import { type GalleryRow, galleryRows, rowAt } from "../model/gallery-items";
import type { Density } from "../stores/settings-store";
import { GalleryCell } from "./GalleryCell";
import { GalleryJobHeader } from "./GalleryJobHeader";

/** Cell edge per density, in CSS pixels; the one source of the size (CSS reads it as --cell). */
export const CELL_SIZE: Record<Density, number> = { compact: 120, comfortable: 176, large: 256 };
const GAP = 8;
const HEADER = 40;
/** No scroll event for this long: the gallery has come to rest. */
const REST_MS = 150;

interface Props {
  images: ImageSummary[];
  jobs: Map<string, JobSummary>;
  density: Density;
  filteredToJob: boolean;
}

/**
 * The virtualised gallery: only the rows in view (plus a few) exist in the
 * DOM, so 10,000 images cost what 50 do. Every cell has the same fixed size
 * and images fill placeholders in place. When a new job arrives above while
 * the artist is scrolled down, the scroll position follows the row in view,
 * so nothing under the pointer moves. While the gallery is flung past, cells
 * that come into view wait to load their image until it slows down: a 512²
 * PNG for a cell on screen for a tenth of a second costs the page its bytes,
 * its decode and, above all, the garbage collections they trigger (pauses of
 * 100 ms and more on a busy 2-core machine, seen with bench:ui).
 */
export function GalleryGrid({ images, jobs, density, filteredToJob }: Props) {
  const scrollRef = useRef<HTMLElement>(null);
  const [width, setWidth] = useState(0);
  const [focusIndex, setFocusIndex] = useState(0);
  const keyboardMove = useRef(false);
  const anchor = useRef<{ key: string; delta: number } | null>(null);
  const fling = useRef(new FlingDetector());
  const rest = useRef<ReturnType<typeof setTimeout> | null>(null);
  const [flinging, setFlinging] = useState(false);
  const cell = CELL_SIZE[density];
  const columns = Math.max(1, Math.floor((width + GAP) / (cell + GAP)));
  const rows = useMemo(
    () => galleryRows(images, columns, { header: HEADER, row: cell + GAP }),
    [images, columns, cell],
  );

  useLayoutEffect(() => {
    const element = scrollRef.current;
    if (!element) return;
    const observer = new ResizeObserver(([entry]) => setWidth(entry?.contentRect.width ?? 0));
    observer.observe(element);
    return () => observer.disconnect();
  }, []);

  const estimateSize = useCallback((i: number) => rows[i]?.size ?? HEADER, [rows]);
  const getItemKey = useCallback((i: number) => rows[i]?.key ?? i, [rows]);
  const virtualizer = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scrollRef.current,
    estimateSize,
    getItemKey,
    overscan: 3,
  });

  // Keep the row in view where it was when rows are inserted above it.
  useLayoutEffect(() => {
    const element = scrollRef.current;
    const held = anchor.current;
    if (!element || !held) return;
    const row = rows.find((r) => r.key === held.key);
    if (!row) return;
    const target = row.start + held.delta;
    if (Math.abs(element.scrollTop - target) > 1) element.scrollTop = target;
  }, [rows]);

  useEffect(
    () => () => {
      if (rest.current) clearTimeout(rest.current);
    },
    [],
  );

  function onScroll() {
    const element = scrollRef.current;
    if (!element) return;
    setFlinging(fling.current.sample(element.scrollTop, performance.now()));
    if (rest.current) clearTimeout(rest.current);
    rest.current = setTimeout(() => {
      fling.current.stop();
      setFlinging(false);
    }, REST_MS);
    if (rows.length === 0) return;
    // At the very top, new jobs should appear in view, so nothing is held.
    if (element.scrollTop <= 0) {
      anchor.current = null;
      return;
    }
    const row = rows[rowAt(rows, element.scrollTop)] as GalleryRow;
    anchor.current = { key: row.key, delta: element.scrollTop - row.start };
  }

  const clampedFocus = Math.min(focusIndex, Math.max(0, images.length - 1));

  useEffect(() => {
    if (!keyboardMove.current) return;
    keyboardMove.current = false;
    scrollRef.current?.querySelector<HTMLElement>(`[data-cell="${clampedFocus}"]`)?.focus();
  });

  function onKeyDown(e: KeyboardEvent<HTMLElement>) {
    const perPage = Math.max(1, Math.floor((scrollRef.current?.clientHeight ?? 0) / (cell + GAP))) * columns;
    const moves: Record<string, number> = {
      ArrowLeft: -1,
      ArrowRight: 1,
      ArrowUp: -columns,
      ArrowDown: columns,
      PageUp: -perPage,
      PageDown: perPage,
      Home: -images.length,
      End: images.length,
    };
    const step = moves[e.key];
    if (step === undefined || images.length === 0) return;
    e.preventDefault();
    const next = Math.min(images.length - 1, Math.max(0, clampedFocus + step));
    const rowIndex = rows.findIndex((r) => r.kind === "cells" && next >= r.first && next < r.first + r.images.length);
    keyboardMove.current = true;
    setFocusIndex(next);
    if (rowIndex >= 0) virtualizer.scrollToIndex(rowIndex, { align: "auto" });
  }

  const frame = { "--cell": `${cell}px`, "--gap": `${GAP}px` } as CSSProperties;

  return (
    <section
      ref={scrollRef}
      className="gallery-scroll"
      style={frame}
      onScroll={onScroll}
      onKeyDown={onKeyDown}
      aria-label="Images"
    >
      <div className="gallery-canvas" style={{ height: virtualizer.getTotalSize() }}>
        {virtualizer.getVirtualItems().map((item) => {
          const row = rows[item.index];
          if (!row) return null;
          const place = { transform: `translateY(${item.start}px)` };
          return row.kind === "header" ? (
            <div key={row.key} className="gallery-row gallery-row-header" style={place}>
              <GalleryJobHeader
                jobId={row.jobId}
                job={jobs.get(row.jobId)}
                images={row.images}
                filtered={filteredToJob}
              />
            </div>
          ) : (
            <div key={row.key} className="gallery-row" style={place}>
              {row.images.map((image, k) => (
                <GalleryCell
                  key={image.id}
                  image={image}
                  index={row.first + k}
                  tabbable={row.first + k === clampedFocus}
                  deferImage={flinging}
                  onFocusIndex={setFocusIndex}
                />
              ))}
            </div>
          );
        })}
      </div>
    </section>
  );
}
