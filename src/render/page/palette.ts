/**
 * Frame colours by kind, shared by the HTML page and the SVG so both read the same.
 * Within a kind, the colour varies deterministically with the frame's name (like
 * FlameGraph's hashed palettes), so one function has one colour everywhere.
 *
 *   python  warm yellow → orange
 *   native  teal → blue
 *   kernel  red → orange (FlameGraph's kernel colours)
 *   marker  grey-purple (idle, GIL, thread and process roots)
 *   search  magenta (FlameGraph's search highlight)
 *
 * Runs in Node and in the page: no imports.
 */

/** Kind codes as in FrameKindCode (src/model/profile.ts). */
export const KIND_PYTHON = 0;
export const KIND_NATIVE = 1;
export const KIND_KERNEL = 2;
export const KIND_MARKER = 3;

export const SEARCH_COLOR = 'rgb(230,0,230)';

export const KIND_NAMES: readonly string[] = ['Python', 'native', 'kernel', 'marker'];
/** One representative colour per kind, for legends. */
export const KIND_SWATCHES: readonly string[] = ['rgb(245,186,52)', 'rgb(96,180,214)', 'rgb(228,96,52)', 'rgb(178,164,214)'];

/** FNV-1a over the name, then two decorrelated fractions in [0, 1). */
function nameHash(name: string): [number, number] {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  const a = (h >>> 0) / 4294967296;
  let g = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
  g ^= g >>> 13;
  const b = (g >>> 0) / 4294967296;
  return [a, b];
}

/** RGB components of a frame's colour. */
export function frameRgb(kind: number, name: string): [number, number, number] {
  const [v1, v2] = nameHash(name);
  switch (kind) {
    case KIND_PYTHON:
      // yellow (g high) to orange (g lower); never as red as kernel frames
      return [Math.round(238 + 17 * v2), Math.round(150 + 75 * v1), Math.round(35 + 45 * v2)];
    case KIND_NATIVE:
      return [Math.round(70 + 55 * v2), Math.round(160 + 50 * v1), Math.round(195 + 40 * v2)];
    case KIND_KERNEL:
      return [Math.round(215 + 35 * v2), Math.round(70 + 55 * v1), Math.round(35 + 30 * v2)];
    default:
      return [Math.round(160 + 35 * v1), Math.round(150 + 25 * v1), Math.round(195 + 35 * v2)];
  }
}

export function frameColor(kind: number, name: string): string {
  const [r, g, b] = frameRgb(kind, name);
  return `rgb(${r},${g},${b})`;
}

/** The pale variant used for frames whose samples are mostly idle. */
export function paleColor(kind: number, name: string): string {
  const [r, g, b] = frameRgb(kind, name);
  const m = (c: number) => Math.round(c + (255 - c) * 0.6);
  return `rgb(${m(r)},${m(g)},${m(b)})`;
}
