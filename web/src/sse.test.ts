import { describe, expect, it } from 'vitest'
import { SseParser, openStream, type SseEvent } from './sse'

describe('SseParser', () => {
  it('parses named events with ids, across arbitrary chunk splits', () => {
    const text = 'id: 7\nevent: app_created\ndata: {"a":1}\n\n: keep-alive\n\nid: 8\ndata: x\ndata: y\n\n'
    for (let split = 0; split <= text.length; split++) {
      const p = new SseParser()
      const events = [...p.push(text.slice(0, split)), ...p.push(text.slice(split))]
      expect(events).toEqual([
        { id: '7', type: 'app_created', data: '{"a":1}' },
        { id: '8', type: 'message', data: 'x\ny' },
      ])
      expect(p.lastId).toBe('8')
    }
  })

  it('reports an id-only block with null data', () => {
    const p = new SseParser()
    expect(p.push('id: 42\n\n')).toEqual([{ id: '42', type: 'message', data: null }])
  })

  it('accepts CR and CRLF line ends, also split between chunks', () => {
    const p = new SseParser()
    const events = [...p.push('data: a\r'), ...p.push('\n\r\ndata: b\r\r')]
    expect(events.map((e) => e.data)).toEqual(['a', 'b'])
  })

  it('ignores unknown fields and keeps the last id across events', () => {
    const p = new SseParser()
    const events = p.push('id: 1\nretry: 5\ndata: a\n\ndata: b\n\n')
    expect(events.map((e) => e.id)).toEqual(['1', '1'])
  })
})

function streamOf(chunks: string[], status = 200): (input: RequestInfo | URL, init?: RequestInit) => Promise<Response> {
  return async (_input, init) => {
    const seen = new Headers(init?.headers)
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        const enc = new TextEncoder()
        for (const c of chunks) controller.enqueue(enc.encode(c))
        controller.close()
      },
    })
    return new Response(status === 200 ? body : 'no', {
      status,
      headers: { 'x-last-event-id': seen.get('Last-Event-ID') ?? '' },
    })
  }
}

describe('openStream', () => {
  it('opens, dispatches events and ends cleanly', async () => {
    const events: SseEvent[] = []
    let opened = false
    const ended = await new Promise<unknown>((resolve) => {
      openStream(
        '/x',
        { onOpen: () => (opened = true), onEvent: (e) => events.push(e), onEnd: resolve },
        { fetch: streamOf(['id: 1\nevent: log\nda', 'ta: hi\n\n']) as typeof fetch },
      )
    })
    expect(opened).toBe(true)
    expect(ended).toBeNull()
    expect(events).toEqual([{ id: '1', type: 'log', data: 'hi' }])
  })

  it('reports the status of a refused stream', async () => {
    const ended = await new Promise((resolve) => {
      openStream('/x', { onOpen: () => {}, onEvent: () => {}, onEnd: resolve }, { fetch: streamOf([], 401) as typeof fetch })
    })
    expect(ended).toMatchObject({ status: 401 })
  })

  it('sends Last-Event-ID when resuming', async () => {
    let header: string | null = null
    const fetcher = (async (_i: RequestInfo | URL, init?: RequestInit) => {
      header = new Headers(init?.headers).get('Last-Event-ID')
      return new Response('', { status: 204 })
    }) as typeof fetch
    await new Promise((resolve) => {
      openStream('/x', { onOpen: () => {}, onEvent: () => {}, onEnd: resolve }, { fetch: fetcher, lastEventId: '99' })
    })
    expect(header).toBe('99')
  })
})
