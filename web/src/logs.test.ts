import { describe, expect, it, vi } from 'vitest'
import { LogFollower, highlight } from './logs'
import type { StreamHandlers } from './sse'
import { FakeClock } from './testing'
import type { LogLine } from './api/types'

class FakeLogs {
  connections: { lastId: string | null; handlers: StreamHandlers }[] = []
  connect = (lastId: string | null, handlers: StreamHandlers) => {
    this.connections.push({ lastId, handlers })
    return () => {}
  }
  get h(): StreamHandlers {
    const c = this.connections[this.connections.length - 1]
    if (!c) throw new Error('no connection')
    return c.handlers
  }
  line(id: number, text = `line ${id}`, process = 'web', instance = 'i1') {
    const line: LogLine = { id, instance_id: instance, process, at: '2024-01-01T00:00:00Z', line: text }
    this.h.onEvent({ id: String(id), type: 'log', data: JSON.stringify(line) })
  }
  mark(id: number) {
    this.h.onEvent({ id: String(id), type: 'message', data: null })
  }
}

function setup(cap = 5000) {
  const clock = new FakeClock()
  const server = new FakeLogs()
  const logs = new LogFollower({ connect: server.connect, clock, cap })
  logs.start()
  server.h.onOpen()
  return { clock, server, logs }
}

const ids = (lines: LogLine[]) => lines.map((l) => l.id)

describe('LogFollower', () => {
  it('keeps lines in id order without duplicates', () => {
    const { server, logs } = setup()
    server.line(1)
    server.line(3)
    server.line(2)
    server.line(3)
    expect(ids(logs.lines)).toEqual([1, 2, 3])
    expect(logs.status).toBe('live')
  })

  it('resumes after a drop from the last id seen: no gap, no duplicate', () => {
    const { clock, server, logs } = setup()
    server.line(1)
    server.line(2)
    server.mark(2)
    server.h.onEnd(null)
    expect(logs.status).toBe('reconnecting')
    clock.tick(1000)
    expect(server.connections).toHaveLength(2)
    expect(server.connections[1]?.lastId).toBe('2')
    server.h.onOpen()
    server.line(2) // a server that repeats itself
    server.line(3)
    expect(ids(logs.lines)).toEqual([1, 2, 3])
    expect(logs.status).toBe('live')
  })

  it('resumes from the id-only mark when no line came', () => {
    const { clock, server } = setup()
    server.mark(77)
    server.h.onEnd({ status: 503, message: 'down' })
    clock.tick(1000)
    expect(server.connections[1]?.lastId).toBe('77')
  })

  it('buffers while paused and flushes on resume', () => {
    const { server, logs } = setup()
    const changed = vi.fn()
    logs.onChange(changed)
    server.line(1)
    logs.pause()
    server.line(2)
    server.line(3)
    expect(ids(logs.lines)).toEqual([1])
    expect(logs.buffered).toHaveLength(2)
    logs.resume()
    expect(ids(logs.lines)).toEqual([1, 2, 3])
    expect(logs.buffered).toHaveLength(0)
    expect(changed).toHaveBeenCalled()
  })

  it('caps the lines held, dropping the oldest and not taking them back', () => {
    const { server, logs } = setup(3)
    for (let i = 1; i <= 5; i++) server.line(i)
    expect(ids(logs.lines)).toEqual([3, 4, 5])
    expect(logs.dropped).toBe(2)
    server.line(1)
    expect(ids(logs.lines)).toEqual([3, 4, 5])
  })

  it('filters by instance and process and counts search matches', () => {
    const { server, logs } = setup()
    server.line(1, 'GET /health 200', 'web', 'i1')
    server.line(2, 'get /api 500', 'web', 'i2')
    server.line(3, 'job done', 'worker', 'i3')
    expect(ids(logs.view({ process: 'web' }).lines)).toEqual([1, 2])
    expect(ids(logs.view({ instance: 'i2' }).lines)).toEqual([2])
    const v = logs.view({ search: 'GET' })
    expect(v.matches).toBe(2)
    expect(v.lines).toHaveLength(3)
    const only = logs.view({ search: 'get', onlyMatches: true, process: 'web' })
    expect(ids(only.lines)).toEqual([1, 2])
    expect(only.matches).toBe(2)
  })

  it('stops for good on a 404 and reports a 401', () => {
    const clock = new FakeClock()
    const server = new FakeLogs()
    const unauthorized = vi.fn()
    const logs = new LogFollower({ connect: server.connect, clock, onUnauthorized: unauthorized })
    logs.start()
    server.h.onEnd({ status: 404, message: 'no such instance' })
    expect(logs.status).toBe('stopped')
    expect(logs.error).toBe('no such instance')
    clock.tick(60_000)
    expect(server.connections).toHaveLength(1)
    logs.start()
    server.h.onEnd({ status: 401, message: 'sign in' })
    expect(unauthorized).toHaveBeenCalledOnce()
    expect(logs.status).toBe('stopped')
  })

  it('ignores other event types and bad data', () => {
    const { server, logs } = setup()
    server.h.onEvent({ id: null, type: 'ping', data: '{"state":"succeeded"}' })
    server.h.onEvent({ id: '5', type: 'log', data: 'not json' })
    expect(logs.lines).toHaveLength(0)
    expect(logs.status).toBe('live')
  })

  it("stops at the stream's own end and does not reconnect", () => {
    const clock = new FakeClock()
    const server = new FakeLogs()
    let closed = 0
    const logs = new LogFollower({
      connect: (lastId, handlers) => {
        server.connect(lastId, handlers)
        return () => (closed += 1)
      },
      clock,
    })
    logs.start()
    server.h.onOpen()
    server.line(1)
    server.line(2, 'done', 'build')
    server.h.onEvent({ id: null, type: 'end', data: '{"state":"succeeded"}' })
    expect(logs.status).toBe('ended')
    expect(closed).toBe(1)
    server.h.onEnd(null) // the server closes after its end event
    clock.tick(60_000)
    expect(logs.status).toBe('ended')
    expect(server.connections).toHaveLength(1)
    expect(ids(logs.lines)).toEqual([1, 2])
  })
})

describe('highlight', () => {
  it('splits around case-insensitive matches', () => {
    expect(highlight('Error: bad error', 'error')).toEqual([
      { text: 'Error', match: true },
      { text: ': bad ', match: false },
      { text: 'error', match: true },
    ])
    expect(highlight('abc', '')).toEqual([{ text: 'abc', match: false }])
    expect(highlight('abc', 'x')).toEqual([{ text: 'abc', match: false }])
  })
})
