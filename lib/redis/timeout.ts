/** Rejects when `operation` has not settled within `ms`: a Redis that hangs must not hang a request. */
export async function withTimeout<T> (operation: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  let late: NodeJS.Immediate | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    // Timers run before the event loop reads its sockets. After a stall longer than `ms` (a busy
    // process, a full GC, a starved CPU) the timer is due while Redis's answer already waits to be
    // read: reject only after this turn's reads (setImmediate runs after them), so an answer that
    // came in time is taken, and only a Redis that has not answered by then counts as down.
    timer = setTimeout(() => { late = setImmediate(() => reject(new Error(`Redis did not answer within ${ms} ms`))) }, ms)
  })
  try {
    return await Promise.race([operation, timeout])
  } finally {
    clearTimeout(timer)
    clearImmediate(late)
  }
}
