// A log follower over this page's session: the stream at `url`, resumed after the last
// line seen, back to sign-in when the session is gone. Used by the logs and builds tabs.
import { LogFollower } from './logs'
import { signInAgain } from './router'
import { openStream } from './sse'

export function followStream(url: () => string): LogFollower {
  return new LogFollower({
    connect: (lastId, handlers) => openStream(url(), handlers, { lastEventId: lastId }),
    onUnauthorized: signInAgain,
  })
}
