/**
 * What a CLI command may touch of the process: its environment, two output streams and signals.
 * Its own file so that the commands `cli.ts` loads lazily (src/tools/) can take it without
 * importing the dispatcher that imports them.
 */
export interface CliIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  /** Registers a handler for SIGTERM / SIGINT (once) or SIGHUP (each time). */
  readonly onSignal: (signal: 'SIGTERM' | 'SIGINT' | 'SIGHUP', handler: () => void) => void;
}
