/**
 * Makes the compiled config graph read-only once it is built, so nothing past the edge can change it.
 *
 * `Object.freeze` alone is not enough: it stops a Map or Set gaining properties, not entries (a
 * frozen Map still accepts `set()`), and it leaves a BlockList's rules open to `addSubnet()`. So
 * each of those also gets own, non-writable, non-configurable methods over its mutators that
 * throw. That covers every call through the object; a caller who reaches past it with
 * `Map.prototype.set.call(map, ...)` still can, which is deliberate misuse, not a slip.
 */
import { BlockList } from 'node:net';

const MUTATORS = {
  map: ['set', 'delete', 'clear'],
  set: ['add', 'delete', 'clear'],
  blockList: ['addAddress', 'addRange', 'addSubnet'],
} as const;

/** Freezes `value` and everything reachable from it (Map and Set values included); returns it. */
export function deepFreeze<T>(value: T): T {
  if (!value || typeof value !== 'object' || Object.isFrozen(value)) return value;
  // BlockList is left unfrozen, as it always was; refusing its add methods is what fixes its rules.
  if (value instanceof BlockList) {
    refuse(value, MUTATORS.blockList);
    return value;
  }
  if (value instanceof Map) refuse(value, MUTATORS.map);
  if (value instanceof Set) refuse(value, MUTATORS.set);
  Object.freeze(value);
  if (value instanceof Map || value instanceof Set) for (const v of value.values()) deepFreeze(v);
  else for (const v of Object.values(value)) deepFreeze(v);
  return value;
}

function refuse(target: object, methods: readonly string[]): void {
  for (const method of methods) {
    if (Object.hasOwn(target, method)) continue; // already refused: the BlockList is shared by routes
    Object.defineProperty(target, method, {
      value: () => {
        throw new TypeError(`the compiled config is read-only: ${target.constructor.name}.${method}() is refused`);
      },
    });
  }
}
