// What the harness (crates/e2e/tests/dashboard.rs) tells the browser tests about the
// platform it started: read once, and every missing variable named in one clear error.

const NEEDED = {
  ZW_URL: 'the dashboard/API base URL, e.g. http://127.0.0.1:34567',
  ZW_TOKEN: 'a platform admin token',
  ZW_EDGE: "the edge's host:port",
  ZW_APP_HOST: "the example app's hostname at the edge, e.g. hello-demo.zeitwork.localhost",
  ZW_OTHER_TOKEN: 'a reader token of org `other`',
  ZW_PHASE: '`main`, or `degraded` once NATS is down',
} as const

type Name = keyof typeof NEEDED

function read(): Record<Name, string> {
  const missing = (Object.keys(NEEDED) as Name[]).filter((name) => !process.env[name])
  if (missing.length > 0) {
    throw new Error(
      `The dashboard's browser tests run against a platform that crates/e2e/tests/dashboard.rs starts and prepares; ` +
        `it passes its coordinates in the environment, and these are missing:\n` +
        missing.map((name) => `  ${name}: ${NEEDED[name]}`).join('\n') +
        `\nRun them with \`cargo test -p zeitwork-e2e --test dashboard\`, or set the variables yourself.`,
    )
  }
  const values = Object.fromEntries((Object.keys(NEEDED) as Name[]).map((name) => [name, process.env[name] as string]))
  const phase = values.ZW_PHASE
  if (phase !== 'main' && phase !== 'degraded') throw new Error(`ZW_PHASE must be \`main\` or \`degraded\`, not ${JSON.stringify(phase)}`)
  try {
    new URL(values.ZW_URL as string)
  } catch {
    throw new Error(`ZW_URL must be a URL such as http://127.0.0.1:34567, not ${JSON.stringify(values.ZW_URL)}`)
  }
  return values as Record<Name, string>
}

const values = read()

export const URL_BASE = values.ZW_URL.replace(/\/+$/, '')
export const TOKEN = values.ZW_TOKEN
export const OTHER_TOKEN = values.ZW_OTHER_TOKEN
export const EDGE = values.ZW_EDGE
export const APP_HOST = values.ZW_APP_HOST
export const PHASE = values.ZW_PHASE as 'main' | 'degraded'

/** The org and app the harness prepares (`zeitwork up`'s example). */
export const ORG = 'demo'
export const APP = 'hello'
export const ENV = 'prod'
