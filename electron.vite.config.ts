/**
 * electron-vite builds three bundles: main (electron/main), preload (electron/preload,
 * CommonJS because a sandboxed preload cannot be ESM) and the renderer. The desktop
 * shell lands with the desktop-app issue; until then this file only fixes the layout.
 */
export default {
  main: { build: { outDir: "out/main" } },
  preload: { build: { outDir: "out/preload" } },
  renderer: { root: "renderer", build: { outDir: "../out/renderer" } },
};
