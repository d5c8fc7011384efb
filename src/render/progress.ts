/** `pylens record`'s live progress line on stderr. */

import type { RecordProgress } from '../model/progress.ts';

/** The progress line, e.g. "pylens record: 12.3 s, 1,230 samples, 100.0 Hz, 0 errors, 3 threads". */
export function progressLine(p: RecordProgress, withProcesses: boolean): string {
  const s = p.elapsedNs / 1e9;
  // a rate over the first fraction of a second says nothing
  const hz = s >= 0.2 ? p.ticks / s : 0;
  return (
    `pylens record: ${s.toFixed(1)} s, ${p.samples.toLocaleString('en-US')} samples, ${hz.toFixed(1)} Hz, ` +
    `${p.errors} error${p.errors === 1 ? '' : 's'}, ${p.threads} thread${p.threads === 1 ? '' : 's'}` +
    (withProcesses ? `, ${p.processes} process${p.processes === 1 ? '' : 'es'}` : '')
  );
}
