// What the app page hands its tabs: which org, app and env, and the ids events name.
import { inject, type ComputedRef, type InjectionKey } from 'vue'
import type { Event } from '../../api/types'

export interface AppContext {
  org: ComputedRef<string>
  app: ComputedRef<string>
  env: ComputedRef<string>
  /** Events of this app (for live refresh). */
  matches: (event: Event) => boolean
  /** The app's URL for the primary env, when it has one (for the domain CNAME). */
  envHost: ComputedRef<string | null>
}

export const APP_CONTEXT: InjectionKey<AppContext> = Symbol('app')

export function useAppContext(): AppContext {
  const ctx = inject(APP_CONTEXT)
  if (!ctx) throw new Error('the app tabs are used inside the app page')
  return ctx
}

/** The path parameters of an env's endpoints. */
export function envPath(ctx: AppContext): { org: string; app: string; env: string } {
  return { org: ctx.org.value, app: ctx.app.value, env: ctx.env.value }
}
