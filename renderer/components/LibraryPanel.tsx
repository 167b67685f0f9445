import { sizeText } from "../model/model-push-text";
import { useFarmStore } from "../stores/farm-store";
import { LibrarySettingsForm } from "./LibrarySettingsForm";

/**
 * The farm panel's model library: its folder and on-demand switch (settings
 * in the desktop app; `kiln serve`'s flags, shown, in a browser) and its packs,
 * with why a folder cannot be pushed.
 */
export function LibraryPanel() {
  const library = useFarmStore((s) => s.library);
  if (!library || (library.dir === null && !library.changeable)) return null;
  return (
    <section aria-labelledby="farm-library" className="farm-section library-panel">
      <h3 className="section-heading" id="farm-library">
        Model library
      </h3>
      {library.changeable ? (
        <LibrarySettingsForm key={`${library.dir}:${library.onDemand}`} library={library} />
      ) : (
        <p className="library-where">
          <code>{library.dir}</code> · on-demand pushes {library.onDemand ? "on" : "off"} (kiln serve's --models and
          --no-push)
        </p>
      )}
      {library.packs.length === 0 ? (
        <p className="empty">No model packs in the library yet: put one folder per pack in it.</p>
      ) : (
        <ul className="library-packs" aria-label="Packs in the library">
          {library.packs.map((pack) => (
            <li key={pack.name} className={pack.problem ? "library-pack-unusable" : undefined}>
              <span className="library-model-name">{pack.name}</span> {pack.kind} · {sizeText(pack.sizeBytes)}
              {pack.problem && <span className="library-pack-problem"> · cannot be pushed: {pack.problem}</span>}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
