/**
 * Resolves once `check` answers true (a rejection counts as false), asking every 100 ms; fails
 * after `timeoutMs`, so a test waits on what it can observe and never forever.
 */
export async function until (what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check().catch(() => false)) return
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}
