/**
 * `perf record` driven for the perf lens: start it on a PID (a launched program is held at
 * the capture session's gate until perf runs), measure its CPU against the target's while it
 * runs, stop it when the session ends, then turn
 * perf.data into a profile (`perf inject --jit` when CPython wrote a jitdump, `perf
 * script`, the perf-script importer) and clean up the files CPython and perf leave in /tmp.
 */
import { readdirSync, readFileSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { perfScriptImporter } from '../../formats/perf-script.ts';
import { InputFile, NOT_MINE } from '../../formats/types.ts';
import type { Profile } from '../../model/profile.ts';
import { explainPerfStderr, PerfError, processCpuNs, runPerfSync, startPerfRecord, type PerfRun } from './tool.ts';

export interface PerfRecordOptions {
  perf: string;
  /** The process to record (a launched one is held at the session's exec gate until perf runs). */
  pid: number;
  event: string;
  freqHz: number;
  callGraph: 'fp' | 'dwarf';
  /** Sample kernel mode too (else the event gets the `:u` modifier). */
  kernel: boolean;
  /** perf.data goes here. */
  dataFile: string;
}

export interface PerfRecordResult {
  dataFile: string;
  /** perf's own exit code */
  exitCode: number;
  stderr: string;
  wallNs: number;
  /** perf record's own CPU while the target ran: from the first reading of both (100 ms
   * polls; perf's start-up is before it) to the last before the target ended. */
  perfCpuNs: number;
  /** The target's CPU over the same span, when it could be read. */
  targetCpuNs: number | undefined;
}

export interface PerfRecording {
  /** resolves when perf ends by itself (with -p: when the target has exited) */
  ended: Promise<unknown>;
  /** stop perf (SIGINT) if it still runs, and check what it wrote; throws PerfError when it wrote nothing */
  stop(): Promise<PerfRecordResult>;
  /** SIGKILL (pylens is exiting) */
  kill(): void;
}

/**
 * Start `perf record -p PID` and resolve once its events are enabled (startPerfRecord's
 * control channel): what the target does from then on is recorded. Throws PerfError.
 */
export async function startPerfRecording(o: PerfRecordOptions): Promise<PerfRecording> {
  const ev = o.kernel ? o.event : `${o.event}:u`;
  const args = ['record', '-q', '-e', ev, '-F', String(o.freqHz), '-k', 'CLOCK_MONOTONIC', '-N', '-o', o.dataFile];
  args.push('--call-graph', o.callGraph === 'dwarf' ? 'dwarf' : 'fp', '-p', String(o.pid));
  // its own process group: a Ctrl-C at the terminal is for the target and pylens, which
  // stops perf once the recording ends
  const run: PerfRun = await startPerfRecord(o.perf, args, { detached: true, onStderr: (c: string) => process.stderr.write(filterPerfNoise(c)) });
  const t0 = performance.now();
  let perfCpu = 0;
  let targetCpu: number | undefined;
  let first: { perf: number; target: number } | undefined;
  let ended = false;
  const sample = () => {
    const pc = processCpuNs(run.pid);
    const tc = processCpuNs(o.pid);
    // keep the last readings taken while both were alive: perf's wrap-up after the target ends
    // is not overhead on it, and neither is its start-up before the first reading
    if (pc !== undefined && tc !== undefined) {
      if (first === undefined) first = { perf: pc, target: tc };
      perfCpu = pc - first.perf;
      targetCpu = tc - first.target;
    }
  };
  sample();
  const poll = setInterval(sample, 100);
  poll.unref();
  void run.done.then(() => {
    ended = true;
    clearInterval(poll);
  });
  let stopping: Promise<PerfRecordResult> | undefined;
  return {
    ended: run.done,
    kill: () => {
      if (!ended) run.child.kill('SIGKILL');
    },
    stop() {
      stopping ??= (async () => {
        if (!ended) {
          sample();
          run.child.kill('SIGINT');
        }
        const done = await run.done;
        clearInterval(poll);
        const wallNs = (performance.now() - t0) * 1e6;
        let hasData = false;
        try {
          hasData = statSync(o.dataFile).size > 0;
        } catch {
          hasData = false;
        }
        if (!hasData) {
          throw explainPerfStderr(done.stderr, 'perf record') ??
            new PerfError(`perf record wrote no data (exit ${done.code}): ${done.stderr.trim().split('\n').slice(-3).join(' | ') || 'no message'}`, 'run `perf record -- true` by hand to see why');
        }
        return { dataFile: o.dataFile, exitCode: done.code, stderr: done.stderr, wallNs, perfCpuNs: perfCpu, targetCpuNs: targetCpu };
      })();
      return stopping;
    },
  };
}

/** perf's lines that say nothing to a pylens user (they are about perf's own files). */
function filterPerfNoise(chunk: string): string {
  return chunk
    .split('\n')
    .filter((l) => l && !/^\[ perf record: (Woken up|Captured and wrote)/.test(l) && !/Processed \d+ events and lost/.test(l))
    .map((l) => `perf: ${l}\n`)
    .join('');
}

/** Fields perf script prints: what the perf-script importer reads. */
const SCRIPT_FIELDS = 'comm,pid,tid,time,period,event,ip,sym,symoff,dso';

export interface ScriptResult {
  profile: Profile;
  /** pids whose CPython wrote perf maps / jitdumps (for cleanup). */
  pids: number[];
  /** ms spent in inject, script and parse. */
  injectMs: number;
  scriptMs: number;
  parseMs: number;
  scriptBytes: number;
}

/**
 * perf.data → profile. With `jit`, `perf inject --jit` first (it writes jitted-PID-N.so
 * next to CPython's /tmp/jit-PID.dump). `workdir` holds the intermediate files.
 */
export function perfDataToProfile(perf: string, dataFile: string, opts: { jit: boolean; workdir: string }): ScriptResult {
  let input = dataFile;
  let injectMs = 0;
  const buildid = ['--buildid-dir', join(opts.workdir, 'buildid')];
  if (opts.jit) {
    const t = performance.now();
    const injected = join(opts.workdir, 'perf.jit.data');
    runPerfSync(perf, [...buildid, 'inject', '--jit', '-i', dataFile, '-o', injected], 'perf inject --jit');
    input = injected;
    injectMs = performance.now() - t;
  }
  const t1 = performance.now();
  const scriptOut = join(opts.workdir, 'perf-script.txt');
  runPerfSync(perf, [...buildid, 'script', '-i', input, '-F', SCRIPT_FIELDS], 'perf script', { outFile: scriptOut });
  const scriptMs = performance.now() - t1;
  const t2 = performance.now();
  const bytes = readFileSync(scriptOut);
  const parsed = bytes.length === 0 ? NOT_MINE : perfScriptImporter.parse(new InputFile(bytes, 'perf script'));
  if (parsed === NOT_MINE) {
    throw new PerfError('perf recorded no samples (the target ran too briefly, or was idle the whole time)', 'record longer (-d), or check that the target uses CPU; `perf report -i` on a kept --perf-data file shows what perf saw');
  }
  const parseMs = performance.now() - t2;
  const pids = [...new Set(parsed.threads.pid)].filter((p) => p > 0);
  return { profile: parsed, pids, injectMs, scriptMs, parseMs, scriptBytes: bytes.length };
}

/**
 * Remove what CPython's perf support and perf inject left in /tmp for `pids`: perf-PID.map,
 * jit-PID.dump, jitted-PID-N.so. After attaching, only the jitted .so files inject made
 * (`jittedOnly`): a running target's map and dump files are still in use.
 */
export function removePerfFiles(pids: number[], opts: { jittedOnly?: boolean } = {}): number {
  const want = new Set(pids.map(String));
  let n = 0;
  let names: string[];
  try {
    names = readdirSync('/tmp');
  } catch {
    return 0;
  }
  for (const f of names) {
    const m = /^(?:perf-(\d+)\.map|jit-(\d+)\.dump|jitted-(\d+)-\d+\.so)$/.exec(f);
    if (!m) continue;
    const pid = m[1] ?? m[2] ?? m[3]!;
    if (!want.has(pid) || (opts.jittedOnly && m[3] === undefined)) continue;
    try {
      unlinkSync(join('/tmp', f));
      n++;
    } catch {
      // someone else's
    }
  }
  return n;
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
