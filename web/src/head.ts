// Where the change stream and the events page start. The stream starts after the log's
// head, which every event page states (one request). The events page shows the newest
// events the token can see, which may be far below the head (other orgs' events are not
// its), so it finds the newest visible seq by probing: doubling `after` until a probe finds
// nothing, then bisecting (about 2·log2(seq) tiny requests).
import { api } from './context'
import { call } from './api/client'
import type { Live } from './live'

/** The first seq after `after`, or null when there is none. */
export type Probe = (after: number) => Promise<number | null>

/** The newest seq `probe` can see (0 when the log is empty for this token). */
export async function findHead(probe: Probe): Promise<number> {
  const first = await probe(0)
  if (first === null) return 0
  // Invariant: lo is a seen seq; once known, no seq is above hi.
  let lo = first
  let step = 1
  let hi: number | null = null
  while (hi === null) {
    const beyond = await probe(lo + step)
    if (beyond === null) hi = lo + step
    else {
      lo = beyond
      step *= 2
    }
  }
  // lo is a seen seq; the newest seq is in [lo, hi].
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2)
    const next = await probe(mid)
    if (next === null) hi = mid
    else lo = next
  }
  return lo
}

/** Probes the API's event list. */
export const apiProbe: Probe = async (after) => {
  const page = await call(api.GET('/api/v1/events', { params: { query: { after, limit: 1 } } }))
  return page.events[0]?.seq ?? null
}

/** The newest committed seq of the whole log. */
export async function logHead(): Promise<number> {
  const page = await call(api.GET('/api/v1/events', { params: { query: { limit: 1 } } }))
  return page.head
}

/** Starts the stream after the log's head (or from the server's default if that fails). */
export async function startLive(live: Live, head: () => Promise<number> = logHead): Promise<void> {
  let after: number | null
  try {
    after = await head()
  } catch {
    after = null
  }
  live.start(after)
}
