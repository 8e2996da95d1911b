import { describe, expect, it } from 'vitest'
import { eventType, matchesFilter, ofApp, ofOrg, ofPlatform } from './matchers'
import type { Event } from './api/types'

function ev(org: string | null, data: Record<string, unknown>, actor = 'system'): Event {
  return { seq: 1, at: '2024-01-01T00:00:00Z', org_id: org, actor, data: { type: 'x', ...data } } as Event
}

describe('matchers', () => {
  it('scopes to an org', () => {
    expect(ofOrg('o1')(ev('o1', {}))).toBe(true)
    expect(ofOrg('o1')(ev('o2', {}))).toBe(false)
    expect(ofOrg('o1')(ev(null, {}))).toBe(false)
    expect(ofPlatform(ev(null, {}))).toBe(true)
  })

  it('scopes to an app by app id, else by env id, else lets it through', () => {
    const m = ofApp('o1', 'a1', () => ['e1'])
    expect(m(ev('o1', { app_id: 'a1' }))).toBe(true)
    expect(m(ev('o1', { app_id: 'a2' }))).toBe(false)
    expect(m(ev('o1', { env_id: 'e1' }))).toBe(true)
    expect(m(ev('o1', { env_id: 'e9' }))).toBe(false)
    expect(m(ev('o1', { instance_id: 'i' }))).toBe(true)
    expect(m(ev('o2', { app_id: 'a1' }))).toBe(false)
  })

  it('filters by type, actor and app', () => {
    const e = ev('o1', { type: 'deployment_created', app_id: 'a1' }, 'tok-ABC')
    expect(eventType(e)).toBe('deployment_created')
    expect(matchesFilter(e, { type: 'deployment', actor: '', appId: null })).toBe(true)
    expect(matchesFilter(e, { type: 'secret', actor: '', appId: null })).toBe(false)
    expect(matchesFilter(e, { type: '', actor: 'abc', appId: 'a1' })).toBe(true)
    expect(matchesFilter(e, { type: '', actor: '', appId: 'a2' })).toBe(false)
  })
})

describe('eventSummary', () => {
  it('prints key=value pairs without the type and withheld fields', async () => {
    const { eventSummary } = await import('./matchers')
    const e = ev('o1', { type: 'secret_set', name: 'DB', version: 2, ciphertext: 'withheld', list: [1, 2], gone: null, obj: { a: 1 } })
    expect(eventSummary(e)).toBe('name=DB version=2 list=[2] obj={…}')
  })
})
