// Signing in and out, what the browser keeps of a session, the page's security headers,
// and that a token of one org sees nothing of another.
import { APP, ORG, OTHER_TOKEN, TOKEN, URL_BASE } from './env'
import { expect, signIn, signInForm, test } from './helpers'

test('signs in through the form: an HttpOnly SameSite=Strict cookie, nothing in web storage, a strict CSP', async ({
  page,
  context,
}) => {
  // The token may leave the page once: in the body of POST /api/v1/session.
  const carriers: string[] = []
  page.on('request', (request) => {
    const headers = Object.values(request.headers()).join('\n')
    if (request.url().includes(TOKEN) || headers.includes(TOKEN)) carriers.push(`${request.method()} ${request.url()} (url or header)`)
    if ((request.postData() ?? '').includes(TOKEN)) carriers.push(`${request.method()} ${new URL(request.url()).pathname}`)
  })

  const response = await page.goto('/')
  expect(response, 'the dashboard answers /').not.toBeNull()
  const csp = response!.headers()['content-security-policy']
  expect(csp, 'the page is served with a Content-Security-Policy').toBeTruthy()
  expect(csp).toMatch(/(^|;)\s*script-src 'self'\s*(;|$)/)
  expect(csp).not.toContain('unsafe-inline')
  expect(csp).not.toContain('unsafe-eval')

  // Not signed in: the dashboard asks for a token.
  await expect(page).toHaveURL(/\/sign-in$/)
  const form = signInForm(page)
  await expect(form.heading).toBeVisible()
  await form.token.fill(TOKEN)
  await form.submit.click()
  await expect(page).toHaveURL(/\/orgs\/[^/]+\/apps$|\/admin\/nodes$/)
  await expect(page.getByRole('button', { name: 'Sign out' })).toBeVisible()

  const cookies = await context.cookies()
  const session = cookies.find((c) => c.name === 'zw_session')
  expect(session, `a zw_session cookie among ${cookies.map((c) => c.name).join(', ') || 'none'}`).toBeDefined()
  expect(session!.httpOnly, 'zw_session is HttpOnly').toBe(true)
  expect(session!.sameSite, 'zw_session is SameSite=Strict').toBe('Strict')
  expect(session!.path, 'zw_session is for the whole site').toBe('/')
  expect(session!.value).not.toContain(TOKEN)

  const kept = await page.evaluate(() => {
    const dump = (s: Storage) => Array.from({ length: s.length }, (_, i) => `${s.key(i)}=${s.getItem(s.key(i) ?? '')}`)
    return { local: dump(localStorage), session: dump(sessionStorage), cookie: document.cookie }
  })
  for (const [where, entries] of [
    ['localStorage', kept.local],
    ['sessionStorage', kept.session],
  ] as const) {
    for (const entry of entries) {
      expect(entry, `${where} holds nothing of the token`).not.toContain(TOKEN)
      expect(entry, `${where} holds nothing of the session cookie`).not.toContain(session!.value)
    }
  }
  expect(kept.cookie, 'scripts cannot read the session cookie').not.toContain('zw_session')
  // What the sign-in form held is gone from the page too.
  expect(await page.content()).not.toContain(TOKEN)
  expect(carriers, 'the token is sent once, to POST /api/v1/session').toEqual(['POST /api/v1/session'])

  // Every page the dashboard serves has the policy (the SPA's deep links too).
  const deep = await page.request.get(`/orgs/${ORG}/apps/${APP}/logs`)
  expect(deep.headers()['content-security-policy']).toBe(csp)
})

test('signs out: back on the sign-in page, the cookie gone, and the apps need signing in again', async ({ page, context }) => {
  await signIn(page)
  await expect(page.getByRole('link', { name: APP, exact: true })).toBeVisible()
  const cookie = (await context.cookies()).find((c) => c.name === 'zw_session')
  expect(cookie, 'signed in with a session cookie').toBeDefined()
  await page.getByRole('button', { name: 'Sign out' }).click()
  await expect(page).toHaveURL(/\/sign-in$/)
  await expect(signInForm(page).heading).toBeVisible()
  await expect(page.getByRole('button', { name: 'Sign out' })).toHaveCount(0)
  expect((await context.cookies()).map((c) => c.name)).not.toContain('zw_session')
  // The server forgot it: the old cookie, sent again, is refused.
  const replay = await fetch(`${URL_BASE}/api/v1/session`, { headers: { cookie: `zw_session=${cookie!.value}` } })
  expect(replay.status, 'the session is over on the server too').toBe(401)
  const apps = await fetch(`${URL_BASE}/api/v1/orgs/${ORG}/apps`, { headers: { cookie: `zw_session=${cookie!.value}` } })
  expect(apps.status).toBe(401)

  await page.goto(`/orgs/${ORG}/apps`)
  await expect(page).toHaveURL((url) => url.pathname === '/sign-in' && url.searchParams.get('next') === `/orgs/${ORG}/apps`)
  await expect(signInForm(page).heading).toBeVisible()
  await expect(page.getByRole('link', { name: APP, exact: true })).toHaveCount(0)
})

test("a token of another org sees nothing of demo: not in the switcher, an error on its page, 404 from the API", async ({
  page,
}) => {
  await signIn(page, OTHER_TOKEN, '/')
  await expect(page).toHaveURL(/\/orgs\/other\/apps$/)
  await expect(page.getByText('No apps yet.')).toBeVisible()

  const switcher = page.getByRole('banner').locator('.org-switch')
  await expect(switcher).toContainText('other')
  await expect(switcher).not.toContainText(ORG)
  await expect(page.getByRole('option', { name: ORG, exact: true })).toHaveCount(0)

  await page.goto(`/orgs/${ORG}/apps`)
  await expect(page.getByRole('heading', { name: `Apps in ${ORG}` })).toBeVisible()
  await expect(page.getByRole('main').getByRole('alert')).toBeVisible()
  await expect(page.getByRole('link', { name: APP, exact: true })).toHaveCount(0)
  await expect(page.getByRole('main')).not.toContainText(APP)
  await expect(page.getByRole('option', { name: ORG, exact: true })).toHaveCount(0)

  // With this session, the API itself answers 404 (asked by the page, and with its cookie).
  const inPage = await page.evaluate(async (org) => (await fetch(`/api/v1/orgs/${org}/apps`)).status, ORG)
  expect(inPage).toBe(404)
  const direct = await page.request.get(`/api/v1/orgs/${ORG}/apps`)
  expect(direct.status()).toBe(404)
  expect(await direct.text()).not.toContain(APP)
})
