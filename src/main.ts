#!/usr/bin/env node
/**
 * The process edge, the only file that touches `process`: arguments and environment in, exit
 * code out, signals to the running gateway.
 */
import { runCli } from './cli.js';

const code = await runCli(process.argv.slice(2), {
  env: process.env,
  out: (line) => process.stdout.write(line + '\n'),
  err: (line) => process.stderr.write(line + '\n'),
  onSignal: (signal, handler) => void (signal === 'SIGHUP' ? process.on(signal, handler) : process.once(signal, handler)),
});
if (code !== undefined) process.exitCode = code;
