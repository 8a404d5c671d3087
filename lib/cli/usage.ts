/** The command line itself is wrong: exit code 2, checked before any database is opened. */
export class UsageError extends Error {
  /** The command whose help explains it, e.g. `keys create`; empty for the top level. */
  readonly command: string

  constructor (message: string, command: string) {
    super(message)
    this.name = 'UsageError'
    this.command = command
  }
}

/** A failure after the command line was understood: exit code 1. The message is the whole story. */
export class CommandError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'CommandError'
  }
}
