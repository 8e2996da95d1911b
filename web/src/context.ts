// The tab's singletons: the API client, the session, and the change stream.
import { ref } from 'vue'
import { makeClient } from './api/client'
import { SessionStore } from './session'
import { Live, type LiveStatus } from './live'
import { openStream } from './sse'

let unauthorized: () => void = () => {}

/** What a 401 does (set once the router exists): forget the session, go to sign in. */
export function setUnauthorizedHandler(handler: () => void): void {
  unauthorized = handler
}

export const session = new SessionStore(() => api)

export const api = makeClient({
  csrf: () => session.csrf,
  onUnauthorized: () => unauthorized(),
})

export const live = new Live({
  connect: (after, handlers) =>
    openStream(`/api/v1/events/stream${after === null ? '' : `?after=${after}`}`, handlers),
  onUnauthorized: () => unauthorized(),
})

export const liveStatus = ref<LiveStatus>(live.status)
live.onStatus((status) => {
  liveStatus.value = status
})
