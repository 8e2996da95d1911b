// Timers and randomness behind an interface, so the stream logic is tested with a fake clock.

export type Handle = ReturnType<typeof setTimeout>

export interface Clock {
  setTimeout(fn: () => void, ms: number): Handle
  clearTimeout(handle: Handle): void
  setInterval(fn: () => void, ms: number): Handle
  clearInterval(handle: Handle): void
  random(): number
}

export const realClock: Clock = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (h) => clearInterval(h),
  random: () => Math.random(),
}

/** The first retry waits about 1 s; each failure doubles it up to 30 s; ±20 % jitter. */
export function backoff(attempt: number, random: () => number): number {
  const base = Math.min(30_000, 1000 * 2 ** Math.min(attempt, 10))
  return Math.min(30_000, Math.round(base * (0.8 + 0.4 * random())))
}
