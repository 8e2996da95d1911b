// The apps list and the app page against a running app: what it shows, logs followed
// live, scaling and rolling back through the UI, and a custom domain's DNS records.
// These tests run in this order (one worker) and each leaves the app as it found it:
// release v2 active with one healthy instance of `web`.
import { APP, APP_HOST, ORG } from './env'
import {
  activeHealthyInstances,
  activeSummary,
  api,
  badge,
  edgeAnswer,
  ENV_PATH,
  expect,
  liveIndicator,
  overview,
  rowOf,
  signIn,
  test,
  unique,
} from './helpers'

const APP_PATH = `/orgs/${ORG}/apps/${APP}`
/** Starting a microVM under software emulation: 30 to 90 s, and more on a busy machine. */
const BOOT = 240_000

test('the apps list shows hello healthy with its URL and release v2; its page shows instances, releases and the deployment', async ({
  page,
}) => {
  await signIn(page)
  await expect(page.getByRole('heading', { name: `Apps in ${ORG}` })).toBeVisible()
  const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: APP, exact: true }) })
  await expect(row).toHaveCount(1)
  await expect(badge(row.locator('[data-label="State"]'), 'healthy')).toBeVisible()
  await expect(row.locator('[data-label="Release"]')).toHaveText('v2')
  const url = row.locator('[data-label="URL"]').getByRole('link')
  await expect(url).toContainText(APP_HOST)
  expect(new URL((await url.getAttribute('href')) ?? '').hostname).toBe(APP_HOST)
  await expect(row.locator('[data-label="Instances"]')).toHaveText(/^[1-9]\d*\/\d+ healthy\s*$/)

  await row.getByRole('link', { name: APP, exact: true }).click()
  await expect(page).toHaveURL((u) => u.pathname === APP_PATH)
  await expect(page.getByRole('heading', { name: APP, level: 1 })).toBeVisible()
  const o = overview(page)
  await expect(o.activeRelease).toHaveText('v2')
  await expect(badge(o.activeState, 'active')).toBeVisible()
  // One healthy instance of web in the active deployment, in both tables.
  await expect(o.web.getByRole('cell').first()).toHaveText('1/1')
  await expect(activeHealthyInstances(o.instances)).toHaveCount(1)
  // Both releases, v2 the active one, v1 one to roll back to.
  await expect(rowOf(o.releases, 'v2')).toContainText('active')
  await expect(rowOf(o.releases, 'v2').getByRole('button')).toHaveCount(0)
  await expect(rowOf(o.releases, 'v1').getByRole('button', { name: 'Roll back to v1' })).toBeVisible()
  // The deployment of v2, active, whose own URL the active deployment's card links to
  // (`<app>-<slug>-<org>.<base domain>`; the app's is `<app>-<org>.<base domain>`).
  const deployment = o.deployments
    .getByRole('row')
    .filter({ has: page.getByRole('cell', { name: 'v2', exact: true }) })
    .filter({ has: badge(page, 'active') })
  await expect(deployment).toHaveCount(1)
  const slug = ((await deployment.getByRole('rowheader').textContent()) ?? '').trim()
  expect(slug).toMatch(/^[a-z0-9]+$/)
  const base = APP_HOST.startsWith(`${APP}-${ORG}.`) ? APP_HOST.slice(`${APP}-${ORG}.`.length) : null
  expect(base, `ZW_APP_HOST is ${APP}-${ORG}.<base domain>`).not.toBeNull()
  const link = o.active.locator('dt:text-is("URL") + dd').getByRole('link')
  expect(new URL((await link.getAttribute('href')) ?? '').hostname).toBe(`${APP}-${slug}-${ORG}.${base}`)
})

