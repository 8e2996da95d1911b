import { describe, expect, it, vi } from 'vitest'
import { Live } from './live'
import type { StreamHandlers } from './sse'
import { FakeClock } from './testing'

/** A fake stream endpoint: records every connection and lets the test drive it. */
class FakeServer {
  connections: { after: number | null; handlers: StreamHandlers; closed: boolean }[] = []
  connect = (after: number | null, handlers: StreamHandlers) => {
    const conn = { after, handlers, closed: false }
    this.connections.push(conn)
    return () => {
      conn.closed = true
    }
  }
  get last() {
    const c = this.connections[this.connections.length - 1]
    if (!c) throw new Error('no connection')
    return c
  }
  send(seq: number, type: string, data: Record<string, unknown> = {}) {
    const event = { seq, at: '2024-01-01T00:00:00Z', org_id: 'o1', actor: 'system', type, data: { type, ...data } }
    this.last.handlers.onEvent({ id: String(seq), type, data: JSON.stringify(event) })
  }
}

function setup() {
  const clock = new FakeClock()
  const server = new FakeServer()
  const live = new Live({ connect: server.connect, clock })
  return { clock, server, live }
}

describe('Live', () => {
  it('goes live on open and refreshes matching subscribers once per burst', () => {
    const { clock, server, live } = setup()
    const app = vi.fn()
    const other = vi.fn()
    live.start(10)
    live.subscribe((e) => e.data['app_id'] === 'a1', app)
    live.subscribe((e) => e.data['app_id'] === 'a2', other)
    expect(server.last.after).toBe(10)
    expect(live.status).toBe('connecting')
    server.last.handlers.onOpen()
    expect(live.status).toBe('live')
    server.send(11, 'deployment_created', { app_id: 'a1' })
    server.send(12, 'instances_placed', { app_id: 'a1' })
    clock.tick(50)
    server.send(13, 'instance_observed', { app_id: 'a1' })
    expect(app).not.toHaveBeenCalled()
    clock.tick(50)
    expect(app).toHaveBeenCalledTimes(1)
    expect(other).not.toHaveBeenCalled()
    server.send(14, 'instance_observed', { app_id: 'a1' })
    clock.tick(100)
    expect(app).toHaveBeenCalledTimes(2)
    expect(live.lastSeq).toBe(14)
  })

  it('refreshes once, at start, the views that loaded before the head was read', () => {
    // A view loads, a change commits (seq 7), then the head is read (7) and the stream
    // starts after it: the stream never brings seq 7, so the view refreshes at start.
    const { clock, server, live } = setup()
    const early = vi.fn()
    live.subscribe(() => true, early)
    live.start(7)
    const late = vi.fn()
    live.subscribe(() => true, late)
    clock.tick(100)
    expect(early).toHaveBeenCalledTimes(1)
    expect(late).not.toHaveBeenCalled()
    server.last.handlers.onOpen()
    server.send(8, 'instance_observed')
    clock.tick(100)
    expect(early).toHaveBeenCalledTimes(2)
    expect(late).toHaveBeenCalledTimes(1)
  })

  it('polls every 5 s while down and resumes after the last seq', () => {
    const { clock, server, live } = setup()
    const refresh = vi.fn()
    const statuses: string[] = []
    live.onStatus((s) => statuses.push(s))
    live.subscribe(() => true, refresh)
    live.start(null)
    server.last.handlers.onOpen()
    server.send(5, 'app_created')
    clock.tick(100)
    expect(refresh).toHaveBeenCalledTimes(1)
    server.last.handlers.onEnd({ status: null, message: 'network' })
    expect(live.status).toBe('polling')
    // First retry after ~1 s (random 0.5 → exactly 1 s): it fails again.
    clock.tick(1000)
    expect(server.connections).toHaveLength(2)
    expect(server.last.after).toBe(5)
    server.last.handlers.onEnd({ status: 502, message: 'bad gateway' })
    // Second retry after ~2 s.
    clock.tick(1999)
    expect(server.connections).toHaveLength(2)
    clock.tick(1)
    expect(server.connections).toHaveLength(3)
    server.last.handlers.onEnd({ status: 502, message: 'bad gateway' })
    clock.tick(2000) // t = 5 s after the drop: one poll
    expect(refresh).toHaveBeenCalledTimes(2)
    clock.tick(2000) // 4 s retry is due (at 7 s)
    expect(server.connections).toHaveLength(4)
    server.last.handlers.onOpen()
    expect(live.status).toBe('live')
    clock.tick(20_000)
    expect(refresh).toHaveBeenCalledTimes(2) // no polling once live
    expect(statuses).toEqual(['live', 'polling', 'live'])
  })

  it('backs off up to 30 s with jitter', () => {
    const { clock, server, live } = setup()
    clock.randomValue = 1
    live.start(0)
    for (let i = 0; i < 8; i++) {
      server.last.handlers.onEnd(null)
      const before = server.connections.length
      clock.tick(29_999)
      if (server.connections.length === before) {
        clock.tick(1)
        expect(server.connections.length).toBe(before + 1)
      }
    }
    const before = server.connections.length
    server.last.handlers.onEnd(null)
    clock.tick(29_999)
    expect(server.connections.length).toBe(before)
    clock.tick(1)
    expect(server.connections.length).toBe(before + 1)
  })

  it('stops and reports a 401', () => {
    const clock = new FakeClock()
    const server = new FakeServer()
    const unauthorized = vi.fn()
    const live = new Live({ connect: server.connect, clock, onUnauthorized: unauthorized })
    live.start(0)
    server.last.handlers.onEnd({ status: 401, message: 'no' })
    expect(unauthorized).toHaveBeenCalledOnce()
    clock.tick(60_000)
    expect(server.connections).toHaveLength(1)
    expect(clock.pending).toBe(0)
  })

  it('unsubscribed views are not refreshed and stop cancels everything', () => {
    const { clock, server, live } = setup()
    const refresh = vi.fn()
    const off = live.subscribe(() => true, refresh)
    live.start(0)
    server.last.handlers.onOpen()
    server.send(1, 'x')
    off()
    clock.tick(1000)
    expect(refresh).not.toHaveBeenCalled()
    live.stop()
    expect(server.last.closed).toBe(true)
    expect(clock.pending).toBe(0)
  })

  it('ignores events of a stream it already left', () => {
    const { clock, server, live } = setup()
    const refresh = vi.fn()
    live.start(0)
    live.subscribe(() => true, refresh)
    const first = server.last
    first.handlers.onEnd(null)
    first.handlers.onEvent({ id: '9', type: 'x', data: '{}' })
    clock.tick(100)
    expect(refresh).not.toHaveBeenCalled()
    expect(live.lastSeq).toBe(0)
  })
})
