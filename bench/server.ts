// One contender in a process of its own, driven by bench/run.ts over IPC:
// it sends { port, keys } when listening, and closes on 'close'.
import { buildApp, type Contender, OWASP_ARGON2 } from './app.js'

const [contender, keyCount, argon2] = process.argv.slice(2)
const built = await buildApp(contender as Contender, {
  keyCount: Number(keyCount ?? 1),
  ...(argon2 === 'owasp' ? { argon2: OWASP_ARGON2 } : {})
})
await built.app.listen({ port: 0, host: '127.0.0.1' })
const address = built.app.server.address() as { port: number }
process.send?.({ port: address.port, keys: built.keys })
process.on('message', (message) => {
  if (message === 'close') void built.close().then(() => process.exit(0))
  // CPU time of this process (all its threads) and the time now, both in µs: the parent takes
  // the differences over a load run.
  if (message === 'cpu') {
    const { user, system } = process.cpuUsage()
    process.send?.({ cpu: user + system, wall: Number(process.hrtime.bigint() / 1000n) })
  }
})
// The driver is gone (a crash, Ctrl-C): no server outlives it.
process.on('disconnect', () => process.exit(0))
