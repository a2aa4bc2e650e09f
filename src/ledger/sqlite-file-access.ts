/**
 * Opening the SQLite ledger's file, and saying in an operator's terms why it could not be.
 *
 * SQLite's own words ("unable to open database file", "attempt to write a readonly database")
 * name neither the file nor the user. In a container the usual cause is a volume whose owner is
 * not the image's user (a `/data` created by root, a host directory of another uid), so the error
 * names the path, the uid this process runs as, what exactly is in the way, and what to do.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';

/** The SQLite ledger's file could not be opened for writing; `cause` is SQLite's own error. */
export class SqliteLedgerAccessError extends Error {
  readonly path: string;
  constructor(message: string, path: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = 'SqliteLedgerAccessError';
    this.path = path;
  }
}

/**
 * Opens `path` in WAL mode, as the ledger writes it, or throws SqliteLedgerAccessError when the
 * process may not. WAL is switched on here because it is the first write: a directory the
 * process cannot write fails at it (SQLite keeps `-wal` and `-shm` files beside the ledger).
 */
export function openLedgerFile(path: string): Database.Database {
  let db: Database.Database | undefined;
  try {
    db = new Database(path);
    db.pragma('journal_mode = WAL');
  } catch (err) {
    db?.close();
    throw isAccessFault(err) ? accessError(path, err) : err;
  }
  // A file the process may read but not write opens read-only without a word, and every payment
  // would then fail at its first write: refuse it now.
  const problem = isFile(path) ? unwritable(path, 'the file', processUid()) : undefined;
  if (problem !== undefined) {
    db.close();
    throw accessError(path, undefined, problem);
  }
  return db;
}

/**
 * SQLite's codes for a file it may not create, open or write; and better-sqlite3's own check
 * for a missing directory, which throws a TypeError with no code.
 */
function isAccessFault(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = 'code' in err && typeof err.code === 'string' ? err.code : '';
  return /^SQLITE_(CANTOPEN|READONLY|PERM|AUTH)/.test(code) || err.message.includes('directory does not exist');
}

/** What stands in the way, in words, and what kind of remedy it calls for. */
interface AccessProblem {
  readonly kind: 'missing' | 'not_a_directory' | 'unwritable' | 'read_only_fs' | 'unknown';
  readonly text: string;
}

/** The error for `path`, with what is in the way found on the file system if not given. */
function accessError(path: string, cause: unknown, problem?: AccessProblem): SqliteLedgerAccessError {
  const uid = processUid();
  const found = problem ?? accessProblem(path, uid) ?? { kind: 'unknown', text: 'SQLite could not open or write it' };
  const sqlite = cause instanceof Error ? ` (SQLite: ${cause.message})` : '';
  const who = uid === undefined ? 'the user this process runs as' : `uid ${uid}, the user this process runs as`;
  return new SqliteLedgerAccessError(
    `cannot open the SQLite ledger ${path} as ${who}: ${found.text}${sqlite}. To fix: ${remedy(found.kind, dirname(resolve(path)), uid)}`,
    path,
    cause === undefined ? {} : { cause },
  );
}

/** What an operator can do, in a container (a volume) or not. */
function remedy(kind: AccessProblem['kind'], directory: string, uid: number | undefined): string {
  const user = uid === undefined ? 'this process' : `uid ${uid}`;
  const elsewhere = `or set ledger.path to a file in a directory ${user} can write`;
  switch (kind) {
    case 'missing':
      return `create ${directory} writable by ${user} (in a container, mount a volume there), ${elsewhere}`;
    case 'not_a_directory':
      return `set ledger.path to a file in a directory ${user} can write`;
    case 'read_only_fs':
      return `mount a writable volume at ${directory} (a read-only root file system needs one for the ledger), ${elsewhere}`;
    case 'unwritable':
    case 'unknown':
      return `mount a volume writable by ${user} at ${directory} (or chown the directory and the file to ${user}), ${elsewhere}`;
  }
}

/**
 * What stands between the process and the ledger file, read from the file system: the first
 * of a missing or non-directory parent, a directory or file it may not write, a read-only mount.
 * Undefined when nothing is found (the fault was elsewhere; SQLite's message is all there is).
 */
export function accessProblem(path: string, uid: number | undefined): AccessProblem | undefined {
  const directory = dirname(resolve(path));
  try {
    if (!statSync(directory).isDirectory()) return { kind: 'not_a_directory', text: `${directory} is not a directory` };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'missing', text: `the directory ${directory} does not exist` };
    if (code === 'ENOTDIR') return { kind: 'not_a_directory', text: `a part of ${directory} is a file, not a directory` };
    return { kind: 'unwritable', text: `the directory ${directory} cannot be read (${code ?? String(err)})` };
  }
  if (isDirectory(path)) return { kind: 'not_a_directory', text: `${path} is a directory, not a file` };
  return unwritable(directory, 'the directory', uid) ?? (isFile(path) ? unwritable(path, 'the file', uid) : undefined);
}

/** Why `what` at `path` cannot be written, if it cannot. */
function unwritable(path: string, what: 'the file' | 'the directory', uid: number | undefined): AccessProblem | undefined {
  try {
    accessSync(path, constants.W_OK | (what === 'the file' ? constants.R_OK : constants.X_OK));
    return undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EROFS') return { kind: 'read_only_fs', text: `${what} ${path} is on a read-only file system` };
    return { kind: 'unwritable', text: `${what} ${path} is not writable by ${uid === undefined ? 'this process' : `uid ${uid}`}` };
  }
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** The process's uid; undefined where there is none (Windows). */
function processUid(): number | undefined {
  return process.getuid?.();
}
