#!/usr/bin/env node
// The `keygate` command. Everything is in main.ts, so tests can drive it in-process.
import { run } from './main.js'

void run(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env })
  .then((code) => { process.exitCode = code })