test('logs: follows the app and shows a request made through the edge within 30 s', async ({ page }) => {
  await signIn(page, undefined, APP_PATH)
  await page.getByRole('navigation', { name: 'App sections' }).getByRole('link', { name: 'Logs' }).click()
  await expect(page).toHaveURL((u) => u.pathname === `${APP_PATH}/logs`)
  const logs = page.getByRole('region', { name: 'Log lines' })
  const state = page.getByRole('region', { name: 'Logs', exact: true }).getByRole('status')

  // The tab follows as it opens; stop, then follow again with the button.
  await expect(state).toHaveText('Following', { timeout: 30_000 })
  await page.getByRole('button', { name: 'Stop following' }).click()
  await expect(state).toHaveText('Not following')
  await page.getByRole('button', { name: 'Follow', exact: true }).click()
  await expect(state).toHaveText('Following', { timeout: 30_000 })
  await expect(page.getByRole('button', { name: 'Stop following' })).toBeVisible()

  // A request only this test makes: the app writes an access-log line for it.
  const path = `/${unique('e2e-')}`
  await expect
    .poll(() => edgeAnswer(path), { timeout: 60_000, message: `GET ${path} through the edge reaches the app (its own 404)` })
    .toBe('404 not found\n')
  await expect(logs.getByText(`GET ${path} 404`)).toBeVisible({ timeout: 30_000 })
  await expect(state).toHaveText('Following')
})

test('scales web to 2 through the UI, the second instance turns healthy live (no reload), then back to 1', async ({ page }) => {
  test.setTimeout(2 * BOOT + 120_000)
  await signIn(page, undefined, APP_PATH)
  const o = overview(page)
  await expect(o.web.getByRole('cell').first()).toHaveText('1/1')
  await expect(liveIndicator(page)).toHaveText('Live', { timeout: 30_000 })
  // A mark a reload would wipe.
  await page.evaluate(() => ((window as unknown as Record<string, unknown>).e2eNoReload = true))

  const count = o.web.getByLabel('Instances of web per region')
  const scale = o.web.getByRole('button', { name: 'Scale', exact: true })
  await expect(count).toHaveValue('1')
  await count.fill('2')
  await scale.click()
  await expect(o.web.getByText('Scaled web to 2.')).toBeVisible()
  // Only the change stream can bring the second instance's health here: nothing reloads.
  await expect(o.web.getByRole('cell').first()).toHaveText('2/2', { timeout: BOOT })
  await expect(activeHealthyInstances(o.instances)).toHaveCount(2)
  await expect(liveIndicator(page)).toHaveText('Live')
  expect(await page.evaluate(() => (window as unknown as Record<string, unknown>).e2eNoReload), 'the page was not reloaded').toBe(true)

  await count.fill('1')
  await scale.click()
  await expect(o.web.getByText('Scaled web to 1.')).toBeVisible()
  await expect(o.web.getByRole('cell').first()).toHaveText('1/1', { timeout: BOOT })
  await expect(count).toHaveValue('1')
  await expect.poll(activeSummary, { timeout: BOOT, message: 'the API agrees: one healthy instance of v2' }).toBe('v2 healthy=1')
})

