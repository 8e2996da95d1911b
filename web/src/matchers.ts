// Which events make a view stale. Events name ids (org_id, data.app_id, data.env_id, …);
// an event that names another app or env than the view's is not the view's business, and
// one that names neither may be (an instance changed state), so it refreshes.
import type { Event } from './api/types'

function field(event: Event, name: string): unknown {
  const data: unknown = event.data
  if (typeof data !== 'object' || data === null) return undefined
  return (data as Record<string, unknown>)[name]
}

/** The event's type (`deployment_created`, …). */
export function eventType(event: Event): string {
  const t = field(event, 'type')
  return typeof t === 'string' ? t : ''
}

/** The app id the event names, if any. */
export function eventApp(event: Event): string | null {
  const id = field(event, 'app_id')
  return typeof id === 'string' ? id : null
}

/** Events of one org (platform events, without an org, never). */
export function ofOrg(orgId: string): (event: Event) => boolean {
  return (event) => event.org_id === orgId
}

/** Events of one app of an org: those that name it, or name no app and no foreign env. */
export function ofApp(orgId: string, appId: string, envIds: () => readonly string[] = () => []): (event: Event) => boolean {
  return (event) => {
    if (event.org_id !== orgId) return false
    const app = eventApp(event)
    if (app !== null) return app === appId
    const env = field(event, 'env_id')
    const envs = envIds()
    if (typeof env === 'string' && envs.length > 0) return envs.includes(env)
    return true
  }
}

/** Platform events: nodes and regions (no org). */
export function ofPlatform(event: Event): boolean {
  return event.org_id === null || event.org_id === undefined
}

/** Event filters of the events page. */
export interface EventFilter {
  type: string
  actor: string
  appId: string | null
}

export function matchesFilter(event: Event, filter: EventFilter): boolean {
  if (filter.type && !eventType(event).includes(filter.type.trim())) return false
  if (filter.actor && !event.actor.toLowerCase().includes(filter.actor.trim().toLowerCase())) return false
  if (filter.appId && eventApp(event) !== filter.appId) return false
  return true
}

/** Payload fields never shown in a summary (the server withholds their values anyway). */
const HIDDEN = new Set(['type', 'hash', 'credential_hash', 'ciphertext', 'sealed_key', 'sealed_credentials'])

/** The payload as `key=value` pairs, as `zeitwork events` prints it. */
export function eventSummary(event: Event): string {
  const data: unknown = event.data
  if (typeof data !== 'object' || data === null) return ''
  return Object.entries(data as Record<string, unknown>)
    .filter(([k, v]) => !HIDDEN.has(k) && v !== null && v !== undefined)
    .map(([k, v]) => {
      if (Array.isArray(v)) return `${k}=[${v.length}]`
      if (typeof v === 'object') return `${k}={…}`
      return `${k}=${String(v)}`
    })
    .join(' ')
}
