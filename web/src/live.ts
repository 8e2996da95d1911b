// One change stream per tab. Views subscribe with a predicate over events and a refresh
// callback; the stream calls the callback (at most once per burst) when a matching event
// commits. When the stream drops, every view is refreshed every 5 s while it reconnects
// with jittered exponential back-off, resuming after the last seen seq (no event lost).

import type { Close, StreamHandlers } from './sse'
import { backoff, realClock, type Clock, type Handle } from './timers'
import type { Event } from './api/types'

export type LiveStatus = 'connecting' | 'live' | 'polling'

/** Opens the stream after `after` (null: the server's default start). */
export type Connect = (after: number | null, handlers: StreamHandlers) => Close

export interface LiveOptions {
  connect: Connect
  clock?: Clock
  /** How often views refresh while the stream is down. */
  pollEvery?: number
  /** Events for one view within this window cause one refresh. */
  coalesce?: number
  /** Called when the stream is refused with 401; the stream stops. */
  onUnauthorized?: () => void
}

interface Subscription {
  match: (event: Event) => boolean
  refresh: () => void
  pending: Handle | null
}

export class Live {
  status: LiveStatus = 'connecting'
  lastSeq: number | null = null
  private readonly clock: Clock
  private readonly pollEvery: number
  private readonly coalesce: number
  private subs = new Set<Subscription>()
  private statusListeners = new Set<(status: LiveStatus) => void>()
  private close: Close | null = null
  private retry: Handle | null = null
  private poll: Handle | null = null
  private attempt = 0
  private running = false

  constructor(private readonly options: LiveOptions) {
    this.clock = options.clock ?? realClock
    this.pollEvery = options.pollEvery ?? 5000
    this.coalesce = options.coalesce ?? 100
  }

  /**
   * Starts the stream after `after` (the log's head, read just now), once. Views that
   * loaded before the head was read may have missed a change committed in between (it is
   * at or below `after`, so the stream does not bring it): they refresh once now.
   */
  start(after: number | null = null): void {
    if (this.running) return
    this.running = true
    this.lastSeq = after
    this.setStatus('connecting')
    this.open()
    for (const sub of this.subs) this.schedule(sub)
  }

  stop(): void {
    this.running = false
    this.close?.()
    this.close = null
    if (this.retry !== null) this.clock.clearTimeout(this.retry)
    if (this.poll !== null) this.clock.clearInterval(this.poll)
    this.retry = this.poll = null
    for (const sub of this.subs) this.cancel(sub)
  }

  /** Calls `refresh` after events that `match` commit; returns the unsubscribe. */
  subscribe(match: (event: Event) => boolean, refresh: () => void): () => void {
    const sub: Subscription = { match, refresh, pending: null }
    this.subs.add(sub)
    return () => {
      this.cancel(sub)
      this.subs.delete(sub)
    }
  }

  onStatus(listener: (status: LiveStatus) => void): () => void {
    this.statusListeners.add(listener)
    return () => this.statusListeners.delete(listener)
  }

  private setStatus(status: LiveStatus): void {
    if (this.status === status) return
    this.status = status
    for (const listener of this.statusListeners) listener(status)
  }

  private open(): void {
    this.retry = null
    let ended = false
    this.close = this.options.connect(this.lastSeq, {
      onOpen: () => {
        if (ended) return
        this.attempt = 0
        if (this.poll !== null) this.clock.clearInterval(this.poll)
        this.poll = null
        this.setStatus('live')
      },
      onEvent: (e) => {
        if (ended) return
        const seq = e.id === null ? NaN : Number(e.id)
        if (Number.isSafeInteger(seq)) this.lastSeq = Math.max(this.lastSeq ?? 0, seq)
        if (e.data === null) return
        let event: Event
        try {
          event = JSON.parse(e.data) as Event
        } catch {
          return
        }
        this.dispatch(event)
      },
      onEnd: (error) => {
        if (ended) return
        ended = true
        this.close = null
        if (!this.running) return
        if (error?.status === 401) {
          this.stop()
          this.options.onUnauthorized?.()
          return
        }
        this.dropped()
      },
    })
  }

  private dropped(): void {
    this.setStatus('polling')
    if (this.poll === null) {
      this.poll = this.clock.setInterval(() => {
        for (const sub of this.subs) sub.refresh()
      }, this.pollEvery)
    }
    const wait = backoff(this.attempt, () => this.clock.random())
    this.attempt += 1
    this.retry = this.clock.setTimeout(() => this.open(), wait)
  }

  private dispatch(event: Event): void {
    for (const sub of this.subs) {
      if (sub.match(event)) this.schedule(sub)
    }
  }

  /** One refresh of `sub` soon, however many reasons come within the window. */
  private schedule(sub: Subscription): void {
    if (sub.pending !== null) return
    sub.pending = this.clock.setTimeout(() => {
      sub.pending = null
      sub.refresh()
    }, this.coalesce)
  }

  private cancel(sub: Subscription): void {
    if (sub.pending !== null) this.clock.clearTimeout(sub.pending)
    sub.pending = null
  }
}
