import { describe, expect, it } from 'vitest'
import { policySummary } from './policy'

describe('policySummary', () => {
  it('says defaults for an empty policy', () => {
    expect(policySummary({ balance: 'round-robin' })).toEqual(['defaults'])
    expect(policySummary(null)).toEqual(['defaults'])
  })

  it('names what differs from the defaults', () => {
    expect(
      policySummary({
        balance: 'consistent-hash',
        hash_on: 'cookie:sid',
        timeout: 30,
        rate_limit: { per_client: 10, burst: 20 },
        headers: { 'strict-transport-security': 'max-age=60', 'x-frame-options': '' },
        cors: { origins: ['https://a.example'], credentials: true, methods: ['GET'], headers: [], expose: [] },
      }),
    ).toEqual([
      'consistent-hash on cookie:sid',
      'timeout 30s',
      'rate limit 10/s per client, burst 20',
      'headers: strict-transport-security',
      'headers off: x-frame-options',
      'CORS for https://a.example with credentials',
    ])
  })
})
