// Formatting for people: relative times, sizes, CPU shares.

const UNITS: [string, number][] = [
  ['d', 86_400],
  ['h', 3600],
  ['min', 60],
  ['s', 1],
]

/** "12 s ago", "3 min ago", "in 2 h", "just now"; `now` in ms since the epoch. */
export function relativeTime(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return '—'
  const at = Date.parse(iso)
  if (Number.isNaN(at)) return '—'
  const seconds = Math.round((now - at) / 1000)
  const abs = Math.abs(seconds)
  if (abs < 5) return 'just now'
  const [unit, size] = UNITS.find(([, s]) => abs >= s) ?? ['s', 1]
  const n = Math.floor(abs / size)
  return seconds >= 0 ? `${n} ${unit} ago` : `in ${n} ${unit}`
}

/** An age in whole seconds as "45 s", "3 min", "2 h", "4 d". */
export function age(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return '—'
  const at = Date.parse(iso)
  if (Number.isNaN(at)) return '—'
  const abs = Math.max(0, Math.round((now - at) / 1000))
  const [unit, size] = UNITS.find(([, s]) => abs >= s) ?? ['s', 1]
  return `${Math.floor(abs / size)} ${unit}`
}

/** A timestamp for a title attribute: the ISO time in UTC without fractions. */
export function exactTime(iso: string | null | undefined): string {
  if (!iso) return ''
  const at = Date.parse(iso)
  return Number.isNaN(at) ? iso : new Date(at).toISOString().replace(/\.\d+Z$/, 'Z')
}

/** Bytes in binary units: "512 B", "1.5 KiB", "2 GiB". */
export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']
  let value = n
  let i = 0
  while (Math.abs(value) >= 1024 && i < units.length - 1) {
    value /= 1024
    i += 1
  }
  return `${trim(value)} ${units[i]}`
}

/** Memory given in MiB, as the API reports it. */
export function megabytes(mb: number): string {
  return bytes(mb * 1024 * 1024)
}

/** Millicpus as CPUs: 250 → "0.25 CPU", 2000 → "2 CPU". */
export function millicpus(m: number): string {
  return `${trim(m / 1000)} CPU`
}

/** "used of total (p %)", for capacity. */
export function share(used: number, total: number): number {
  if (total <= 0) return 0
  return Math.min(100, Math.round((used / total) * 100))
}

function trim(value: number): string {
  const rounded = Math.abs(value) >= 100 ? Math.round(value) : Math.round(value * 100) / 100
  return String(rounded)
}

/** `url` when it is an http(s) URL (safe as a link target), else null. */
export function httpUrl(url: string | null | undefined): string | null {
  if (!url) return null
  return /^https?:\/\//i.test(url) ? url : null
}
