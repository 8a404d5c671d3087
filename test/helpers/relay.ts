import { connect, createServer, type Server, type Socket } from 'node:net'

/** A TCP relay to PostgreSQL that the test can cut and restore, standing for the database going away. */
export async function relay (target: URL): Promise<{ port: number, cut: () => Promise<void>, restore: () => Promise<void>, close: () => Promise<void> }> {
  let server: Server | undefined
  let port = 0
  const sockets = new Set<Socket>()
  const listen = async () => {
    server = createServer((client) => {
      const upstream = connect(Number(target.port || 5432), target.hostname)
      for (const s of [client, upstream]) { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => s.destroy()) }
      client.pipe(upstream).pipe(client)
    })
    await new Promise<void>((resolve) => server!.listen(port, '127.0.0.1', resolve))
    port = (server!.address() as { port: number }).port
  }
  const cut = async () => {
    for (const s of sockets) s.destroy()
    await new Promise<void>((resolve) => server!.close(() => resolve()))
  }
  await listen()
  return { port, cut, restore: listen, close: cut }
}
