import { describe, expect, it, vi } from 'vitest'
import { ApiError, call, makeClient } from './client'

function fakeFetch(status: number, body: unknown) {
  const seen: Request[] = []
  const fetch = async (req: Request) => {
    seen.push(req)
    return new Response(body === null ? null : JSON.stringify(body), {
      status,
      headers: { 'Content-Type': 'application/json' },
    })
  }
  return { seen, fetch }
}

const base = 'http://zw.test'

describe('client', () => {
  it('sends the CSRF header on writes only', async () => {
    const { seen, fetch } = fakeFetch(200, { csrf: 'c', expires_at: '', whoami: {} })
    const api = makeClient({ baseUrl: base, fetch, csrf: () => 'tok-csrf', onUnauthorized: () => {} })
    await api.GET('/api/v1/orgs')
    await api.POST('/api/v1/orgs/{org}/apps/{app}/envs/{env}/restart', {
      params: { path: { org: 'acme', app: 'hello', env: 'prod' } },
      body: {},
    })
    expect(seen[0]?.headers.get('X-CSRF-Token')).toBeNull()
    expect(seen[1]?.headers.get('X-CSRF-Token')).toBe('tok-csrf')
    expect(seen[1]?.url).toBe(`${base}/api/v1/orgs/acme/apps/hello/envs/prod/restart`)
  })

  it('calls onUnauthorized on a 401, except from the session endpoint', async () => {
    const { fetch } = fakeFetch(401, { error: { code: 'unauthorized', message: 'sign in' } })
    const onUnauthorized = vi.fn()
    const api = makeClient({ baseUrl: base, fetch, csrf: () => null, onUnauthorized })
    await api.GET('/api/v1/session')
    expect(onUnauthorized).not.toHaveBeenCalled()
    await expect(call(api.GET('/api/v1/orgs'))).rejects.toThrow('sign in')
    expect(onUnauthorized).toHaveBeenCalledOnce()
  })

  it("turns an error into the API's message", async () => {
    const { fetch } = fakeFetch(422, { error: { code: 'invalid', message: 'hostname is not valid', field: 'hostname' } })
    const api = makeClient({ baseUrl: base, fetch, csrf: () => 'c', onUnauthorized: () => {} })
    const e = await call(
      api.POST('/api/v1/orgs/{org}/apps/{app}/envs/{env}/domains', {
        params: { path: { org: 'a', app: 'b', env: 'prod' } },
        body: { hostname: 'bad host' },
      }),
    ).catch((e: unknown) => e)
    expect(e).toBeInstanceOf(ApiError)
    expect(e).toMatchObject({ message: 'hostname is not valid', status: 422, code: 'invalid', field: 'hostname' })
  })

  it('names a failure without a body, and a network failure', async () => {
    const api = makeClient({
      baseUrl: base,
      fetch: async () => new Response('oops', { status: 502 }),
      csrf: () => null,
      onUnauthorized: () => {},
    })
    await expect(call(api.GET('/api/v1/orgs'))).rejects.toThrow(/502/)
    const down = makeClient({
      baseUrl: base,
      fetch: async () => {
        throw new TypeError('fetch failed')
      },
      csrf: () => null,
      onUnauthorized: () => {},
    })
    await expect(call(down.GET('/api/v1/orgs'))).rejects.toThrow('Could not reach the server.')
  })
})
