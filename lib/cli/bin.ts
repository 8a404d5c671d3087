#!/usr/bin/env node
// The `keygate` command. Everything is in main.ts, so tests can drive it in-process.
import { run } from './main.js'

// A reader that stops early (`keygate keys list | head -1`) is no failure, and no stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error
})

void run(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env })
  .then((code) => { process.exitCode = code })