test('rolls back to v1 through the confirmation dialog; the page shows v1 active and the app still answers', async ({ page }) => {
  test.setTimeout(3 * BOOT)
  await signIn(page, undefined, APP_PATH)
  const o = overview(page)
  await expect(o.activeRelease).toHaveText('v2')
  await expect(liveIndicator(page)).toHaveText('Live', { timeout: 30_000 })

  await rowOf(o.releases, 'v1').getByRole('button', { name: 'Roll back to v1' }).click()
  const dialog = page.getByRole('dialog', { name: 'Roll back prod to v1?' })
  await expect(dialog).toBeVisible()
  await expect(dialog).toContainText('will serve release v1')
  // Cancel first: nothing changes.
  await dialog.getByRole('button', { name: 'Cancel' }).click()
  await expect(dialog).toBeHidden()
  await expect(o.activeRelease).toHaveText('v2')

  await rowOf(o.releases, 'v1').getByRole('button', { name: 'Roll back to v1' }).click()
  await expect(dialog).toBeVisible()
  await dialog.getByRole('button', { name: 'Roll back', exact: true }).click()
  await expect(dialog).toBeHidden()
  await expect(page.getByText(/^Rolled back to v1/)).toBeVisible()
  await expect(o.activeRelease).toHaveText('v1', { timeout: BOOT })
  await expect(badge(o.activeState, 'active')).toBeVisible()
  await expect(rowOf(o.releases, 'v1')).toContainText('active')
  await expect(rowOf(o.releases, 'v2').getByRole('button', { name: 'Roll back to v2' })).toBeVisible()
  await expect(activeHealthyInstances(o.instances)).toHaveCount(1, { timeout: BOOT })

  await expect
    .poll(() => edgeAnswer('/'), { timeout: BOOT, message: 'the app answers through the edge after the rollback' })
    .toMatch(/^200 Hello from Zeitwork!/)

  // Back to v2 (through the API) for the tests after this one; the open page follows.
  const back = await api('POST', `${ENV_PATH}/rollback`, { release: 2 })
  expect(back.status, JSON.stringify(back.body)).toBe(201)
  await expect(o.activeRelease).toHaveText('v2', { timeout: BOOT })
  await expect.poll(activeSummary, { timeout: BOOT, message: 'v2 active and healthy again' }).toBe('v2 healthy=1')
  await expect(activeHealthyInstances(o.instances)).toHaveCount(1, { timeout: BOOT })
  await expect.poll(() => edgeAnswer('/'), { timeout: BOOT }).toMatch(/^200 Hello from Zeitwork!/)
})

test('domains: adding shop.example.test shows its TXT record and CNAME target, pending', async ({ page }) => {
  const hostname = 'shop.example.test'
  // A domain left by an earlier run would make the add a 409.
  const gone = await api('DELETE', `${ENV_PATH}/domains/${hostname}`)
  expect([204, 404], JSON.stringify(gone.body)).toContain(gone.status)

  await signIn(page, undefined, APP_PATH)
  await page.getByRole('navigation', { name: 'App sections' }).getByRole('link', { name: 'Domains' }).click()
  await expect(page).toHaveURL((u) => u.pathname === `${APP_PATH}/domains`)
  await expect(page.getByText('No custom domains.')).toBeVisible()

  await page.getByLabel('Hostname').fill(hostname)
  await page.getByRole('button', { name: 'Add domain' }).click()
  await expect(page.getByText(`${hostname} added`)).toBeVisible()

  const card = page.getByRole('article', { name: hostname })
  await expect(card).toBeVisible()
  await expect(badge(card, 'pending')).toBeVisible()
  await expect(card).toContainText('waiting for the TXT record')
  const records = card.getByRole('table', { name: 'DNS records to set' })
  const txt = records.getByRole('row').filter({ has: page.getByRole('cell', { name: 'TXT', exact: true }) })
  await expect(txt.getByRole('cell').nth(1)).toHaveText(`_zeitwork-challenge.${hostname}`)
  await expect(txt.getByRole('cell').nth(2)).toHaveText(/^zeitwork-verification=\S+$/)
  const cname = records.getByRole('row').filter({ has: page.getByRole('cell', { name: 'CNAME', exact: true }) })
  await expect(cname.getByRole('cell').nth(1)).toHaveText(hostname)
  await expect(cname.getByRole('cell').nth(2)).toHaveText(APP_HOST)

  // The value is the one the API gave the domain.
  const listed = await api<{ domains: { hostname: string; state: string; txt_record: { value: string } }[] }>(
    'GET',
    `${ENV_PATH}/domains`,
  )
  const domain = listed.body.domains.find((d) => d.hostname === hostname)
  expect(domain?.state).toBe('pending')
  await expect(txt.getByRole('cell').nth(2)).toHaveText(domain!.txt_record.value)

  expect((await api('DELETE', `${ENV_PATH}/domains/${hostname}`)).status).toBe(204)
})
