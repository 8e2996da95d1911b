// The typed API client: openapi-fetch over the generated `paths`, plus what every call
// needs: the CSRF header on writes, a 401 sends the user to sign in, and errors become
// an ApiError carrying the server's message as is.
import createClient, { type Client } from 'openapi-fetch'
import type { paths } from './schema'

export type Api = Client<paths>

/** An error the user can read: the API's own message, or what went wrong on the way. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    readonly code: string,
    readonly field: string | null = null,
  ) {
    super(message)
    this.name = 'ApiError'
  }
}

export interface ClientOptions {
  /** Same origin in the browser; tests give an absolute base. */
  baseUrl?: string
  fetch?: (input: Request) => Promise<Response>
  /** The CSRF value of the current session (kept in memory only). */
  csrf: () => string | null
  /** Called on a 401 from anything but the session endpoint itself. */
  onUnauthorized: () => void
}

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS'])
export const SESSION_PATH = '/api/v1/session'

export function makeClient(options: ClientOptions): Api {
  const client = createClient<paths>({
    baseUrl: options.baseUrl ?? '',
    credentials: 'same-origin',
    ...(options.fetch ? { fetch: options.fetch } : {}),
  })
  client.use({
    onRequest({ request }) {
      const csrf = options.csrf()
      if (!SAFE.has(request.method) && csrf) request.headers.set('X-CSRF-Token', csrf)
      return request
    },
    onResponse({ request, response }) {
      if (response.status === 401 && new URL(request.url, 'http://x').pathname !== SESSION_PATH) {
        options.onUnauthorized()
      }
      return response
    },
  })
  return client
}

interface Answer<T> {
  data?: T
  error?: unknown
  response: Response
}

/** The error an answer carries, in the API's words when it gave some. */
export function toApiError(status: number | null, body: unknown): ApiError {
  if (typeof body === 'object' && body !== null && 'error' in body) {
    const e: unknown = body.error
    if (typeof e === 'object' && e !== null && 'message' in e && typeof e.message === 'string') {
      const code = 'code' in e && typeof e.code === 'string' ? e.code : 'error'
      const field = 'field' in e && typeof e.field === 'string' ? e.field : null
      return new ApiError(e.message, status, code, field)
    }
  }
  if (status === null) return new ApiError('Could not reach the server.', null, 'network')
  return new ApiError(`The server answered ${status}.`, status, 'http')
}

/** The data of a successful answer; throws an ApiError otherwise. */
export async function call<T>(request: Promise<Answer<T>>): Promise<T> {
  let answer: Answer<T>
  try {
    answer = await request
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e
    throw toApiError(null, null)
  }
  if (answer.error !== undefined || !answer.response.ok) {
    throw toApiError(answer.response.status, answer.error)
  }
  return answer.data as T
}

/** The message to show for anything thrown by a call. */
export function errorMessage(e: unknown): string {
  if (e instanceof ApiError) return e.message
  if (e instanceof Error) return e.message
  return String(e)
}
