// Accessibility (axe-core, keyboard), a phone-sized viewport and the dark theme.
import { createRequire } from 'node:module'
import type { Page } from '@playwright/test'
import type { AxeResults } from 'axe-core'
import { APP, ORG, TOKEN } from './env'
import { edgeAnswer, expect, overview, signIn, signInForm, test, unique } from './helpers'

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js')

interface Finding {
  id: string
  impact: string | null
  help: string
  nodes: string[]
}

/** Runs axe-core on the page as it is; fails on serious or critical violations. */
async function expectNoSeriousViolations(page: Page, what: string): Promise<void> {
  if (!(await page.evaluate(() => 'axe' in window))) await page.addScriptTag({ path: AXE })
  const findings = await page.evaluate(async (): Promise<Finding[]> => {
    const axe = (window as unknown as { axe: { run: (context: Document, options: object) => Promise<AxeResults> } }).axe
    const results = await axe.run(document, { resultTypes: ['violations'] })
    return results.violations.map((v) => ({
      id: v.id,
      impact: v.impact ?? null,
      help: v.help,
      nodes: v.nodes.slice(0, 5).map((n) => `${n.target.join(' ')}${n.failureSummary ? `: ${n.failureSummary.replace(/\s+/g, ' ')}` : ''}`),
    }))
  })
  const serious = findings.filter((f) => f.impact === 'serious' || f.impact === 'critical')
  expect(serious, `axe-core on ${what}: no serious or critical violation`).toEqual([])
}

test.describe('axe-core', () => {
  // Only here: axe is injected as a script, which the page's CSP would (rightly) refuse.
  test.use({ bypassCSP: true })

  test('finds no serious or critical violation on sign-in, the apps list, the app overview, its logs and builds, and the nodes', async ({ page }) => {
    await page.goto('/sign-in')
    await expect(signInForm(page).heading).toBeVisible()
    await expectNoSeriousViolations(page, 'the sign-in page')

    await signInForm(page).token.fill(TOKEN)
    await signInForm(page).submit.click()
    await expect(page.getByRole('button', { name: 'Sign out' })).toBeVisible()
    await page.goto(`/orgs/${ORG}/apps`)
    await expect(page.getByRole('link', { name: APP, exact: true })).toBeVisible()
    await expectNoSeriousViolations(page, 'the apps list')

    await page.getByRole('link', { name: APP, exact: true }).click()
    const o = overview(page)
    await expect(o.activeRelease).toBeVisible()
    await expect(o.releases.getByRole('row')).not.toHaveCount(0)
    await expect(o.deployments.getByRole('row')).not.toHaveCount(0)
    await expectNoSeriousViolations(page, 'the app overview')

    // A request through the edge, so that the log has a line whatever came before.
    await edgeAnswer(`/${unique('e2e-a11y-')}`)
    await page.getByRole('navigation', { name: 'App sections' }).getByRole('link', { name: 'Logs' }).click()
    await expect(page.getByRole('region', { name: 'Logs', exact: true }).getByRole('status')).toHaveText('Following', {
      timeout: 30_000,
    })
    await expect(page.getByRole('region', { name: 'Log lines' }).getByRole('listitem').first()).toBeVisible({ timeout: 30_000 })
    await expectNoSeriousViolations(page, 'the logs tab')

    await page.getByRole('navigation', { name: 'App sections' }).getByRole('link', { name: 'Builds' }).click()
    await expect(page.getByText('No builds in this env yet.')).toBeVisible()
    await expectNoSeriousViolations(page, 'the builds tab')

    await page.goto('/admin/nodes')
    await expect(page.locator('[data-label="Allocated of capacity"]').first()).toBeVisible()
    await expectNoSeriousViolations(page, 'the nodes page')
  })
})

test('the sign-in form can be filled and submitted with the keyboard alone', async ({ page }) => {
  await page.goto('/sign-in')
  const form = signInForm(page)
  await expect(form.heading).toBeVisible()
  // From the top of the page: the skip link first, then the token field.
  await page.keyboard.press('Tab')
  await expect(page.getByRole('link', { name: 'Skip to content' })).toBeFocused()
  await page.keyboard.press('Tab')
  await expect(form.token).toBeFocused()
  await page.keyboard.type(TOKEN)
  await page.keyboard.press('Tab')
  await expect(form.submit).toBeFocused()
  await page.keyboard.press('Enter')
  await expect(page).toHaveURL(/\/orgs\/[^/]+\/apps$|\/admin\/nodes$/)
  await expect(page.getByRole('button', { name: 'Sign out' })).toBeVisible()
})

