/**
 * Preloaded into the CLI by bench/sampler-memory.ts (`node --import .../sampler-rss-probe.ts`):
 * prints the process's peak RSS (getrusage maxRSS, kB) on stderr at exit, so that the peak
 * of the final export is counted too. Not a bench.
 */
import { writeSync } from 'node:fs';

process.on('exit', () => {
  writeSync(2, `pylens-bench maxRSS ${process.resourceUsage().maxRSS} kB\n`);
});
