/**
 * What a CLI command may touch of the process: its environment, two output streams and signals;
 * and where its config file comes from. Its own file so that the commands `cli.ts` loads lazily
 * (src/tools/) can take it without importing the dispatcher that imports them.
 */
export interface CliIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  /** Registers a handler for SIGTERM / SIGINT (once) or SIGHUP (each time). */
  readonly onSignal: (signal: 'SIGTERM' | 'SIGINT' | 'SIGHUP', handler: () => void) => void;
}

/** The environment variable naming the config file when --config is not given. */
export const CONFIG_ENV_VAR = 'X402_GATEWAY_CONFIG';

/** Why a command has no config, said the same way by every command. */
export const NO_CONFIG_MESSAGE = `No config file: pass --config FILE or set ${CONFIG_ENV_VAR}.`;

/** The config file's path from --config, else the environment; undefined when neither names one. */
export function commandConfigPath(option: string | undefined, io: CliIo): string | undefined {
  const path = option ?? io.env[CONFIG_ENV_VAR];
  return path === '' ? undefined : path;
}
