import { defineConfig } from 'vitest/config'
import vue from '@vitejs/plugin-vue'

const api = 'http://127.0.0.1:8080'

export default defineConfig({
  plugins: [vue()],
  base: '/',
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    // The server's Content-Security-Policy allows no inline script: the polyfill is one.
    modulePreload: { polyfill: false },
    // Never inline assets as data: URLs into CSS/JS (fonts, images stay files).
    assetsInlineLimit: 0,
    target: 'es2022',
    rollupOptions: {
      // `ConfirmDialog-<hash>.js` rather than `ConfirmDialog.vue_vue_type_script_setup_true_lang-<hash>.js`.
      output: { chunkFileNames: (chunk) => `assets/${chunk.name.replace(/\.vue_vue_type.*$/, '')}-[hash].js` },
    },
  },
  server: {
    proxy: {
      // The event and log streams are Server-Sent Events; the proxy passes them through.
      '/api': { target: api, changeOrigin: false },
      '/health': { target: api, changeOrigin: false },
    },
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
})
