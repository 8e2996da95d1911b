// Shared by the specs: a test fixture that fails on CSP violations and page errors, the
// API and the edge reached from Node (not the browser), sign-in through the form, and
// locators for the dashboard's views.
import http from 'node:http'
import { randomBytes } from 'node:crypto'
import { test as base, expect, type BrowserContext, type Locator, type Page } from '@playwright/test'
import { APP, APP_HOST, EDGE, ENV, ORG, TOKEN, URL_BASE } from './env'

const CSP_MARK = '[e2e: csp violation]'

/**
 * Collects, for every page of `context`: Content-Security-Policy violations (Chromium's
 * console report, and the `securitypolicyviolation` event, which a script added through
 * the DevTools protocol may listen to whatever the policy) and uncaught page errors.
 */
export async function watchProblems(context: BrowserContext): Promise<string[]> {
  const problems: string[] = []
  await context.addInitScript((mark: string) => {
    document.addEventListener(
      'securitypolicyviolation',
      (e) => console.error(`${mark} ${e.effectiveDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile}:${e.lineNumber})`),
      true,
    )
  }, CSP_MARK)
  context.on('console', (message) => {
    const text = message.text()
    if (text.includes(CSP_MARK) || /content[ -]security[ -]policy/i.test(text)) problems.push(`console ${message.type()}: ${text}`)
  })
  context.on('weberror', (error) => problems.push(`uncaught in the page: ${error.error().stack ?? error.error().message}`))
  return problems
}

/** `test` whose every page is watched: a CSP violation or a page error fails the test. */
export const test = base.extend<{ problems: string[] }>({
  problems: [
    async ({ context }, use) => {
      const problems = await watchProblems(context)
      await use(problems)
      expect(problems, 'no CSP violation and no uncaught error in the page during the test').toEqual([])
    },
    { auto: true },
  ],
})
export { expect }

/** A name no earlier run used. */
export function unique(prefix: string): string {
  return `${prefix}${randomBytes(5).toString('hex')}`
}

/** Calls the API with the admin token as bearer, from Node. */
export async function api<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const response = await fetch(`${URL_BASE}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await response.text()
  let parsed: unknown = text
  try {
    parsed = text === '' ? null : JSON.parse(text)
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, body: parsed as T }
}

/** The env's endpoints under the API. */
export const ENV_PATH = `/api/v1/orgs/${ORG}/apps/${APP}/envs/${ENV}`

/** `GET path` at the edge with the app's Host header, from Node (the browser cannot set Host). */
export function edgeGet(path: string): Promise<{ status: number; body: string }> {
  const at = EDGE.lastIndexOf(':')
  const host = EDGE.slice(0, at).replace(/^\[(.*)\]$/, '$1')
  const port = Number(EDGE.slice(at + 1))
  return new Promise((resolve, reject) => {
    const request = http.request({ host, port, path, method: 'GET', headers: { host: APP_HOST }, timeout: 15_000 }, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }))
      response.on('error', reject)
    })
    request.on('timeout', () => request.destroy(new Error(`GET http://${EDGE}${path} (Host: ${APP_HOST}) took over 15 s`)))
    request.on('error', reject)
    request.end()
  })
}

/** The same, as "status body" for `expect.poll`, errors included (the edge may refuse for a moment). */
export async function edgeAnswer(path: string): Promise<string> {
  try {
    const { status, body } = await edgeGet(path)
    return `${status} ${body}`
  } catch (e) {
    return `error ${e instanceof Error ? e.message : String(e)}`
  }
}

/** The sign-in form's fields. */
export function signInForm(page: Page): { token: Locator; submit: Locator; heading: Locator } {
  return {
    token: page.getByLabel('API token'),
    submit: page.getByRole('button', { name: 'Sign in', exact: true }),
    heading: page.getByRole('heading', { name: 'Sign in to Zeitwork' }),
  }
}

/** Signs in through the form, then lands on `next` (a dashboard path). */
export async function signIn(page: Page, token: string = TOKEN, next = `/orgs/${ORG}/apps`): Promise<void> {
  await page.goto(`/sign-in?next=${encodeURIComponent(next)}`)
  const form = signInForm(page)
  await form.token.fill(token)
  await form.submit.click()
  // `/` goes on to the token's home (its org's apps); any other path is where it lands.
  await expect(page).toHaveURL((url) => url.pathname !== '/sign-in' && (next === '/' || url.pathname === next.split('?')[0]))
  await expect(page.getByRole('button', { name: 'Sign out' })).toBeVisible()
}

/** The live indicator in the header (`role="status"`). */
export function liveIndicator(page: Page): Locator {
  return page.getByRole('banner').getByRole('status')
}

/** A table told apart by one of its column headers. */
export function tableWithColumn(page: Page, column: string): Locator {
  return page.getByRole('table').filter({ has: page.getByRole('columnheader', { name: column, exact: true }) })
}

/** The row of `table` whose row header is `name`. */
export function rowOf(table: Locator, name: string): Locator {
  return table.getByRole('row').filter({ has: table.page().getByRole('rowheader', { name, exact: true }) })
}

/** A state badge with exactly this text (so `healthy` does not match `unhealthy`). */
export function badge(scope: Locator | Page, state: string): Locator {
  return scope.locator('.badge', { hasText: new RegExp(`^${state}$`) })
}

/** The app overview's parts. */
export function overview(page: Page) {
  const active = page.getByRole('region', { name: /^Active deployment/ })
  const processes = tableWithColumn(page, 'Process')
  return {
    active,
    activeRelease: active.locator('dt:text-is("Release") + dd'),
    activeState: active.locator('dt:text-is("State") + dd'),
    processes,
    web: rowOf(processes, 'web'),
    /** The instances of process `web` (a table captioned "web (N)"). */
    instances: page.getByRole('table', { name: /^web \(\d+\)$/ }),
    releases: tableWithColumn(page, 'Image'),
    deployments: tableWithColumn(page, 'Rollback of'),
  }
}

/** Rows of the instances table that belong to the active deployment and are healthy. */
export function activeHealthyInstances(instances: Locator): Locator {
  return instances
    .locator('tbody tr')
    .filter({ hasNotText: 'old deployment' })
    .filter({ has: badge(instances.page(), 'healthy') })
}

/** The app's env status from the API (for waiting on the platform, not the page). */
export interface EnvStatus {
  deployment: { id: string; release_number: number } | null
  instances: { id: string; deployment_id: string; process: string; observed_state: string; desired_state: string }[]
}
export async function envStatus(): Promise<EnvStatus> {
  const { status, body } = await api<EnvStatus>('GET', `${ENV_PATH}/status`)
  if (status !== 200) throw new Error(`GET ${ENV_PATH}/status answered ${status}: ${JSON.stringify(body)}`)
  return body
}

/** "v<release> healthy=<n>": the active release and its healthy instances, as the API says. */
export async function activeSummary(): Promise<string> {
  const s = await envStatus()
  const healthy = s.instances.filter((i) => i.deployment_id === s.deployment?.id && i.observed_state === 'healthy').length
  return `v${s.deployment?.release_number ?? '-'} healthy=${healthy}`
}
