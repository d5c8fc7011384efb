/**
 * The playbook as data (`pylens diagnose`): from the profiles a diagnosis recorded, a short
 * ranked list of findings, each with its evidence and the next command, and the checklist
 * a result must pass before anyone acts on it.
 *
 * Inputs: `main`, a profile of every thread's time — on-CPU, and waiting (sampler wall
 * mode: idle; the eBPF lens: off-CPU by wait class, GIL waits) — and, when perf could run,
 * `native`, the CPU profile with native and kernel frames.
 *
 * Findings (share = of all thread time recorded, idle workers left out, unless said otherwise):
 * - `cpu-hotspot`: the functions with the most on-CPU self time (≥ 10 % of CPU), with the
 *   wide bottom they sit under (analysis/report.ts), a 95 % interval from the binomial
 *   (samples are correlated: read it as a lower bound on the uncertainty).
 * - `waiting`: threads wait more than 20 % of their time; the classes (`lock`, `network`,
 *   `disk`, `sleep`, `gil`, `preempted`, `other`) and, for each class over 10 %, a finding of
 *   its own naming the Python line that waits most. Without the eBPF lens the class comes
 *   from the innermost Python frame (threading/queue → lock, selectors/socket/ssl → network,
 *   time.sleep callers are `other`: the sampler cannot see the C call). Workers waiting
 *   for work — a `queue.get`, a thread pool's `_worker`, a process pool's `worker`, a
 *   socketserver between requests — are `idle`: not a wait anyone should fix; they are left
 *   out of the waiting share and named in its evidence.
 * - `gil`: more than 5 % of thread time waiting for the GIL.
 * - `native`: native code other than the interpreter's own (C extensions, libraries, the
 *   kernel) holds more than 30 % of CPU; the library named.
 * - `no-symbols`: more than 20 % of the interpreter's own CPU time shows as unknown
 *   addresses: the interpreter has no symbols.
 * - `imbalance`: several processes (a pool's master left out), the busiest with more than
 *   1.5× the mean CPU of all of them, idle ones included.
 * - `memory-growth` (with `rss`, `diagnose --mem`): the resident memory read every half
 *   second grows steadily by the `mem` lens's growth rule (analysis/mem.ts GROWTH_RULE), at
 *   least 1 MiB; share = the growth as a part of the memory at the end.
 */
import { SampleStateCode, frameInfo, type Profile } from '../model/profile.ts';
import { aggregate, filterSamples } from '../model/query.ts';
import { detectGrowth, GROWTH_RULE, type GrowthVerdict } from './mem.ts';
import { wideBottoms } from './report.ts';

export type FindingKind = 'cpu-hotspot' | 'waiting' | 'lock' | 'network' | 'disk' | 'sleep' | 'gil' | 'preempted' | 'other-wait' | 'native' | 'no-symbols' | 'imbalance' | 'memory-growth';

export interface Finding {
  kind: FindingKind;
  /** one line: what is wrong */
  title: string;
  function?: string;
  file?: string | null;
  line?: number;
  /** the finding's weight, 0–1 (of thread time, or of CPU where `shareOf` says) */
  share: number;
  shareOf: 'thread time' | 'CPU' | 'memory';
  /** the numbers behind it */
  evidence: string;
  /** the command to run next */
  next: string;
}

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

export interface DiagnoseInput {
  main: Profile;
  native?: Profile;
  /** how to point the next commands at the target: `-p 4242` or `-- python app.py` */
  target: string;
  /** resident memory over the recording (diagnose --mem): seconds and bytes */
  rss?: { times: number[]; bytes: number[] };
  /** the launched program's command line, for a next command that must launch it (`pylens mem`) */
  command?: string;
}

const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
const ci95 = (p: number, n: number) => (n > 0 ? 1.96 * Math.sqrt((p * (1 - p)) / n) : 0);

/** the innermost Python frame of a stack, or -1 */
function pythonLeaf(p: Profile, s: number): number {
  for (let a = s; a >= 0; a = p.stacks.parent[a]!) if (p.frames.kind[p.stacks.frame[a]!] === 'python') return p.stacks.frame[a]!;
  return -1;
}

const WAIT_RE = /^\[wait: (.+)\]$/;

/**
 * Python frames where a thread or process waits for work to arrive: the stdlib's consumers
 * and pools (file path suffix, function). A wait under one of these is idleness, whatever
 * the kernel calls it (a futex, a pipe read, a select).
 */
