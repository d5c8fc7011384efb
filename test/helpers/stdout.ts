/** Run `f` with process.stdout.write captured: its return value and what it printed. */
export function captureStdout(f: () => number): { code: number; out: string } {
  const orig = process.stdout.write;
  let out = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    return true;
  }) as typeof process.stdout.write;
  try {
    return { code: f(), out };
  } finally {
    process.stdout.write = orig;
  }
}
