import { connect, createServer, type Server, type Socket } from 'node:net'

export interface Relay {
  port: number
  /** Closes every connection and stops listening: the database is gone. */
  cut: () => Promise<void>
  /** Listens again after a cut. */
  restore: () => Promise<void>
  /** Keeps every connection open, new ones too, but forwards nothing more: the database hangs. */
  stall: () => void
  close: () => Promise<void>
}

/** A TCP relay to PostgreSQL that the test can cut, restore or stall, standing for the database going away. */
export async function relay (target: URL): Promise<Relay> {
  let server: Server | undefined
  let port = 0
  let stalled = false
  const sockets = new Set<Socket>()
  const pairs = new Set<[Socket, Socket]>()
  const track = (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => s.destroy()) }
  const listen = async () => {
    stalled = false
    server = createServer((client) => {
      track(client)
      // Read what the client sends, so its own end is seen, and answer nothing.
      if (stalled) return void client.resume()
      const upstream = connect(Number(target.port || 5432), target.hostname)
      track(upstream)
      const pair: [Socket, Socket] = [client, upstream]
      pairs.add(pair)
      client.on('close', () => pairs.delete(pair))
      client.pipe(upstream).pipe(client)
    })
    await new Promise<void>((resolve) => server!.listen(port, '127.0.0.1', resolve))
    port = (server!.address() as { port: number }).port
  }
  const cut = async () => {
    for (const s of sockets) s.destroy()
    await new Promise<void>((resolve) => server!.close(() => resolve()))
  }
  const stall = () => {
    stalled = true
    for (const [client, upstream] of pairs) {
      client.unpipe(upstream)
      upstream.unpipe(client)
      client.resume()
    }
  }
  await listen()
  return { port, cut, restore: listen, stall, close: cut }
}

export interface SilentServer {
  /** A connection string that reaches it. */
  url: string
  /** Connections accepted so far. */
  accepted: () => number
  /** Settles once every accepted connection has been closed by the client. */
  allClosed: () => Promise<void>
  close: () => Promise<void>
}

/**
 * A server that accepts connections, reads what it is sent and never answers a byte: a database
 * that hangs before the handshake. Unlike a closed port, nothing here fails fast.
 */
export async function silentServer (): Promise<SilentServer> {
  const open = new Set<Socket>()
  let accepted = 0
  let waiting: Array<() => void> = []
  const settle = () => {
    if (open.size > 0) return
    for (const resolve of waiting) resolve()
    waiting = []
  }
  const server = createServer((socket) => {
    accepted++
    open.add(socket)
    socket.on('error', () => socket.destroy())
    socket.on('close', () => { open.delete(socket); settle() })
    socket.resume()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  return {
    url: `postgres://postgres@127.0.0.1:${port}/keygate`,
    accepted: () => accepted,
    allClosed: async () => await new Promise<void>((resolve) => { waiting.push(resolve); settle() }),
    close: async () => {
      for (const socket of open) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
