import { describe, expect, it } from 'vitest'
import { makeClient } from './api/client'
import { SessionStore } from './session'

const session = {
  csrf: 'csrf-1',
  expires_at: '2030-01-01T00:00:00Z',
  whoami: { token_id: 't1', caller: 'platform', org: null, role: 'admin', node_id: null },
}

function setup(answers: Record<string, { status: number; body: unknown }>) {
  const seen: { method: string; body: string; csrf: string | null }[] = []
  let store: SessionStore | null = null
  const api = makeClient({
    baseUrl: 'http://zw.test',
    csrf: () => store?.csrf ?? null,
    onUnauthorized: () => {},
    fetch: async (req) => {
      seen.push({ method: req.method, body: await req.text(), csrf: req.headers.get('X-CSRF-Token') })
      const a = answers[req.method] ?? { status: 500, body: null }
      return new Response(a.body === null ? null : JSON.stringify(a.body), {
        status: a.status,
        headers: { 'Content-Type': 'application/json' },
      })
    },
  })
  store = new SessionStore(() => api)
  return { store, seen }
}

describe('SessionStore', () => {
  it('restores nothing on 401', async () => {
    const { store } = setup({ GET: { status: 401, body: { error: { code: 'unauthorized', message: 'no' } } } })
    expect(await store.restore()).toBeNull()
    expect(store.csrf).toBeNull()
  })

  it('signs in with the token, keeps only the session, signs out with the CSRF header', async () => {
    const { store, seen } = setup({ POST: { status: 200, body: session }, DELETE: { status: 204, body: null } })
    await store.signIn('zw_secret')
    expect(seen[0]?.body).toBe('{"token":"zw_secret"}')
    expect(store.csrf).toBe('csrf-1')
    expect(store.isPlatform).toBe(true)
    expect(JSON.stringify(store.current.value)).not.toContain('zw_secret')
    await store.signOut()
    expect(seen[1]).toMatchObject({ method: 'DELETE', csrf: 'csrf-1' })
    expect(store.current.value).toBeNull()
  })

  it('shows the message of a refused sign-in', async () => {
    const { store } = setup({ POST: { status: 401, body: { error: { code: 'unauthorized', message: 'unknown token' } } } })
    await expect(store.signIn('zw_wrong')).rejects.toThrow('unknown token')
    expect(store.current.value).toBeNull()
  })
})
