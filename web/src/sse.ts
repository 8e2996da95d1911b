// A Server-Sent Events reader over fetch, so that every event name is seen (EventSource
// dispatches named events only to listeners registered for that name), the status of the
// answer is known (a 401 sends the user to sign in), and `Last-Event-ID` can be sent on a
// fresh connection. The parser follows the WHATWG rules: lines end in LF, CRLF or CR,
// `:` starts a comment, `data:` lines join with LF, a blank line dispatches.

export interface SseEvent {
  /** The last event id seen on the stream (ids persist across events). */
  id: string | null
  /** The `event:` field, `message` when absent. */
  type: string
  /** The `data:` lines joined with LF; null for a block without data (an id-only mark). */
  data: string | null
}

export class SseParser {
  private line = ''
  private afterCr = false
  private data: string[] = []
  private type: string | null = null
  private sawField = false
  lastId: string | null = null

  /** Feeds decoded text; returns the events it completes, in order. */
  push(chunk: string): SseEvent[] {
    const out: SseEvent[] = []
    for (const ch of chunk) {
      if (this.afterCr) {
        this.afterCr = false
        if (ch === '\n') continue
      }
      if (ch === '\n' || ch === '\r') {
        this.afterCr = ch === '\r'
        const event = this.lineDone(this.line)
        this.line = ''
        if (event) out.push(event)
      } else {
        this.line += ch
      }
    }
    return out
  }

  private lineDone(line: string): SseEvent | null {
    if (line === '') {
      if (!this.sawField) return null
      const event: SseEvent = {
        id: this.lastId,
        type: this.type ?? 'message',
        data: this.data.length > 0 ? this.data.join('\n') : null,
      }
      this.data = []
      this.type = null
      this.sawField = false
      return event
    }
    if (line.startsWith(':')) return null
    const colon = line.indexOf(':')
    const field = colon < 0 ? line : line.slice(0, colon)
    let value = colon < 0 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    switch (field) {
      case 'data':
        this.data.push(value)
        break
      case 'event':
        this.type = value
        break
      case 'id':
        if (!value.includes('\0')) this.lastId = value
        break
      default:
        return null
    }
    this.sawField = true
    return null
  }
}

/** What a stream tells its owner. */
export interface StreamHandlers {
  onOpen(): void
  onEvent(event: SseEvent): void
  /** The stream ended: `status` is the HTTP status when the answer was not a stream. */
  onEnd(error: { status: number | null; message: string } | null): void
}

export interface StreamOptions {
  lastEventId?: string | null
  fetch?: typeof fetch
}

/** A handle that ends a stream; after `close` no handler is called again. */
export type Close = () => void

/** Opens `url` as an event stream. */
export function openStream(url: string, handlers: StreamHandlers, options: StreamOptions = {}): Close {
  const doFetch = options.fetch ?? fetch
  const abort = new AbortController()
  let closed = false
  const headers: Record<string, string> = { Accept: 'text/event-stream' }
  if (options.lastEventId) headers['Last-Event-ID'] = options.lastEventId
  const run = async (): Promise<void> => {
    const response = await doFetch(url, { headers, signal: abort.signal, credentials: 'same-origin', cache: 'no-store' })
    if (!response.ok || !response.body) {
      if (!closed) handlers.onEnd({ status: response.status, message: `stream answered ${response.status}` })
      return
    }
    if (closed) return
    handlers.onOpen()
    const parser = new SseParser()
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
    for (;;) {
      const { done, value } = await reader.read()
      if (closed) return
      if (done) break
      for (const event of parser.push(value)) {
        if (closed) return
        handlers.onEvent(event)
      }
    }
    handlers.onEnd(null)
  }
  run().catch((e: unknown) => {
    if (!closed) handlers.onEnd({ status: null, message: e instanceof Error ? e.message : String(e) })
  })
  return () => {
    closed = true
    abort.abort()
  }
}
