// The platform admin's views and what the app page says of where things run: the node
// that runs the example, its heartbeat and what its instances hold of it, the app's
// instances named by that node, and the app's builds.
import { APP, ORG } from './env'
import { activeHealthyInstances, api, badge, expect, overview, signIn, test } from './helpers'

interface NodeRecord {
  name: string
  millicpus: number
  allocated_millicpus: number
  allocated_memory_mb: number
}

test("nodes: the example's node is ready and beating, and shows what its instances hold of its capacity", async ({ page }) => {
  const nodes = await api<{ nodes: NodeRecord[] }>('GET', '/api/v1/nodes')
  expect(nodes.status).toBe(200)
  const node = nodes.body.nodes[0]
  expect(node, 'zeitwork up enrolls one node').toBeDefined()
  if (!node) return
  // The example's instance holds some of it (the figure placement goes by).
  expect(node.allocated_millicpus).toBeGreaterThan(0)
  expect(node.allocated_memory_mb).toBeGreaterThan(0)

  await signIn(page, undefined, '/admin/nodes')
  const row = page.locator('tbody tr').filter({ has: page.getByRole('rowheader', { name: node.name }) })
  await expect(row).toHaveCount(1)
  await expect(badge(row.locator('[data-label="State"]'), 'ready')).toBeVisible()
  await expect(row.locator('[data-label="Heartbeat"]')).toHaveText(/ago/)
  await expect(row.locator('[data-label="Heartbeat"]')).not.toHaveText(/late/)
  const held = row.locator('[data-label="Allocated of capacity"]')
  await expect(held).toContainText(/\d[\d.]* CPU of \d[\d.]* CPU \(\d+ %\)/)
  await expect(held).toContainText(/ of .*B \(\d+ %\)/)
  // One machine, one node: `zeitwork up` puts it on no overlay, and says so.
  await expect(row.locator('[data-label="Overlay"]')).toHaveText('not on the overlay')

  // The app's instance names that node, not an id.
  await page.goto(`/orgs/${ORG}/apps/${APP}`)
  const instance = activeHealthyInstances(overview(page).instances).first()
  await expect(instance).toBeVisible({ timeout: 30_000 })
  await expect(instance).toContainText(node.name)
})

test('builds: the tab lists the env’s builds (none for an app deployed from an image) and says where they come from', async ({
  page,
}) => {
  await signIn(page, undefined, `/orgs/${ORG}/apps/${APP}/builds`)
  const section = page.getByRole('region', { name: /^Builds/ })
  await expect(section.getByRole('heading', { name: /^Builds/ })).toBeVisible()
  await expect(section).toContainText('No builds in this env yet.')
  await expect(section).toContainText('zeitwork deploy')
})
