/** The one place a ledger is opened from the config: the gateway, `receipts` and every later command use it. */
import type { LedgerConfig } from '../config/types.js';
import type { Clock, Ledger } from '../payments/ports.js';
import { PostgresLedger } from './postgres-ledger.js';
import { SqliteLedger } from './sqlite-ledger.js';

export interface OpenLedgerOptions {
  /** The clock the embedded store judges expiry by (PostgreSQL uses its server's). */
  readonly clock?: Clock;
}

export async function openLedger(config: LedgerConfig, options: OpenLedgerOptions = {}): Promise<Ledger> {
  switch (config.store) {
    case 'sqlite':
      return new SqliteLedger(config.path, options.clock ? { clock: options.clock } : {});
    case 'postgres':
      return PostgresLedger.open(config.url, { pool: config.pool });
  }
}

/** The store as logs and /readyz name it: its kind and place, never its credentials. */
export function ledgerName(config: LedgerConfig): string {
  switch (config.store) {
    case 'sqlite':
      return `sqlite:${config.path}`;
    case 'postgres': {
      const url = new URL(config.url);
      return `postgres://${url.host}${url.pathname}`;
    }
  }
}
