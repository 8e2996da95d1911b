// Following an app's logs over Server-Sent Events. Lines carry increasing ids: they are
// kept in id order, a line seen twice is dropped, and after a drop the stream resumes after
// the last id seen (Last-Event-ID), so nothing is missed or repeated. Pausing buffers new
// lines until resume; at most `cap` lines are held, the oldest dropped first. A stream
// that has an end (a build's output) says so with an `end` event: the follower stops there
// and does not reconnect.

import type { Close, StreamHandlers } from './sse'
import { backoff, realClock, type Clock, type Handle } from './timers'
import type { LogLine } from './api/types'

export type LogStatus = 'connecting' | 'live' | 'reconnecting' | 'stopped' | 'ended'

/** Opens the log stream, resuming after `lastId` when given. */
export type LogConnect = (lastId: string | null, handlers: StreamHandlers) => Close

export interface LogOptions {
  connect: LogConnect
  clock?: Clock
  /** The most lines held (loaded and buffered together). */
  cap?: number
  onUnauthorized?: () => void
}

export interface LogFilter {
  instance?: string | null
  process?: string | null
  search?: string
  /** Show only the lines that match the search. */
  onlyMatches?: boolean
}

export interface LogView {
  lines: LogLine[]
  /** Lines among those shown by the filter that contain the search text. */
  matches: number
}

export class LogFollower {
  status: LogStatus = 'connecting'
  /** Why the stream stopped for good, when it did. */
  error: string | null = null
  paused = false
  /** Shown lines, in id order. */
  lines: LogLine[] = []
  /** Lines that arrived while paused, in id order. */
  buffered: LogLine[] = []
  /** Lines dropped to stay under the cap. */
  dropped = 0
  private lastId: number | null = null
  /** Ids at or below this were held and dropped; they are not taken again. */
  private floor = -Infinity
  private ids = new Set<number>()
  private readonly cap: number
  private readonly clock: Clock
  private close: Close | null = null
  private retry: Handle | null = null
  private attempt = 0
  private running = false
  private listeners = new Set<() => void>()

  constructor(private readonly options: LogOptions) {
    this.cap = options.cap ?? 5000
    this.clock = options.clock ?? realClock
  }

  start(): void {
    if (this.running) return
    this.running = true
    this.error = null
    this.open()
  }

  stop(): void {
    this.running = false
    this.close?.()
    this.close = null
    if (this.retry !== null) this.clock.clearTimeout(this.retry)
    this.retry = null
    this.setStatus('stopped')
  }

  /** The stream's own end: nothing more will come. */
  private finish(): void {
    this.running = false
    this.close?.()
    this.close = null
    this.setStatus('ended')
  }

  pause(): void {
    this.paused = true
    this.changed()
  }

  resume(): void {
    this.paused = false
    for (const line of this.buffered) insert(this.lines, line)
    this.buffered = []
    this.changed()
  }

  /** Called after every change (lines, status, pause). */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** The shown lines the filter selects, and how many contain the search text. */
  view(filter: LogFilter = {}): LogView {
    const needle = (filter.search ?? '').toLowerCase()
    const out: LogLine[] = []
    let matches = 0
    for (const line of this.lines) {
      if (filter.instance && line.instance_id !== filter.instance) continue
      if (filter.process && line.process !== filter.process) continue
      const hit = needle !== '' && line.line.toLowerCase().includes(needle)
      if (hit) matches += 1
      if (filter.onlyMatches && needle !== '' && !hit) continue
      out.push(line)
    }
    return { lines: out, matches }
  }

  /** Takes one line (exposed for tests and for a first page read without streaming). */
  add(line: LogLine): void {
    if (line.id <= this.floor || this.ids.has(line.id)) return
    this.ids.add(line.id)
    insert(this.paused ? this.buffered : this.lines, line)
    this.enforceCap()
  }

  private enforceCap(): void {
    while (this.lines.length + this.buffered.length > this.cap) {
      const from = this.lines.length > 0 ? this.lines : this.buffered
      const oldest = from.shift()
      if (!oldest) break
      this.ids.delete(oldest.id)
      this.floor = Math.max(this.floor, oldest.id)
      this.dropped += 1
    }
  }

  private setStatus(status: LogStatus): void {
    if (this.status === status) return
    this.status = status
    this.changed()
  }

  private changed(): void {
    for (const listener of this.listeners) listener()
  }

  private open(): void {
    this.retry = null
    let ended = false
    this.close = this.options.connect(this.lastId === null ? null : String(this.lastId), {
      onOpen: () => {
        if (ended) return
        this.attempt = 0
        this.setStatus('live')
      },
      onEvent: (e) => {
        if (ended) return
        const id = e.id === null ? NaN : Number(e.id)
        if (Number.isSafeInteger(id)) this.lastId = Math.max(this.lastId ?? id, id)
        if (e.type === 'end') {
          ended = true
          this.finish()
          return
        }
        if (e.type !== 'log' || e.data === null) return
        let line: LogLine
        try {
          line = JSON.parse(e.data) as LogLine
        } catch {
          return
        }
        if (typeof line.id !== 'number') return
        this.add(line)
        this.changed()
      },
      onEnd: (error) => {
        if (ended) return
        ended = true
        this.close = null
        if (!this.running) return
        const status = error?.status ?? null
        if (status === 401) {
          this.stop()
          this.options.onUnauthorized?.()
          return
        }
        if (status !== null && status >= 400 && status < 500 && status !== 408 && status !== 429) {
          this.stop()
          this.error = error?.message ?? `the log stream answered ${status}`
          this.changed()
          return
        }
        this.setStatus('reconnecting')
        const wait = backoff(this.attempt, () => this.clock.random())
        this.attempt += 1
        this.retry = this.clock.setTimeout(() => this.open(), wait)
      },
    })
  }
}

/** Inserts `line` into `lines` (sorted by id); appending is the common case. */
function insert(lines: LogLine[], line: LogLine): void {
  const last = lines[lines.length - 1]
  if (!last || last.id < line.id) {
    lines.push(line)
    return
  }
  let lo = 0
  let hi = lines.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if ((lines[mid]?.id ?? 0) < line.id) lo = mid + 1
    else hi = mid
  }
  lines.splice(lo, 0, line)
}

export interface Piece {
  text: string
  match: boolean
}

/** Splits `text` around every case-insensitive occurrence of `search`, for highlighting. */
export function highlight(text: string, search: string): Piece[] {
  if (search === '') return [{ text, match: false }]
  const hay = text.toLowerCase()
  const needle = search.toLowerCase()
  const out: Piece[] = []
  let at = 0
  for (;;) {
    const i = hay.indexOf(needle, at)
    if (i < 0) break
    if (i > at) out.push({ text: text.slice(at, i), match: false })
    out.push({ text: text.slice(i, i + needle.length), match: true })
    at = i + needle.length
  }
  if (at < text.length || out.length === 0) out.push({ text: text.slice(at), match: false })
  return out
}
