// The dashboard measured in Chromium (Playwright driving Debian's browser), for
// `cargo bench -p zeitwork-e2e --bench dashboard`, which seeds the platform and passes:
// ZW_URL, ZW_TOKEN, ZW_ORG, ZW_APP, ZW_NODE, ZW_NODE_CREDENTIAL, ZW_INSTANCES (ids of
// ZW_APP's instances, comma-separated) and ZW_DIST (the built dashboard, for the peer).
// Prints Markdown: first contentful paint and time to the data on screen, cold cache, of
// the apps list and of an app page, served by the operator and, as the peer, by nginx
// (the same files, the API proxied to the operator); the time from an instance's
// `healthy` report committing to the page showing it; and the JavaScript the first view
// loads, gzipped.
import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { chromium } from '@playwright/test'

const SAMPLES = 10

function env(name) {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set (run through cargo bench)`)
  return value
}

const api = env('ZW_URL')
const token = env('ZW_TOKEN')
const org = env('ZW_ORG')
const app = env('ZW_APP')
const node = env('ZW_NODE')
const credential = env('ZW_NODE_CREDENTIAL')
const instances = env('ZW_INSTANCES').split(',')
const dist = env('ZW_DIST')
const address = env('ZW_ADDRESS')

/** nginx serving `dist` on a free port, the API proxied to the operator. */
async function peer() {
  const dir = mkdtempSync(join(tmpdir(), 'zw-nginx-'))
  const port = 20000 + Math.floor(Math.random() * 20000)
  writeFileSync(
    join(dir, 'nginx.conf'),
    `daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 256; }
http {
  include /etc/nginx/mime.types; access_log off;
  client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir};
  uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  server {
    listen 127.0.0.1:${port};
    root ${dist};
    location /assets/ { add_header Cache-Control "public, max-age=31536000, immutable"; }
    location /api/ { proxy_pass ${api}; proxy_buffering off; proxy_http_version 1.1; }
    location / { try_files $uri /index.html; }
  }
}
`,
  )
  const child = spawn('nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir], { stdio: 'ignore' })
  for (let i = 0; i < 50; i++) {
    try {
      await fetch(`http://127.0.0.1:${port}/`)
      return { base: `http://127.0.0.1:${port}`, stop: () => child.kill() }
    } catch {
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  throw new Error('nginx did not start')
}

/** A fresh context (cold cache) signed in through the API. */
async function signedIn(browser, base) {
  const context = await browser.newContext()
  const r = await context.request.post(`${base}/api/v1/session`, { data: { token } })
  if (r.status() !== 201) throw new Error(`sign-in answered ${r.status()}`)
  return context
}

/** FCP and the moment `ready` holds, in ms from navigation start; the JS it loaded. */
async function load(browser, base, path, ready) {
  const context = await signedIn(browser, base)
  const page = await context.newPage()
  const scripts = []
  page.on('response', async (r) => {
    if (r.url().endsWith('.js')) scripts.push(r.body().then((b) => gzipSync(b).length, () => 0))
  })
  await page.goto(base + path)
  await page.waitForFunction(ready, undefined, { timeout: 30_000 })
  const dataAt = await page.evaluate(() => performance.now())
  const fcp = await page.evaluate(
    () =>
      new Promise((resolve) => {
        const seen = performance.getEntriesByName('first-contentful-paint')[0]
        if (seen) return resolve(seen.startTime)
        new PerformanceObserver((l) => resolve(l.getEntries()[0].startTime)).observe({
          type: 'paint',
          buffered: true,
        })
      }),
  )
  const js = (await Promise.all(scripts)).reduce((a, b) => a + b, 0)
  await context.close()
  return { fcp, dataAt, js }
}

const appsReady = () => document.body.innerText.includes('app-000')
const appReady = () => document.querySelector('th[title]') !== null

function stats(values) {
  const s = [...values].sort((a, b) => a - b)
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))]
  return { p50: at(0.5), max: s[s.length - 1] }
}

const ms = (v) => `${Math.round(v)} ms`