const IDLE_WAITS: ReadonlyArray<readonly [RegExp, ReadonlySet<string>]> = [
  [/(^|\/)queue\.py$/, new Set(['get'])],
  [/(^|\/)concurrent\/futures\/thread\.py$/, new Set(['_worker'])],
  [/(^|\/)concurrent\/futures\/process\.py$/, new Set(['_process_worker'])],
  [/(^|\/)multiprocessing\/pool\.py$/, new Set(['worker'])],
  [/(^|\/)multiprocessing\/queues\.py$/, new Set(['get'])],
  [/(^|\/)socketserver\.py$/, new Set(['serve_forever'])],
];

/** does the stack wait for work (IDLE_WAITS), its innermost Python frames first? */
function waitsForWork(p: Profile, s: number): boolean {
  for (let a = s; a >= 0; a = p.stacks.parent[a]!) {
    const f = p.stacks.frame[a]!;
    if (p.frames.kind[f] !== 'python') continue;
    const name = p.strings[p.frames.name[f]!]!;
    const file = p.strings[p.frames.file[f]!] ?? '';
    for (const [re, names] of IDLE_WAITS) if (names.has(name) && re.test(file)) return true;
  }
  return false;
}

/**
 * wait class of a waiting sample: `idle` when it waits for work (IDLE_WAITS), else the eBPF
 * lens's marker, else guessed from the Python leaf
 */
function classOf(p: Profile, s: number, markerClass: Map<number, string>): string {
  if (waitsForWork(p, s)) return 'idle';
  for (let a = s; a >= 0; a = p.stacks.parent[a]!) {
    const c = markerClass.get(p.stacks.frame[a]!);
    if (c !== undefined) return c;
  }
  const leaf = pythonLeaf(p, s);
  if (leaf < 0) return 'other';
  const file = p.strings[p.frames.file[leaf]!] ?? '';
  const base = file.slice(file.lastIndexOf('/') + 1);
  if (/^(threading|queue)\.py$/.test(base)) return 'lock';
  if (/^(selectors|socket|ssl|base_events|selector_events|connection|client)\.py$/.test(base)) return 'network';
  return 'other';
}

