/**
 * A pino destination that turns the gateway's JSON log lines into short readable ones for the
 * demo's terminal (`12:00:01 request method=GET path=/v1/weather status=402 ...`). Production
 * keeps JSON; this is only so a first look at the gateway is legible without pino-pretty.
 */
import type { DestinationStream } from 'pino';

/** Fields every line carries that say nothing about the event. */
const NOISE = new Set(['level', 'time', 'pid', 'hostname', 'service', 'msg', 'reqId']);
const LEVEL_NAMES: Readonly<Record<number, string>> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

export function demoLogDestination(write: (line: string) => void): DestinationStream {
  return {
    write(chunk: string) {
      for (const line of chunk.split('\n')) if (line.trim() !== '') write(formatLogLine(line));
    },
  };
}

/** One JSON log line as `HH:MM:SS [LEVEL] msg key=value ...`; anything not JSON passes through. */
function formatLogLine(line: string): string {
  let entry: unknown;
  try {
    entry = JSON.parse(line);
  } catch {
    return line;
  }
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return line;
  const fields = Object.entries(entry);
  const get = (key: string): unknown => fields.find(([k]) => k === key)?.[1];
  const time = typeof get('time') === 'number' ? new Date(Number(get('time'))).toTimeString().slice(0, 8) : '--:--:--';
  const level = typeof get('level') === 'number' ? Number(get('level')) : 30;
  const parts = [time, 'gateway'];
  if (level !== 30) parts.push(LEVEL_NAMES[level] ?? String(level));
  parts.push(String(get('msg') ?? ''));
  for (const [key, value] of fields) {
    if (NOISE.has(key) || value === undefined || value === null) continue;
    parts.push(`${key}=${formatValue(key, value)}`);
  }
  return parts.join(' ');
}

function formatValue(key: string, value: unknown): string {
  if (typeof value === 'string') return /\s/.test(value) ? JSON.stringify(value) : value;
  if (key === 'err' && typeof value === 'object' && value !== null && 'message' in value) return JSON.stringify(String(value.message));
  return JSON.stringify(value);
}
