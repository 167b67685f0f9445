import { existsSync, mkdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { KilnError } from "../../shared/errors";

/** Where the studio's model library is and who said so. */
export interface LibraryChoice {
  dir: string;
  /** `setting`: chosen in the desktop app's settings. */
  from: "flag" | "env" | "default" | "setting";
}

/** `--models DIR`, else `$KILN_MODELS`, else `kiln/models` under `$XDG_DATA_HOME` (or `~/.local/share`). */
export function chooseLibrary(flag: string | undefined, env: NodeJS.ProcessEnv, home: string): LibraryChoice {
  if (flag) return { dir: resolve(flag), from: "flag" };
  if (env.KILN_MODELS) return { dir: resolve(env.KILN_MODELS), from: "env" };
  return { dir: join(env.XDG_DATA_HOME || join(home, ".local", "share"), "kiln", "models"), from: "default" };
}

/**
 * The library folder, ready to read. The default is created when absent (a
 * fresh install has an empty library); a folder someone named and that is not
 * there is refused, since a typo must not read as "no models".
 */
export function openLibrary(choice: LibraryChoice): string {
  const { dir, from } = choice;
  if (!existsSync(dir)) {
    if (from === "default") {
      mkdirSync(dir, { recursive: true });
      return dir;
    }
    throw new KilnError("E_BAD_REQUEST", `model library ${dir} does not exist (${fix(from)})`);
  }
  if (!statSync(dir).isDirectory())
    throw new KilnError("E_BAD_REQUEST", `model library ${dir} is not a folder (${fix(from)})`);
  return dir;
}

/** Whether a library folder is there without creating it (the embedded node renders from it only then). */
export function libraryExists(choice: LibraryChoice): boolean {
  return existsSync(choice.dir) && statSync(choice.dir).isDirectory();
}

function fix(from: LibraryChoice["from"]): string {
  return from === "flag"
    ? "given by --models: create it, or pass --models with the folder of your model packs"
    : from === "env"
      ? "from $KILN_MODELS: create it, or set KILN_MODELS (or pass --models) to the folder of your model packs"
      : from === "setting"
        ? "choose the folder that holds your model packs, one folder per pack"
        : "the default library";
}
