// The signed-in session. The token goes to the server once, in the sign-in request, and
// is never kept: the browser holds the HttpOnly cookie, this module only the CSRF value
// and who the token is (both in memory; a reload restores them from GET /session).
import { shallowRef, type ShallowRef } from 'vue'
import { call, type Api } from './api/client'
import type { Session, Whoami } from './api/types'

export class SessionStore {
  readonly current: ShallowRef<Session | null> = shallowRef(null)

  constructor(private readonly api: () => Api) {}

  get csrf(): string | null {
    return this.current.value?.csrf ?? null
  }

  get whoami(): Whoami | null {
    return this.current.value?.whoami ?? null
  }

  /** Platform tokens see every org and the admin pages. */
  get isPlatform(): boolean {
    return this.whoami?.caller === 'platform'
  }

  /** Restores the session from the cookie; null when there is none (401). */
  async restore(): Promise<Session | null> {
    const answer = await this.api().GET('/api/v1/session')
    if (answer.response.status === 401) {
      this.current.value = null
      return null
    }
    this.current.value = await call(Promise.resolve(answer))
    return this.current.value
  }

  async signIn(token: string): Promise<Session> {
    const session = await call(this.api().POST('/api/v1/session', { body: { token } }))
    this.current.value = session
    return session
  }

  async signOut(): Promise<void> {
    try {
      await call(this.api().DELETE('/api/v1/session'))
    } finally {
      this.current.value = null
    }
  }

  /** Forgets the session without asking the server (after a 401). */
  clear(): void {
    this.current.value = null
  }
}
