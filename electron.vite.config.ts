import { resolve } from "node:path";
import react from "@vitejs/plugin-react";
import { defineConfig } from "electron-vite";
import type { Plugin } from "vite";
import { CSP } from "./electron/main/security";

/**
 * The built page carries the desktop CSP as a meta tag too: a response header may
 * not govern file:// pages, a meta tag does. Build only, so the dev server's
 * inline React Refresh preamble keeps working.
 */
function cspMeta(): Plugin {
  const policy = CSP.split("; ")
    .filter((d) => !d.startsWith("frame-ancestors"))
    .join("; ");
  return {
    name: "kiln-csp-meta",
    apply: "build",
    transformIndexHtml: () => [
      { tag: "meta", attrs: { "http-equiv": "Content-Security-Policy", content: policy }, injectTo: "head-prepend" },
    ],
  };
}

/**
 * Three bundles for the desktop app, all under out/:
 * - main (out/main/main.js, ESM like the package): our own code (electron/, coordinator/,
 *   shared/) is bundled; every package in "dependencies" stays external and is loaded
 *   from node_modules at run time, so native modules (better-sqlite3, onnxruntime-node,
 *   sharp) and bonjour-service are never bundled.
 * - preload (out/preload/index.cjs): CommonJS, because a sandboxed preload cannot be an
 *   ES module and can only `require` "electron" and a few polyfills, so nothing is
 *   external: zod and shared/ are inlined.
 * - renderer (out/renderer): the React UI; base "./" so the same files load from
 *   file:// in the window and from `kiln serve` over HTTP.
 */
export default defineConfig({
  main: {
    build: {
      outDir: "out/main",
      rolldownOptions: {
        input: { main: resolve("electron/main/main.ts") },
        output: { entryFileNames: "[name].js" },
      },
    },
  },
  preload: {
    build: {
      outDir: "out/preload",
      externalizeDeps: false,
      rolldownOptions: {
        input: { index: resolve("electron/preload/index.ts") },
        output: { format: "cjs", entryFileNames: "[name].cjs" },
      },
    },
  },
  renderer: {
    root: "renderer",
    base: "./",
    plugins: [react(), cspMeta()],
    build: {
      outDir: resolve("out/renderer"),
      emptyOutDir: true,
      rolldownOptions: { input: resolve("renderer/index.html") },
    },
  },
});
