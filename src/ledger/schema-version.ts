/** What both stores say when their schema was written by a newer gateway. */

/** The store holds a schema newer than this gateway knows: start-up stops with this message. */
export class LedgerSchemaError extends Error {
  constructor(store: 'sqlite' | 'postgres', found: number, known: number) {
    super(
      `the ${store} ledger has schema version ${found}, newer than this gateway knows (${known}): ` +
        'a newer x402-gateway migrated it; run that version (or newer), or point ledger at another store',
    );
    this.name = 'LedgerSchemaError';
  }
}
