/**
 * `perf record` driven for the perf lens: start it on a command or a PID, measure its CPU
 * against the target's while it runs, stop it on a duration or a signal, then turn
 * perf.data into a profile (`perf inject --jit` when CPython wrote a jitdump, `perf
 * script`, the perf-script importer) and clean up the files CPython and perf leave in /tmp.
 */
import { readdirSync, readFileSync, readlinkSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { perfScriptImporter } from '../../formats/perf-script.ts';
import { InputFile, NOT_MINE } from '../../formats/types.ts';
import type { Profile } from '../../model/profile.ts';
import { explainPerfStderr, PerfError, processCpuNs, runPerfSync, spawnPerf, startPerfRecord, type PerfRun } from './tool.ts';

export interface PerfRecordOptions {
  perf: string;
  /** A running process, or a command perf launches (stdio passed through). */
  target: { pid: number } | { argv: string[]; env: Record<string, string> };
  event: string;
  freqHz: number;
  callGraph: 'fp' | 'dwarf';
  /** Sample kernel mode too (else the event gets the `:u` modifier). */
  kernel: boolean;
  durationS?: number;
  /** perf.data goes here. */
  dataFile: string;
  signal: AbortSignal;
  /** Called once the target's pid is known (launch mode: perf's child). */
  onTarget?: (pid: number) => void;
}

export interface PerfRecordResult {
  dataFile: string;
  /** perf's exit code: in launch mode the target's (perf passes it on). */
  exitCode: number;
  stderr: string;
  targetPid: number | undefined;
  wallNs: number;
  /** perf record's own CPU while the target ran: from the first reading of both (100 ms
   * polls; perf's start-up is before it) to the last before the target ended. */
  perfCpuNs: number;
  /** The target's CPU over the same span, when it could be read. */
  targetCpuNs: number | undefined;
  /** Stopped by the duration or a signal rather than the target ending. */
  stopped: boolean;
}

function exeOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}

/** Children of a process (needs CONFIG_PROC_CHILDREN, else a /proc scan). */
function childrenOf(pid: number): number[] {
  try {
    const out: number[] = [];
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const s = readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim();
      if (s) out.push(...s.split(/\s+/).map(Number));
    }
    return out;
  } catch {
    const out: number[] = [];
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const st = readFileSync(`/proc/${d}/stat`, 'utf8');
        const ppid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid === pid) out.push(Number(d));
      } catch {
        // gone
      }
    }
    return out;
  }
}

/** Run perf record until the target ends, the duration passes or `signal` aborts. */
export async function perfRecord(o: PerfRecordOptions): Promise<PerfRecordResult> {
  const ev = o.kernel ? o.event : `${o.event}:u`;
  const args = ['record', '-q', '-e', ev, '-F', String(o.freqHz), '-k', 'CLOCK_MONOTONIC', '-N', '-o', o.dataFile];
  args.push('--call-graph', o.callGraph === 'dwarf' ? 'dwarf' : 'fp');
  let env: NodeJS.ProcessEnv | undefined;
  let launch = false;
  if ('pid' in o.target) args.push('-p', String(o.target.pid));
  else {
    launch = true;
    args.push('--', ...o.target.argv);
    env = { ...process.env, ...o.target.env };
  }
  const spawnOpts = { stdio: (launch ? ['inherit', 'inherit', 'pipe'] : ['ignore', 'ignore', 'pipe']) as Array<'inherit' | 'pipe' | 'ignore'>, ...(env ? { env } : {}), onStderr: (c: string) => process.stderr.write(filterPerfNoise(c)) };
  // launched: perf starts the command once it records; attached: the duration counts from
  // the moment perf confirms its events are on (its start-up can take a while on a busy machine)
  const run: PerfRun = launch ? spawnPerf(o.perf, args, spawnOpts) : await startPerfRecord(o.perf, args, spawnOpts);
  const t0 = performance.now();
  let targetPid = 'pid' in o.target ? o.target.pid : undefined;
  let perfCpu = 0;
  let targetCpu: number | undefined;
  let first: { perf: number; target: number } | undefined;
  let stopped = false;
  let ended = false;
  const sample = () => {
    if (targetPid === undefined && launch) {
      // perf forks the command early and lets it exec once recording is set up
      targetPid = childrenOf(run.pid).find((c) => exeOf(c) !== undefined && exeOf(c) !== exeOf(run.pid));
      if (targetPid !== undefined) {
        o.onTarget?.(targetPid);
        startTimer();
      }
    }
    const pc = processCpuNs(run.pid);
    const tc = targetPid !== undefined ? processCpuNs(targetPid) : undefined;
    // keep the last readings taken while both were alive: perf's wrap-up after the target ends
    // is not overhead on it, and neither is its start-up before the first reading
    if (pc !== undefined && tc !== undefined) {
      if (first === undefined) first = { perf: pc, target: tc };
      perfCpu = pc - first.perf;
      targetCpu = tc - first.target;
    }
  };
  if (!launch) o.onTarget?.(targetPid!);
  const poll = setInterval(sample, 100);
  const stop = () => {
    if (ended || stopped) return;
    stopped = true;
    sample();
    run.child.kill('SIGINT');
  };
  // -d counts from when the target runs under perf (launched: perf's start-up is not in it)
  let timer: NodeJS.Timeout | undefined;
  function startTimer(): void {
    if (timer === undefined && o.durationS !== undefined) timer = setTimeout(stop, o.durationS * 1000);
  }
  if (!launch) startTimer();
  o.signal.addEventListener('abort', stop, { once: true });
  const done = await run.done;
  ended = true;
  clearInterval(poll);
  if (timer) clearTimeout(timer);
  o.signal.removeEventListener('abort', stop);
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
  return { dataFile: o.dataFile, exitCode: done.code, stderr: done.stderr, targetPid, wallNs, perfCpuNs: perfCpu, targetCpuNs: targetCpu, stopped };
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
