/**
 * Runs every benchmark one after another (never in parallel: the machine has 2 cores)
 * and prints their figures. `npm run bench`; `npm run bench -- --quick` gives the sampler
 * benches (the ones that take it) their short run.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const benches = ['perf-script.ts', 'folded.ts', 'memory.ts', 'html.ts', 'sampler-accuracy.ts', 'sampler-overhead.ts', 'sampler-memory.ts', 'sampler-peers.ts', 'sampler-cuts.ts', 'sampler-saturation.ts', 'sampler-floor.ts', 'launch-gap.ts', 'perf-overhead.ts', 'offcpu-overhead.ts', 'interp-trace.ts', 'interp-count.ts', 'interp-mem.ts'];
const quick = process.argv.includes('--quick');
let failed = 0;
for (const b of benches) {
  process.stdout.write(`\n===== bench/${b} =====\n`);
  const args = quick && (b.startsWith('sampler-') || b.endsWith('-overhead.ts') || b === 'interp-count.ts' || b === 'interp-mem.ts') ? ['--quick'] : quick && b === 'interp-trace.ts' ? ['--rounds', '1'] : [];
  const r = spawnSync(process.execPath, [join(here, b), ...args], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    process.stdout.write(`bench/${b} exited with ${r.status}\n`);
  }
}
process.exitCode = failed ? 1 : 0;