export function findings(input: DiagnoseInput): Finding[] {
  const p = input.main;
  const out: Finding[] = [];
  const col = p.samples.values[p.defaultValue]!;
  const markerClass = new Map<number, string>();
  for (let f = 0; f < p.frames.length; f++) {
    if (p.frames.kind[f] !== 'marker') continue;
    const m = WAIT_RE.exec(p.strings[p.frames.name[f]!]!);
    if (m) markerClass.set(f, m[1] === 'GIL' ? 'gil' : m[1]!);
  }
  let total = 0;
  let cpu = 0;
  let cpuSamples = 0;
  const waitBy = new Map<string, number>();
  const waitLine = new Map<string, Map<number, number>>();
  const procCpu = new Map<number, number>();
  const perStack = new Map<number, { cls: string; leaf: number }>();
  for (let i = 0; i < p.samples.length; i++) {
    const v = col[i]!;
    total += v;
    const st = p.samples.state[i]!;
    const s = p.samples.stack[i]!;
    if (st === SampleStateCode['on-cpu'] || st === SampleStateCode.unknown) {
      cpu += v;
      cpuSamples++;
      const pid = p.threads.pid[p.samples.thread[i]!]!;
      procCpu.set(pid, (procCpu.get(pid) ?? 0) + v);
      continue;
    }
    let cls = 'other';
    let leaf = -1;
    if (s >= 0) {
      // a stack's class and leaf are the same for every sample of it
      let known = perStack.get(s);
      if (!known) perStack.set(s, (known = { cls: classOf(p, s, markerClass), leaf: pythonLeaf(p, s) }));
      cls = known.cls;
      leaf = known.leaf;
    }
    if (st === SampleStateCode.gil) cls = 'gil';
    waitBy.set(cls, (waitBy.get(cls) ?? 0) + v);
    if (leaf >= 0) {
      let m = waitLine.get(cls);
      if (!m) waitLine.set(cls, (m = new Map()));
      m.set(leaf, (m.get(leaf) ?? 0) + v);
    }
  }
  if (!(total > 0)) return [];
  // workers waiting for work are idle, not waiting on something to fix
  const idle = waitBy.get('idle') ?? 0;
  waitBy.delete('idle');
  const waiting = total - cpu - idle;
  // the thread time the waiting shares are of: idle workers left out
  const busy = total - idle;

  // CPU hotspots, under their wide bottom (not for a program that hardly runs: a few
  // on-CPU samples of a mostly waiting program say nothing about where CPU goes)
  if (cpu > 0 && (cpuSamples >= 50 || cpu / busy >= 0.05)) {
    // CPU hotspots are read in the on-CPU samples (and those whose state is unknown)
    const onCpu = filterSamples(p, { states: ['on-cpu', 'unknown'] });
    const agg = aggregate(onCpu);
    // wide bottoms worth naming: not the threading/runpy plumbing every thread starts in
    const bottoms = wideBottoms(onCpu, { limit: 20 }).filter((w) => !/(^|\/)(threading|runpy)\.py$|<frozen runpy>/.test(w.file ?? ''));
    for (const r of agg.rows.slice(0, 3)) {
      const share = r.self / agg.grandTotal;
      if (share < 0.1 || r.kind === 'marker') continue;
      const callers = callersOf(onCpu, r.name);
      const bottom = bottoms.find((w) => w.name !== r.name && callers.has(w.name));
      const under = bottom ? `, under ${bottom.name} (${pct(bottom.share)} of CPU fans out there)` : '';
      out.push({
        kind: 'cpu-hotspot',
        title: `${r.name} burns ${pct(share)} of the CPU time${under}`,
        function: r.name,
        file: r.file,
        share,
        shareOf: 'CPU',
        evidence: `${pct(share)} ± ${pct(ci95(share, cpuSamples))} of ${cpuSamples.toLocaleString('en-US')} on-CPU samples (self); ${pct(r.total / agg.grandTotal)} with its callees; CPU is ${pct(cpu / busy)} of thread time`,
        next: `pylens record ${input.target} -d 30 -o cpu.html   (then pylens report cpu.html --by line --focus '${r.name}')`,
      });
    }
  }

  // waiting, by class
  if (waiting / busy >= 0.2) {
    const classes = [...waitBy.entries()].sort((a, b) => b[1] - a[1]);
    out.push({
      kind: 'waiting',
      title: `threads wait ${pct(waiting / busy)} of their time`,
      share: waiting / busy,
      shareOf: 'thread time',
      evidence: `waiting: ${classes.map(([c, v]) => `${c} ${pct(v / busy)}`).join(', ')}; on CPU ${pct(cpu / busy)}${idle > 0 ? `; idle workers waiting for work (queue.get, pools; left out) ${pct(idle / total)} of all thread time` : ''}`,
      next: markerClass.size ? `pylens offcpu ${input.target} -d 30 -o waits.html` : `pylens offcpu ${input.target} -d 30 -o waits.html   (eBPF: the kernel's reason for each wait)`,
    });
    for (const [cls, v] of classes) {
      if (v / busy < 0.1 || cls === 'gil') continue;
      const lines = [...(waitLine.get(cls) ?? new Map<number, number>()).entries()].sort((a, b) => b[1] - a[1]);
      const top = lines[0];
      const fi = top ? frameInfo(p, top[0]) : undefined;
      const where = fi ? ` in ${fi.qualname} (${fi.file ?? '?'}${fi.line ? `:${fi.line}` : ''})` : '';
      const kind: FindingKind = cls === 'lock' || cls === 'network' || cls === 'disk' || cls === 'sleep' || cls === 'preempted' ? cls : 'other-wait';
      out.push({
        kind,
        title: cls === 'preempted' ? `runnable threads wait ${pct(v / busy)} of their time for a CPU` : `${pct(v / busy)} of thread time waits on ${cls === 'other' ? 'something the sampler cannot name' : cls}${where}`,
        ...(fi ? { function: fi.qualname, file: fi.file, line: fi.line } : {}),
        share: v / busy,
        shareOf: 'thread time',
        evidence: `${pct(v / busy)} of thread time${top ? `; ${pct(top[1] / v)} of it at this line` : ''}`,
        next:
          kind === 'lock'
            ? `pylens offcpu ${input.target} -d 30 -o locks.html   (who holds it: pylens dump -p PID while it waits)`
            : kind === 'preempted'
              ? `pylens sched ${input.target} -d 10   (run-queue delay per thread; the machine is short of CPU)`
              : kind === 'disk'
                ? `pylens io -d 10   (block I/O latency and who issued it)`
                : `pylens offcpu ${input.target} -d 30 -o waits.html`,
      });
    }
  }
  const gil = waitBy.get('gil') ?? 0;
  if (gil / busy >= 0.05) {
    out.push({
      kind: 'gil',
      title: `threads wait for the GIL ${pct(gil / busy)} of their time: CPU-bound Python threads take turns`,
      share: gil / busy,
      shareOf: 'thread time',
      evidence: `${pct(gil / busy)} of thread time in GIL waits (the eBPF lens's GIL probe)`,
      next: `move CPU-bound work to processes (multiprocessing, concurrent.futures.ProcessPoolExecutor) or to C code that releases the GIL; pylens record ${input.target} --gil shows only the GIL holder's stacks`,
    });
  }

  // native code
  if (input.native) {
    const n = input.native;
    const ncol = n.samples.values[n.defaultValue]!;
    let all = 0;
    let nat = 0;
    let unknownInterp = 0;
    let interp = 0;
    const byLib = new Map<string, number>();
    for (let i = 0; i < n.samples.length; i++) {
      const s = n.samples.stack[i]!;
      const v = ncol[i]!;
      all += v;
      if (s < 0) continue;
      const f = n.stacks.frame[s]!;
      const kind = n.frames.kind[f];
      if (kind !== 'native' && kind !== 'kernel') continue;
      const lib = kind === 'kernel' ? '[kernel]' : (n.strings[n.frames.lib[f]!] ?? '[unknown]');
      const base = lib.slice(lib.lastIndexOf('/') + 1);
      const name = n.strings[n.frames.name[f]!]!;
      // the interpreter's own C code is Python's cost, not native code's
      if (/^(libpython\d|python\d)/.test(base)) {
        interp += v;
        if (/^(\[unknown\]|0x[0-9a-f]+)$/.test(name)) unknownInterp += v;
        continue;
      }
      nat += v;
      byLib.set(base, (byLib.get(base) ?? 0) + v);
    }
    if (all > 0 && nat / all >= 0.3) {
      const libs = [...byLib.entries()].sort((a, b) => b[1] - a[1]);
      const [lib] = libs[0]!;
      out.push({
        kind: 'native',
        title: `native code holds ${pct(nat / all)} of the CPU time, most of it in ${lib}`,
        file: lib,
        share: nat / all,
        shareOf: 'CPU',
        evidence: `leaf frames by library: ${libs.slice(0, 4).map(([l, x]) => `${l} ${pct(x / all)}`).join(', ')}`,
        next: `pylens record --native ${input.target} -d 30 -o native.html   (the Python line that calls into ${lib} is under each native frame)`,
      });
    }
    if (interp > 0 && unknownInterp / interp >= 0.2) {
      out.push({
          kind: 'no-symbols',
          title: `the interpreter has no symbols: ${pct(unknownInterp / interp)} of its CPU time shows as unknown addresses`,
          share: unknownInterp / all,
          shareOf: 'CPU',
          evidence: `${pct(unknownInterp / all)} of CPU samples end in unnamed interpreter code`,
          // record --native keeps the fix for this very file (capture/perf/symbols.ts); a profile without it gets the general one
          next: typeof n.meta.extra?.interpreterSymbolsFix === 'string' ? n.meta.extra.interpreterSymbolsFix : `install its symbols (Debian/Ubuntu: apt-get install python3.X-dbg or the -dbgsym package; Fedora: dnf debuginfo-install python3; pyenv builds keep them)`,
      });
    }
  }

  // several processes: is the work spread? (every process seen counts, busy or not; the
  // root of a pool — its master, which hands out the work — is left out when it has workers)
  const pids = new Set(p.threads.pid);
  if (pids.size > 2 && p.meta.pid !== undefined) pids.delete(p.meta.pid);
  for (const pid of [...procCpu.keys()]) if (!pids.has(pid)) procCpu.delete(pid);
  for (const pid of pids) if (!procCpu.has(pid)) procCpu.set(pid, 0);
  if (procCpu.size >= 2) {
    const vals = [...procCpu.values()];
    const mean = vals.reduce((a, x) => a + x, 0) / vals.length;
    const [busiest, v] = [...procCpu.entries()].sort((a, b) => b[1] - a[1])[0]!;
    if (mean > 0 && v / mean > 1.5) {
      out.push({
        kind: 'imbalance',
        title: `work is uneven across ${vals.length} processes: PID ${busiest} does ${(v / mean).toFixed(1)}× the mean`,
        share: v / cpu,
        shareOf: 'CPU',
        evidence: `CPU by process: ${[...procCpu.entries()].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([pid, x]) => `${pid} ${pct(x / cpu)}`).join(', ')}`,
        next: `pylens record -p ${busiest} -d 30 -o busiest.html   (what the busy worker does that the others do not)`,
      });
    }
  }
  // memory: does the resident set grow steadily?
  const mem = input.rss ? rssGrowth(input.rss) : undefined;
  if (mem?.growing) {
    const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
    out.push({
      kind: 'memory-growth',
      title: `memory grows steadily: RSS ${mib(mem.first)} → ${mib(mem.last)} (${mib(mem.rate * 60)}/min)`,
      share: mem.last > 0 ? mem.growth / mem.last : 0,
      shareOf: 'memory',
      evidence: `RSS read ${mem.intervals + 1} times: rose in ${mem.up} of ${mem.intervals} intervals, never fell in ${mem.nonDecreasing}; Mann–Kendall trend z ${mem.trendZ.toFixed(1)}; the growth rule: ${GROWTH_RULE}`,
      next: `pylens mem --interval 5 -- ${input.command ?? 'python app.py'}   (the lines whose allocations keep growing, from tracemalloc)`,
    });
  }

  // most important first: by share of thread time (a CPU share weighs by CPU's part of it)
  const weight = (f: Finding) => (f.shareOf === 'CPU' ? f.share * (cpu / busy) : f.share);
  return out.sort((a, b) => weight(b) - weight(a));
}

