// Loading for views: one-shot resources and paged lists, with loading, error and empty
// states, refreshed by the change stream while the view is mounted.
import { onBeforeUnmount, onMounted, ref, shallowRef, watch, type Ref, type ShallowRef, type WatchSource } from 'vue'
import { errorMessage } from './api/client'
import { live } from './context'
import type { Event } from './api/types'

export interface Resource<T> {
  data: ShallowRef<T | null>
  error: Ref<string | null>
  loading: Ref<boolean>
  reload: () => Promise<void>
}

export interface ResourceOptions {
  /** Events that make this resource stale. */
  live?: (event: Event) => boolean
  /** Reload when these change (route params). */
  watch?: WatchSource[]
}

/** Loads `load()` on mount, again on `reload`, on matching events and when `watch` changes. */
export function useResource<T>(load: () => Promise<T>, options: ResourceOptions = {}): Resource<T> {
  const data = shallowRef<T | null>(null) as ShallowRef<T | null>
  const error = ref<string | null>(null)
  const loading = ref(false)
  let generation = 0
  const reload = async (): Promise<void> => {
    const mine = ++generation
    loading.value = true
    try {
      const value = await load()
      if (mine !== generation) return
      data.value = value
      error.value = null
    } catch (e) {
      if (mine !== generation) return
      error.value = errorMessage(e)
    } finally {
      if (mine === generation) loading.value = false
    }
  }
  useLive(options.live, () => void reload())
  if (options.watch) {
    watch(options.watch, () => {
      data.value = null
      void reload()
    })
  }
  onMounted(() => void reload())
  return { data, error, loading, reload }
}

export interface Page<T> {
  items: T[]
  /** Where the next page starts; null or absent on the last page. */
  next?: string | null
}

export interface Paged<T> {
  items: ShallowRef<T[]>
  next: Ref<string | null>
  error: Ref<string | null>
  loading: Ref<boolean>
  /** True once the first page came. */
  loaded: Ref<boolean>
  loadMore: () => Promise<void>
  reload: () => Promise<void>
}

/** A paged list: the first page on mount and on refresh, more on `loadMore`. */
export function usePaged<T>(fetchPage: (after: string | null) => Promise<Page<T>>, options: ResourceOptions = {}): Paged<T> {
  const items = shallowRef<T[]>([]) as ShallowRef<T[]>
  const next = ref<string | null>(null)
  const error = ref<string | null>(null)
  const loading = ref(false)
  const loaded = ref(false)
  let generation = 0
  const run = async (after: string | null): Promise<void> => {
    const mine = ++generation
    loading.value = true
    try {
      const page = await fetchPage(after)
      if (mine !== generation) return
      items.value = after === null ? page.items : [...items.value, ...page.items]
      next.value = page.next ?? null
      error.value = null
      loaded.value = true
    } catch (e) {
      if (mine !== generation) return
      error.value = errorMessage(e)
    } finally {
      if (mine === generation) loading.value = false
    }
  }
  const reload = (): Promise<void> => run(null)
  const loadMore = (): Promise<void> => (next.value === null ? Promise.resolve() : run(next.value))
  useLive(options.live, () => void reload())
  if (options.watch) {
    watch(options.watch, () => {
      items.value = []
      loaded.value = false
      void reload()
    })
  }
  onMounted(() => void reload())
  return { items, next, error, loading, loaded, loadMore, reload }
}

/** Subscribes to the change stream while the calling component is mounted. */
export function useLive(match: ((event: Event) => boolean) | undefined, refresh: () => void): void {
  if (!match) return
  let off: (() => void) | null = null
  onMounted(() => {
    off = live.subscribe(match, refresh)
  })
  onBeforeUnmount(() => off?.())
}

/** A clock for relative times: ticks every `every` ms while mounted. */
export function useNow(every = 10_000): Ref<number> {
  const now = ref(Date.now())
  let timer: ReturnType<typeof setInterval> | null = null
  onMounted(() => {
    timer = setInterval(() => {
      now.value = Date.now()
    }, every)
  })
  onBeforeUnmount(() => {
    if (timer !== null) clearInterval(timer)
  })
  return now
}

/** Runs an action, tracking its progress and error for the form that started it. */
export function useAction() {
  const busy = ref(false)
  const error = ref<string | null>(null)
  const done = ref<string | null>(null)
  const run = async (action: () => Promise<string | void>): Promise<boolean> => {
    busy.value = true
    error.value = null
    done.value = null
    try {
      done.value = (await action()) ?? null
      return true
    } catch (e) {
      error.value = errorMessage(e)
      return false
    } finally {
      busy.value = false
    }
  }
  return { busy, error, done, run }
}