/** Elements reaching past the right edge of the viewport, unclipped: what widens the page. */
async function horizontalOverflow(page: Page): Promise<{ scrollWidth: number; culprits: string[] }> {
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth
    // Whether a box between `el` and the page clips it: the ancestors that contain it
    // (an absolutely positioned element skips the static ones, a fixed one has none).
    const clipped = (el: Element): boolean => {
      let position = getComputedStyle(el).position
      if (position === 'fixed') return false
      for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
        const style = getComputedStyle(a)
        if (position === 'absolute' && style.position === 'static') continue
        if (style.overflowX !== 'visible') return true
        if (style.position === 'fixed') return false
        position = style.position === 'absolute' ? 'absolute' : 'static'
      }
      return false
    }
    const culprits: string[] = []
    for (const el of Array.from(document.body.querySelectorAll('*'))) {
      const r = el.getBoundingClientRect()
      if (r.right > width + 0.5 && !clipped(el)) {
        const name = `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.classList.length ? `.${Array.from(el.classList).join('.')}` : ''}`
        culprits.push(`${name} "${(el.textContent ?? '').trim().slice(0, 30)}" (right edge at ${Math.round(r.right)} px)`)
        if (culprits.length === 8) break
      }
    }
    return { scrollWidth: document.documentElement.scrollWidth, culprits }
  })
}

async function expectNoHorizontalScroll(page: Page, what: string): Promise<void> {
  const { scrollWidth, culprits } = await horizontalOverflow(page)
  expect(scrollWidth, `${what} at 360 px: no horizontal page scroll (too wide: ${culprits.join(', ') || 'nothing found'})`).toBeLessThanOrEqual(
    360,
  )
}

test.describe('at 360 px wide', () => {
  test.use({ viewport: { width: 360, height: 740 } })

  test('the apps list and the app page have no horizontal page scroll', async ({ page }) => {
    await signIn(page)
    await expect(page.getByRole('link', { name: APP, exact: true })).toBeVisible()
    await expectNoHorizontalScroll(page, 'the apps list')

    await page.getByRole('link', { name: APP, exact: true }).click()
    const o = overview(page)
    await expect(o.activeRelease).toBeVisible()
    await expect(o.releases.getByRole('row')).not.toHaveCount(0)
    await expect(o.deployments.getByRole('row')).not.toHaveCount(0)
    await expect(o.instances).toBeVisible()
    await expectNoHorizontalScroll(page, 'the app overview')

    const tabs = page.getByRole('navigation', { name: 'App sections' })
    // A long line in the log must wrap, not widen the page.
    const long = `/${unique('e2e-narrow-')}${'-long'.repeat(40)}`
    await edgeAnswer(long)
    await tabs.getByRole('link', { name: 'Logs' }).click()
    await expect(page.getByRole('region', { name: 'Log lines' }).getByText(long)).toBeVisible({ timeout: 30_000 })
    await expectNoHorizontalScroll(page, 'the logs tab')

    await tabs.getByRole('link', { name: 'Domains' }).click()
    await expect(page.getByRole('heading', { name: /^Domains/ })).toBeVisible()
    await expectNoHorizontalScroll(page, 'the domains tab')
  })
})

/** WCAG relative luminance of a CSS `rgb()`/`rgba()` colour. */
function luminance(css: string): number {
  const m = /rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)/.exec(css)
  if (!m) throw new Error(`not an rgb() colour: ${css}`)
  const [r, g, b] = [m[1], m[2], m[3]].map((c) => {
    const v = Number(c) / 255
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4
  }) as [number, number, number]
  return 0.2126 * r + 0.7152 * g + 0.0722 * b
}

async function colours(page: Page): Promise<{ background: number; text: number; css: string }> {
  const { background, color } = await page.evaluate(() => {
    const style = getComputedStyle(document.body)
    return { background: style.backgroundColor, color: style.color }
  })
  return { background: luminance(background), text: luminance(color), css: `background ${background}, text ${color}` }
}

test.describe('dark theme', () => {
  test.use({ colorScheme: 'dark' })

  test('follows prefers-color-scheme: a dark background with light text, light when light is preferred', async ({ page }) => {
    await page.goto('/sign-in')
    await expect(signInForm(page).heading).toBeVisible()
    const dark = await colours(page)
    expect(dark.background, `dark: ${dark.css}`).toBeLessThan(0.1)
    expect(dark.text, `dark: ${dark.css}`).toBeGreaterThan(0.5)

    await page.emulateMedia({ colorScheme: 'light' })
    const light = await colours(page)
    expect(light.background, `light: ${light.css}`).toBeGreaterThan(0.7)
    expect(light.background).toBeGreaterThan(dark.background)

    // Signed in, the views are dark too.
    await page.emulateMedia({ colorScheme: 'dark' })
    await signInForm(page).token.fill(TOKEN)
    await signInForm(page).submit.click()
    await expect(page.getByRole('button', { name: 'Sign out' })).toBeVisible()
    await page.goto(`/orgs/${ORG}/apps`)
    await expect(page.getByRole('link', { name: APP, exact: true })).toBeVisible()
    const apps = await colours(page)
    expect(apps.background, `apps list, dark: ${apps.css}`).toBeLessThan(0.1)
    const table = await page.evaluate(() => getComputedStyle(document.querySelector('table') ?? document.body).backgroundColor)
    if (!/rgba\(0, 0, 0, 0\)|transparent/.test(table)) expect(luminance(table), `apps table, dark: ${table}`).toBeLessThan(0.1)
  })
})
