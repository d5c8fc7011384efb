/**
 * Value and percentage formatting in a value type's unit, shared by the page, the SVG
 * and the top table. Locale-independent (deterministic output for tests and goldens).
 * Runs in Node and in the page (bundled by src/render/bundle.ts): no imports.
 */

/** 1234567 → "1,234,567"; keeps up to `decimals` decimals for non-integers. */
export function groupDigits(v: number, decimals = 2): string {
  if (!Number.isFinite(v)) return String(v);
  const neg = v < 0;
  const abs = Math.abs(v);
  let s = Number.isInteger(abs) ? abs.toFixed(0) : abs.toFixed(decimals).replace(/\.?0+$/, '');
  const dot = s.indexOf('.');
  let int = dot >= 0 ? s.slice(0, dot) : s;
  const frac = dot >= 0 ? s.slice(dot) : '';
  let out = '';
  while (int.length > 3) {
    out = `,${int.slice(-3)}${out}`;
    int = int.slice(0, -3);
  }
  s = int + out + frac;
  return neg ? `-${s}` : s;
}

/** Three significant digits, at most `maxDecimals` decimals: 1.234 → "1.23", 12.34 → "12.3", 123.4 → "123". */
function sig3(v: number, maxDecimals = 2): string {
  const a = Math.abs(v);
  const d = a >= 100 ? 0 : a >= 10 ? 1 : 2;
  return v.toFixed(Math.min(d, maxDecimals));
}

/** Nanoseconds → "850 ns", "12.3 µs", "4.56 ms", "1.23 s", "123 s". */
export function formatDuration(ns: number): string {
  const a = Math.abs(ns);
  if (a < 1e3) return `${sig3(ns, 0)} ns`;
  if (a < 1e6) return `${sig3(ns / 1e3)} µs`;
  if (a < 1e9) return `${sig3(ns / 1e6)} ms`;
  return `${sig3(ns / 1e9)} s`;
}

/** Bytes → "512 B", "1.50 KiB", "12.3 MiB", "1.02 GiB". */
export function formatBytes(b: number): string {
  const a = Math.abs(b);
  if (a < 1024) return `${sig3(b, 0)} B`;
  if (a < 1024 ** 2) return `${sig3(b / 1024)} KiB`;
  if (a < 1024 ** 3) return `${sig3(b / 1024 ** 2)} MiB`;
  return `${sig3(b / 1024 ** 3)} GiB`;
}

/** A value in its unit, with the unit: "1,234 samples", "4.56 ms", "1.50 KiB", "7 calls". */
export function formatValue(v: number, unit: string): string {
  switch (unit) {
    case 'nanoseconds':
      return formatDuration(v);
    case 'bytes':
      return formatBytes(v);
    case 'calls':
      return `${groupDigits(v)} ${v === 1 ? 'call' : 'calls'}`;
    case 'samples':
      return `${groupDigits(v)} ${v === 1 ? 'sample' : 'samples'}`;
    default:
      return groupDigits(v);
  }
}

/** A value for a table column (no unit word for counts): "1,234", "4.56ms", "1.50KiB". */
export function formatValueShort(v: number, unit: string): string {
  switch (unit) {
    case 'nanoseconds':
      return formatDuration(v).replace(' ', '');
    case 'bytes':
      return formatBytes(v).replace(' ', '');
    default:
      return groupDigits(v);
  }
}

/** A fraction as a percentage with two decimals: 0.4567 → "45.67%". */
export function formatPercent(fraction: number): string {
  if (!Number.isFinite(fraction)) return '0.00%';
  return `${(100 * fraction).toFixed(2)}%`;
}
