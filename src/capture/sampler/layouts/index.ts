/**
 * Per-version CPython struct layouts for the stack walker, generated from the headers of
 * each installed build by tools/gen-layouts.sh (one `cpython-3.X.ts` per minor version;
 * regenerate, never edit). The data are TypeScript modules rather than JSON so they
 * travel with the compiled code in dist/ without a copy step.
 */
import { layout as cpython38 } from './cpython-3.8.ts';
import { layout as cpython39 } from './cpython-3.9.ts';
import { layout as cpython310 } from './cpython-3.10.ts';
import { layout as cpython311 } from './cpython-3.11.ts';
import { layout as cpython312 } from './cpython-3.12.ts';
import { layout as cpython313 } from './cpython-3.13.ts';
import type { Layout } from './types.ts';

export type { FieldOffset, Layout, StructSize } from './types.ts';

const LAYOUTS: ReadonlyMap<string, Layout> = new Map([
  ['3.8', cpython38],
  ['3.9', cpython39],
  ['3.10', cpython310],
  ['3.11', cpython311],
  ['3.12', cpython312],
  ['3.13', cpython313],
]);

/** Minor versions with a generated layout, ascending: [3, 8], [3, 9], … */
export const SUPPORTED_LAYOUTS: readonly (readonly [number, number])[] = [...LAYOUTS.keys()].map((k) => {
  const [major, minor] = k.split('.').map(Number);
  return [major!, minor!] as const;
});

/**
 * The layout of CPython `major.minor` (valid for every patch release of that minor
 * version), or null when there is none. Struct layouts only change between minor
 * versions; the generated file records the exact patch release it was measured on.
 */
export function layoutFor(major: number, minor: number): Layout | null {
  return LAYOUTS.get(`${major}.${minor}`) ?? null;
}
