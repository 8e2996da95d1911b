// The dashboard's browser tests (`npm run e2e`): Playwright driving the system's Chromium
// (never a downloaded browser) against a real platform that crates/e2e/tests/dashboard.rs
// starts, prepares and describes in ZW_* variables (see e2e/env.ts). The harness runs them
// twice: ZW_PHASE=main, then ZW_PHASE=degraded once it has killed NATS; each phase runs
// its own project only.
import { defineConfig } from '@playwright/test'
import { PHASE, URL_BASE } from './e2e/env'

const projects = [
  // The main phase: everything but the degraded spec, one test after another (they share
  // the platform: scaling and rolling back change what the next test sees).
  { name: 'main', testIgnore: /degraded\.spec\.ts$/ },
  { name: 'degraded', testMatch: /degraded\.spec\.ts$/ },
]

export default defineConfig({
  testDir: 'e2e',
  outputDir: 'test-results',
  projects: projects.filter((p) => p.name === PHASE),
  fullyParallel: false,
  workers: 1,
  retries: 0,
  forbidOnly: true,
  reporter: [['list']],
  // Booting a microVM under software emulation takes 30 to 90 s; tests that wait for one
  // raise this further.
  timeout: 240_000,
  globalTimeout: 45 * 60_000,
  expect: { timeout: 20_000 },
  use: {
    baseURL: URL_BASE,
    browserName: 'chromium',
    headless: true,
    actionTimeout: 20_000,
    navigationTimeout: 30_000,
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      // The tests run as root, where Chromium's sandbox cannot start.
      args: ['--no-sandbox'],
    },
  },
})
