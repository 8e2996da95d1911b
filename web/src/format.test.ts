import { describe, expect, it } from 'vitest'
import { age, bytes, exactTime, httpUrl, megabytes, millicpus, relativeTime, share } from './format'

const now = Date.parse('2024-05-01T12:00:00Z')

describe('format', () => {
  it('relative times', () => {
    expect(relativeTime('2024-05-01T12:00:00Z', now)).toBe('just now')
    expect(relativeTime('2024-05-01T11:59:30Z', now)).toBe('30 s ago')
    expect(relativeTime('2024-05-01T11:57:00Z', now)).toBe('3 min ago')
    expect(relativeTime('2024-05-01T09:00:00Z', now)).toBe('3 h ago')
    expect(relativeTime('2024-04-28T12:00:00Z', now)).toBe('3 d ago')
    expect(relativeTime('2024-05-01T12:10:00Z', now)).toBe('in 10 min')
    expect(relativeTime(null, now)).toBe('—')
    expect(relativeTime('garbage', now)).toBe('—')
  })

  it('ages and exact times', () => {
    expect(age('2024-05-01T11:59:15Z', now)).toBe('45 s')
    expect(age('2024-05-01T12:00:09Z', now)).toBe('0 s')
    expect(exactTime('2024-05-01T12:00:00.123456Z')).toBe('2024-05-01T12:00:00Z')
  })

  it('bytes and memory', () => {
    expect(bytes(512)).toBe('512 B')
    expect(bytes(1536)).toBe('1.5 KiB')
    expect(megabytes(512)).toBe('512 MiB')
    expect(megabytes(2048)).toBe('2 GiB')
    expect(megabytes(1000)).toBe('1000 MiB')
  })

  it('links only to http(s) URLs', () => {
    expect(httpUrl('https://a.example/')).toBe('https://a.example/')
    expect(httpUrl('javascript:alert(1)')).toBeNull()
    expect(httpUrl(null)).toBeNull()
  })

  it('millicpus and shares', () => {
    expect(millicpus(250)).toBe('0.25 CPU')
    expect(millicpus(2000)).toBe('2 CPU')
    expect(share(500, 2000)).toBe(25)
    expect(share(1, 0)).toBe(0)
    expect(share(3000, 2000)).toBe(100)
  })
})
