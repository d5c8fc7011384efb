/**
 * Benchmark: sampler memory over a long recording, goal < 150 MB peak RSS for 10 minutes.
 *
 * Target bench/workloads/threads20.py: 20 threads, each at a stack depth of 10–20 in its own
 * chain of functions, alternating between spinning in one of several leaves and short
 * sleeps. The CLI `pylens record -p PID -r 100 -d D -o out.pylens` runs as a child (with a
 * preload that prints its peak RSS at exit, the final export included); its VmRSS is polled
 * every second. Two modes: `cpu` (the default of record: only running threads give
 * samples) and `idle` (`--idle`: every thread every tick, ~2000 samples/s — the worst case).
 * Prints per mode: samples, peak RSS, RSS growth rate over the second half of the run and
 * per sample, the output size and bytes per sample, and the peak projected to 10 minutes.
 *
 *   node_modules/.bin/node bench/sampler-memory.ts               # 120 s per mode
 *   node_modules/.bin/node bench/sampler-memory.ts --minutes 10  # the full run
 *   node_modules/.bin/node bench/sampler-memory.ts --quick       # 20 s per mode
 *   … [--mode cpu|idle] [--python 3.12] [--cli dist]
 * --cli dist runs the built CLI (dist/src/cli/main.js, `npm run build`; what the package's
 * `pylens` bin is) instead of src/cli/main.ts: no TypeScript stripping loaded, ~27 MB less
 * RSS at start. It is only as new as the last build.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importProfile, InputFile } from '../src/formats/index.ts';
import { existsSync } from 'node:fs';
import { argValue, CLI, DIST_CLI, exited, killChild, LineReader, machineLine, procStatusKb, python, QUICK, sleep, startRecord, waitForAttach, WORKLOADS } from './sampler-common.ts';

const GOAL_MB = 150;
const FULL_S = 600;
const minutes = argValue('--minutes');
const SECONDS = minutes !== undefined ? Number(minutes) * 60 : Number(argValue('--seconds') ?? (QUICK ? 20 : 120));
const MODES = (argValue('--mode') ?? 'cpu,idle').split(',') as Array<'cpu' | 'idle'>;
const MINOR = Number((argValue('--python') ?? '3.12').split('.')[1]);
const PROBE = join(import.meta.dirname, 'sampler-rss-probe.ts');
const cli = argValue('--cli') === 'dist' ? DIST_CLI : CLI;
if (!existsSync(cli)) {
  console.log(`${cli} not found (npm run build)`);
  process.exit(1);
}

const py = python(MINOR);
if (!py) {
  console.log(`no pyenv CPython 3.${MINOR} installed`);
  process.exit(1);
}
const mb = (kb: number) => (kb / 1024).toFixed(1);
const tmp = mkdtempSync(join(tmpdir(), 'pylens-bench-memory-'));
console.log(`sampler memory — threads20.py on ${py.label}, 100 Hz for ${SECONDS} s per mode, goal < ${GOAL_MB} MB for ${FULL_S / 60} min; CLI ${cli === CLI ? 'src/cli/main.ts (type stripping)' : 'dist/src/cli/main.js (built)'}; ${machineLine()}`);

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den ? num / den : 0;
}

const target = spawn(py.exe, [join(WORKLOADS, 'threads20.py'), '20'], { stdio: ['ignore', 'pipe', 'inherit'] });
try {
  await new LineReader(target).next('threads20.py', 20_000);
  for (const mode of MODES) {
    const out = join(tmp, `${mode}.pylens`);
    const rec = startRecord(target.pid!, ['-r', '100', '-d', String(SECONDS), '-o', out, ...(mode === 'idle' ? ['--idle'] : [])], ['--import', PROBE], cli);
    try {
      await waitForAttach(rec.child.pid!, target.pid!);
      const t0 = performance.now();
      const ts: number[] = [];
      const rss: number[] = [];
      let hwmSampling = 0;
      const done = exited(rec.child);
      let finished = false;
      void done.then(() => (finished = true));
      while (!finished) {
        const st = procStatusKb(rec.child.pid!);
        const t = (performance.now() - t0) / 1000;
        if (st?.VmRSS !== undefined && t <= SECONDS) {
          ts.push(t);
          rss.push(st.VmRSS);
          hwmSampling = Math.max(hwmSampling, st.VmHWM ?? 0);
        }
        await Promise.race([sleep(1000), done]);
      }
      const code = await done;
      if (code !== 0) throw new Error(`pylens record exited with ${code}: ${rec.stderr()}`);
      const err = rec.stderr();
      const peakKb = Number(/pylens-bench maxRSS (\d+) kB/.exec(err)?.[1] ?? NaN);
      const summary = /pylens record: (.*)/.exec(err)?.[1]?.trim() ?? '?';
      const samples = Number(/(\d+) samples/.exec(summary)?.[1] ?? NaN);
      const size = statSync(out).size;
      const p = importProfile(new InputFile(readFileSync(out), out)).profile;
      // growth over the second half of the sampling (attach, JIT warm-up and first allocations left out)
      const half = ts.findIndex((t) => t >= SECONDS / 2);
      const growKbPerS = half >= 0 ? slope(ts.slice(half), rss.slice(half)) : NaN;
      const samplesPerS = samples / SECONDS;
      const bytesPerSample = (growKbPerS * 1024) / samplesPerS;
      // a negative slope (GC gave memory back) projects no growth, not a shrink
      const projectedKb = peakKb + Math.max(0, growKbPerS) * Math.max(0, FULL_S - SECONDS) * Math.max(1, peakKb / Math.max(1, hwmSampling));
      console.log(
        `${mode.padEnd(4)}: ${summary}; ${p.threads.length} threads, ${p.stacks.length} stacks, ${p.frames.length} frames\n` +
          `      RSS ${mb(rss[0] ?? NaN)} MB after attach → ${mb(rss.at(-1) ?? NaN)} MB at the end of sampling; peak ${mb(hwmSampling)} MB while sampling, ${mb(peakKb)} MB with the export\n` +
          `      growth ${(growKbPerS / 1024).toFixed(3)} MB/s over the second half = ${bytesPerSample.toFixed(0)} B/sample at ${samplesPerS.toFixed(0)} samples/s; ` +
          `output ${(size / 1e6).toFixed(2)} MB = ${(size / samples).toFixed(1)} B/sample\n` +
          `      projected peak for ${FULL_S / 60} min: ${mb(projectedKb)} MB (growth extrapolated, export peak scaled alike)` +
          (SECONDS >= FULL_S ? '' : ` — ${projectedKb / 1024 < GOAL_MB ? 'meets' : 'MISSES'} ${GOAL_MB} MB`) +
          (SECONDS >= FULL_S ? `; measured over the full ${SECONDS} s: peak ${mb(peakKb)} MB — ${peakKb / 1024 < GOAL_MB ? 'meets' : 'MISSES'} ${GOAL_MB} MB` : ''),
      );
    } finally {
      killChild(rec.child);
    }
  }
} catch (e) {
  console.log(`failed: ${(e as Error).stack ?? e}`);
  process.exitCode = 1;
} finally {
  killChild(target);
  rmSync(tmp, { recursive: true, force: true });
}