/**
 * The growth rule on a resident-memory series: at least 1 MiB over the recording (RSS moves
 * in pages and arenas: smaller rises are noise).
 */
export function rssGrowth(rss: { times: number[]; bytes: number[] }): GrowthVerdict {
  return detectGrowth(rss.bytes, rss.times, { minBytes: 2 ** 20 });
}

/** the functions on any stack above a frame of `name` */
function callersOf(p: Profile, name: string): Set<string> {
  const out = new Set<string>();
  for (let s = 0; s < p.stacks.length; s++) {
    if (p.strings[p.frames.qualname[p.stacks.frame[s]!]!] !== name) continue;
    for (let a = p.stacks.parent[s]!; a >= 0; a = p.stacks.parent[a]!) out.add(p.strings[p.frames.qualname[p.stacks.frame[a]!]!]!);
  }
  return out;
}

/** The seed's verification list: is this result good enough to act on? */
export function checklist(p: Profile, o: { minDurationS?: number; minSamples?: number; maxOverhead?: number } = {}): Check[] {
  const m = p.meta;
  const minDur = o.minDurationS ?? 5;
  const minSamples = o.minSamples ?? 500;
  const maxOverhead = o.maxOverhead ?? 0.05;
  const secs = (m.durationNs ?? 0) / 1e9;
  const samples = Number(m.extra?.samplerSamples ?? m.sampleCount);
  const overhead = m.overhead?.fraction;
  const truncated = Number(m.extra?.truncatedSamples ?? 0);
  const env = m.environment;
  return [
    { name: 'duration', ok: secs >= minDur, detail: `${secs.toFixed(1)} s recorded (≥ ${minDur} s${secs >= minDur ? '' : ': record longer, -d 30'})` },
    { name: 'samples', ok: samples >= minSamples, detail: `${samples.toLocaleString('en-US')} samples (≥ ${minSamples.toLocaleString('en-US')}${samples >= minSamples ? '' : ': a longer recording or a higher rate, -r 250'})` },
    { name: 'overhead', ok: overhead !== undefined && overhead <= maxOverhead, detail: overhead === undefined ? 'not measured' : `${pct(overhead)} of a CPU (≤ ${pct(maxOverhead)})` },
    { name: 'stacks whole', ok: truncated <= 0.02 * Math.max(1, samples), detail: `${truncated} of ${samples.toLocaleString('en-US')} stacks cut` },
    { name: 'environment', ok: Boolean(env.python?.version && env.kernel), detail: `${env.python?.implementation ?? 'Python'} ${env.python?.version ?? '?'}, ${env.os ?? 'Linux'} ${env.kernel ?? '?'}, ${env.cpuCores ?? "?"} CPUs` },
  ];
}