async function pages(browser, base) {
  const rows = {}
  for (const [name, path, ready] of [
    ['apps list (500 apps)', `/orgs/${org}/apps`, appsReady],
    ['app page (10 instances)', `/orgs/${org}/apps/${app}`, appReady],
  ]) {
    const runs = []
    for (let i = 0; i < SAMPLES; i++) runs.push(await load(browser, base, path, ready))
    rows[name] = runs
  }
  return rows
}

/** From a `healthy` report's commit to the page showing it, for each instance. */
async function changes(browser) {
  const context = await signedIn(browser, api)
  const page = await context.newPage()
  const trail = []
  const t0 = Date.now()
  page.on('request', (r) => trail.push(`${Date.now() - t0} > ${r.url().replace(api, '')}`))
  page.on('response', (r) => trail.push(`${Date.now() - t0} < ${r.status()} ${r.url().replace(api, '')}`))
  page.on('console', (m) => trail.push(`${Date.now() - t0} console ${m.text()}`))
  await page.goto(`${api}/orgs/${org}/apps/${app}`)
  await page.waitForFunction(appReady, undefined, { timeout: 30_000 })
  // Steady state: the change stream is open (what came before it is refreshed at its start).
  await page.waitForFunction(() => document.querySelector('header [role="status"]')?.textContent?.includes('Live'), undefined, {
    timeout: 30_000,
  })
  const delays = []
  for (const id of instances.slice(0, SAMPLES)) {
    const shown = page.waitForFunction(
      (id) => document.querySelector(`th[title="${id}"]`)?.closest('tr')?.textContent.includes('healthy') && Date.now(),
      id,
      { timeout: 30_000, polling: 'raf' },
    )
    shown.catch(() => {}) // awaited below; a failed report must not leave it unhandled
    // From the report's sending: its commit is a little later, so this is an upper bound.
    const sent = Date.now()
    const r = await fetch(`${api}/api/v1/nodes/${node}/instances/${id}/state`, {
      method: 'POST',
      headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' },
      body: JSON.stringify({ state: 'healthy', address, restarts: 0 }),
    })
    if (!r.ok) throw new Error(`report answered ${r.status}: ${await r.text()}`)
    const at = await shown.then(
      (h) => h.jsonValue(),
      async (e) => {
        const row = await page.evaluate((id) => document.querySelector(`th[title="${id}"]`)?.closest('tr')?.textContent, id)
        const live = await page.evaluate(() => document.querySelector('header [role="status"]')?.textContent)
        const status = await (await fetch(`${api}/api/v1/orgs/${org}/apps/${app}/envs/prod/status`, { headers: { authorization: `Bearer ${token}` } })).json()
        const seen = status.instances?.find((i) => i.id === id)
        console.error('what the page asked and heard:\n' + trail.join('\n'))
        throw new Error(`instance ${id} not shown healthy: row ${JSON.stringify(row)}, live indicator ${JSON.stringify(live)}, API says ${JSON.stringify(seen)}: ${e}`)
      },
    )
    delays.push(at - sent)
  }
  await context.close()
  return delays
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox'],
})
let nginx = { stop: () => {} }
try {
  nginx = await peer()
  const ours = await pages(browser, api)
  const theirs = await pages(browser, nginx.base)
  console.log('| page | served by | FCP p50 | FCP max | data on screen p50 | max | JS (gzip) |')
  console.log('|---|---|---|---|---|---|---|')
  for (const [who, rows] of [['operator', ours], ['nginx (peer)', theirs]]) {
    for (const [name, runs] of Object.entries(rows)) {
      const fcp = stats(runs.map((r) => r.fcp))
      const data = stats(runs.map((r) => r.dataAt))
      const js = Math.max(...runs.map((r) => r.js))
      console.log(`| ${name} | ${who} | ${ms(fcp.p50)} | ${ms(fcp.max)} | ${ms(data.p50)} | ${ms(data.max)} | ${(js / 1024).toFixed(1)} KiB |`)
    }
  }
  const delays = await changes(browser)
  const d = stats(delays)
  console.log('')
  console.log('| change | runs | p50 | max |')
  console.log('|---|---|---|---|')
  console.log(`| an instance's \`healthy\` report sent (and committed) → shown on the app page | ${delays.length} | ${ms(d.p50)} | ${ms(d.max)} |`)
} finally {
  nginx.stop()
  await browser.close()
}
