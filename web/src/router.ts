import { createRouter, createWebHistory, type RouteLocationRaw } from 'vue-router'
import { api, session } from './context'
import AppsView from './views/AppsView.vue'
import SignInView from './views/SignInView.vue'

declare module 'vue-router' {
  interface RouteMeta {
    /** Reachable without a session. */
    public?: boolean
    /** Platform tokens only. */
    platform?: boolean
    title?: string
  }
}

export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/', name: 'home', component: { render: () => null } },
    { path: '/sign-in', name: 'sign-in', component: SignInView, meta: { public: true, title: 'Sign in' } },
    { path: '/orgs/:org/apps', name: 'apps', component: AppsView, props: true, meta: { title: 'Apps' } },
    {
      path: '/orgs/:org/apps/:app',
      component: () => import('./views/AppView.vue'),
      props: true,
      children: [
        { path: '', name: 'app', component: () => import('./views/app/OverviewTab.vue'), meta: { title: 'Overview' } },
        { path: 'logs', name: 'app-logs', component: () => import('./views/app/LogsTab.vue'), meta: { title: 'Logs' } },
        { path: 'builds', name: 'app-builds', component: () => import('./views/app/BuildsTab.vue'), meta: { title: 'Builds' } },
        { path: 'secrets', name: 'app-secrets', component: () => import('./views/app/SecretsTab.vue'), meta: { title: 'Env & secrets' } },
        { path: 'routes', name: 'app-routes', component: () => import('./views/app/RoutesTab.vue'), meta: { title: 'Routes' } },
        { path: 'domains', name: 'app-domains', component: () => import('./views/app/DomainsTab.vue'), meta: { title: 'Domains' } },
      ],
    },
    { path: '/orgs/:org/events', name: 'events', component: () => import('./views/EventsView.vue'), props: true, meta: { title: 'Events' } },
    { path: '/admin/nodes', name: 'nodes', component: () => import('./views/NodesView.vue'), meta: { platform: true, title: 'Nodes' } },
    { path: '/admin/regions', name: 'regions', component: () => import('./views/RegionsView.vue'), meta: { platform: true, title: 'Regions' } },
    { path: '/:rest(.*)*', name: 'not-found', component: () => import('./views/NotFoundView.vue'), meta: { public: true, title: 'Not found' } },
  ],
})

let restored: Promise<unknown> | null = null

/** Where a signed-in user starts: their org's apps, or the first org a platform token sees. */
export async function homeRoute(): Promise<RouteLocationRaw> {
  const org = session.whoami?.org ?? (await firstOrg())
  if (org) return { name: 'apps', params: { org } }
  return session.isPlatform ? { name: 'nodes' } : { name: 'sign-in' }
}

async function firstOrg(): Promise<string | null> {
  const { data } = await api.GET('/api/v1/orgs', { params: { query: { limit: 1 } } })
  return data?.orgs[0]?.name ?? null
}

router.beforeEach(async (to) => {
  restored ??= session.restore().catch(() => null)
  await restored
  const signedIn = session.current.value !== null
  if (to.name === 'sign-in') return signedIn ? homeRoute() : true
  if (!signedIn && !to.meta.public) {
    return { name: 'sign-in', query: to.fullPath === '/' ? {} : { next: to.fullPath } }
  }
  if (to.name === 'home') return homeRoute()
  if (to.meta.platform && !session.isPlatform) return { name: 'not-found', params: { rest: to.path.slice(1).split('/') } }
  return true
})

router.afterEach((to) => {
  const parts = [to.meta.title, typeof to.params.app === 'string' ? to.params.app : null, typeof to.params.org === 'string' ? to.params.org : null]
  document.title = [...parts.filter(Boolean), 'Zeitwork'].join(' · ')
})

/** After a 401: forget the session and ask to sign in, coming back here after. */
export function signInAgain(): void {
  session.clear()
  const here = router.currentRoute.value
  if (here.name === 'sign-in') return
  void router.push({ name: 'sign-in', query: { next: here.fullPath } })
}
