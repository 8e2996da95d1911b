// A route policy in a few readable lines (defaults are left out).
import type { RoutePolicy } from './api/types'

/** A duration as the API writes it: "30s", "500ms", or a number of seconds. */
function duration(d: string | number): string {
  return typeof d === 'number' ? `${d}s` : d
}

export function policySummary(policy: RoutePolicy | null | undefined): string[] {
  if (!policy) return ['defaults']
  const out: string[] = []
  if (policy.balance && policy.balance !== 'round-robin') {
    out.push(policy.hash_on ? `${policy.balance} on ${policy.hash_on}` : policy.balance)
  }
  if (policy.timeout !== null && policy.timeout !== undefined) out.push(`timeout ${duration(policy.timeout)}`)
  if (policy.max_body_mb) out.push(`body ≤ ${policy.max_body_mb} MiB`)
  const limit = policy.rate_limit
  if (limit) {
    const parts: string[] = []
    if (limit.per_client) parts.push(`${limit.per_client}/s per client`)
    if (limit.per_route) parts.push(`${limit.per_route}/s in all`)
    if (limit.burst) parts.push(`burst ${limit.burst}`)
    if (parts.length) out.push(`rate limit ${parts.join(', ')}`)
  }
  const headers = Object.entries(policy.headers ?? {})
  if (headers.length) {
    const off = headers.filter(([, v]) => v === '').map(([k]) => k)
    const set = headers.filter(([, v]) => v !== '').map(([k]) => k)
    if (set.length) out.push(`headers: ${set.join(', ')}`)
    if (off.length) out.push(`headers off: ${off.join(', ')}`)
  }
  if (policy.cors) out.push(`CORS for ${policy.cors.origins.join(', ') || 'no origin'}${policy.cors.credentials ? ' with credentials' : ''}`)
  return out.length ? out : ['defaults']
}
