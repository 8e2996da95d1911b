// A deterministic clock for unit tests: time moves only when `tick` says so.
import type { Clock, Handle } from './timers'

interface Timer {
  at: number
  every: number | null
  fn: () => void
}

export class FakeClock implements Clock {
  now = 0
  private next = 1
  private timers = new Map<number, Timer>()
  randomValue = 0.5

  setTimeout(fn: () => void, ms: number): Handle {
    return this.add({ at: this.now + ms, every: null, fn })
  }
  setInterval(fn: () => void, ms: number): Handle {
    return this.add({ at: this.now + ms, every: ms, fn })
  }
  clearTimeout(handle: Handle): void {
    this.timers.delete(handle as unknown as number)
  }
  clearInterval(handle: Handle): void {
    this.timers.delete(handle as unknown as number)
  }
  random(): number {
    return this.randomValue
  }
  /** Timers still pending. */
  get pending(): number {
    return this.timers.size
  }

  /** Advances time by `ms`, running every timer that falls due, in order. */
  tick(ms: number): void {
    const end = this.now + ms
    for (;;) {
      let due: [number, Timer] | null = null
      for (const entry of this.timers) {
        if (entry[1].at <= end && (due === null || entry[1].at < due[1].at)) due = entry
      }
      if (due === null) break
      const [id, timer] = due
      this.now = timer.at
      if (timer.every === null) this.timers.delete(id)
      else timer.at += timer.every
      timer.fn()
    }
    this.now = end
  }

  private add(timer: Timer): Handle {
    const id = this.next++
    this.timers.set(id, timer)
    return id as unknown as Handle
  }
}
