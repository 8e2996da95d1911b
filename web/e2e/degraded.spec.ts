// ZW_PHASE=degraded: the harness has killed the platform's NATS server. The dashboard does
// not need it (its change stream is the event log's, woken by Postgres): the pages still
// load and stay live. When the stream itself fails, the page says it polls, keeps what it
// shows, picks up changes by polling, and goes live again once the stream is back.
import { APP, ORG } from './env'
import { activeHealthyInstances, api, badge, ENV_PATH, expect, liveIndicator, overview, rowOf, signIn, test, unique } from './helpers'

const STREAM = '**/api/v1/events/stream**'

test('without NATS the app page works and stays live; a failed stream turns to polling and back to live', async ({ page }) => {
  // A handle on the change stream's open connections, to drop one as a network failure
  // would: routing only refuses the connections made after it.
  await page.addInitScript(() => {
    const original = window.fetch
    const open = new Set<AbortController>()
    window.fetch = function (input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url
      if (!url.includes('/api/v1/events/stream')) return original.call(this, input, init)
      const controller = new AbortController()
      const outer = init?.signal
      if (outer?.aborted) controller.abort(outer.reason)
      outer?.addEventListener('abort', () => controller.abort(outer.reason), { once: true })
      open.add(controller)
      return original.call(this, input, { ...init, signal: controller.signal })
    }
    ;(window as unknown as { e2eDropStreams: () => number }).e2eDropStreams = () => {
      const n = open.size
      for (const c of open) c.abort(new TypeError('network error (the test dropped the stream)'))
      open.clear()
      return n
    }
  })

  await signIn(page)
  const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: APP, exact: true }) })
  await expect(badge(row, 'healthy')).toBeVisible({ timeout: 60_000 })
  await row.getByRole('link', { name: APP, exact: true }).click()
  await expect(page).toHaveURL((u) => u.pathname === `/orgs/${ORG}/apps/${APP}`)
  const o = overview(page)
  await expect(badge(o.activeState, 'active')).toBeVisible()
  const release = (await o.activeRelease.textContent())?.trim() ?? ''
  expect(release).toMatch(/^v\d+$/)
  await expect(activeHealthyInstances(o.instances)).not.toHaveCount(0)
  await expect(rowOf(o.releases, release)).toContainText('active')
  await expect(liveIndicator(page), 'the change stream does not need NATS').toHaveText('Live', { timeout: 30_000 })

  // The stream fails: the open connection drops, every reconnection is refused.
  let refused = 0
  await page.route(STREAM, (route) => {
    refused += 1
    return route.abort('connectionfailed')
  })
  expect(await page.evaluate(() => (window as unknown as { e2eDropStreams: () => number }).e2eDropStreams())).toBeGreaterThan(0)
  await expect(liveIndicator(page)).toHaveText('Polling every 5 s')
  await expect.poll(() => refused, { message: 'the page tries to reconnect' }).toBeGreaterThan(0)
  // What the page showed stays.
  await expect(o.activeRelease).toHaveText(release)
  await expect(activeHealthyInstances(o.instances)).not.toHaveCount(0)
  await expect(rowOf(o.releases, release)).toContainText('active')

  // A change made elsewhere meanwhile reaches the page by polling.
  await page.getByRole('navigation', { name: 'App sections' }).getByRole('link', { name: 'Env & secrets' }).click()
  const secrets = page.getByRole('region', { name: /^Secrets/ })
  await expect(secrets.getByText('No secrets set.').or(secrets.getByRole('columnheader', { name: 'Version' }))).toBeVisible()
  const name = unique('E2E_DEGRADED_').toUpperCase()
  const set = await api('PUT', `${ENV_PATH}/secrets/${name}`, { value: 'set while the stream was down', restart: false })
  expect(set.status, JSON.stringify(set.body)).toBe(200)
  await expect(secrets.getByRole('rowheader', { name, exact: true })).toBeVisible({ timeout: 20_000 })
  await expect(liveIndicator(page)).toHaveText('Polling every 5 s')

  // The stream is back: the page goes live again (its back-off waits up to 30 s).
  await page.unroute(STREAM)
  await expect(liveIndicator(page)).toHaveText('Live', { timeout: 60_000 })

  const gone = await api('DELETE', `${ENV_PATH}/secrets/${name}?restart=false`)
  expect(gone.status, JSON.stringify(gone.body)).toBe(204)
  await expect(secrets.getByRole('rowheader', { name, exact: true })).toHaveCount(0, { timeout: 20_000 })
})
