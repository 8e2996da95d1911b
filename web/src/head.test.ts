import { describe, expect, it } from 'vitest'
import { findHead, type Probe } from './head'

function probeOf(seqs: number[]): { probe: Probe; calls: () => number } {
  let calls = 0
  const sorted = [...seqs].sort((a, b) => a - b)
  return {
    probe: async (after) => {
      calls += 1
      return sorted.find((s) => s > after) ?? null
    },
    calls: () => calls,
  }
}

describe('findHead', () => {
  it('is 0 for an empty log', async () => {
    expect(await findHead(probeOf([]).probe)).toBe(0)
  })

  it('finds the newest seq of dense and sparse logs', async () => {
    for (const seqs of [[1], [1, 2, 3], [5, 9, 1000], Array.from({ length: 5000 }, (_, i) => i + 1), [3, 70_000, 70_001, 1_234_567]]) {
      const { probe, calls } = probeOf(seqs)
      expect(await findHead(probe)).toBe(Math.max(...seqs))
      expect(calls()).toBeLessThan(100)
    }
  })

  it('takes about 2·log2(head) probes', async () => {
    const { probe, calls } = probeOf(Array.from({ length: 100_000 }, (_, i) => i + 1))
    expect(await findHead(probe)).toBe(100_000)
    expect(calls()).toBeLessThanOrEqual(2 * Math.ceil(Math.log2(100_000)) + 4)
  })
})
