import { createApp, watch } from 'vue'
import App from './App.vue'
import { router, signInAgain } from './router'
import { live, session, setUnauthorizedHandler } from './context'
import { startLive } from './head'
import './styles.css'

setUnauthorizedHandler(signInAgain)

// The change stream runs while someone is signed in.
watch(
  () => session.current.value,
  (now, before) => {
    if (now && !before) void startLive(live)
    if (!now && before) live.stop()
  },
)

createApp(App).use(router).mount('#app')
