/**
 * Stack shapes on live CPython 3.8–3.13 (every installed interpreter): qualnames, unicode
 * and very long names, generators / `yield from` / asyncio chains, recursion past 1,000
 * frames, idle vs busy threads, the GIL holder, late attach, a target exiting mid-record,
 * and the permission error an unprivileged user gets.
 *
 * The targets are test/sampler/scripts/*.py. Each one parks its threads in known stacks
 * and prints one `ready {json}` line; most print what Python itself sees for the parked
 * threads (`sys._current_frames()` → name, co_qualname, file, f_lineno, co_firstlineno),
 * and the walker must return exactly that. The test also checks the shape of the frames of
 * the script file (root → leaf) against hard-coded names, with line numbers from `# @key`
 * markers in the script (the script reports them as `markers`).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { accessSync, chmodSync, constants, copyFileSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { exclusive } from '../helpers/exclusive.ts';
import { dumpProcess, type DumpResult, type DumpThread } from '../../src/capture/sampler/dump.ts';
import { layoutFor } from '../../src/capture/sampler/layouts/index.ts';
import { ProcMemory } from '../../src/capture/sampler/memory.ts';
import { locateRuntime } from '../../src/capture/sampler/runtime.ts';
import { sampleProcess } from '../../src/capture/sampler/sampler.ts';
import { walkThreads, type Frame } from '../../src/capture/sampler/walker.ts';
import { frameInfo, sampleState, stackFrames, type Profile } from '../../src/model/profile.ts';
import { validateProfile } from '../../src/model/query.ts';
import { firstLine, installedPythons, startSleepingPython, stop } from './pythons.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const SCRIPTS = join(HERE, 'scripts');
const REPO = join(HERE, '..', '..');
const script = (name: string) => join(SCRIPTS, name);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface ThreadIds {
  ident: number;
  native: number;
}
interface OracleThread extends ThreadIds {
  /** what Python sees, leaf first, in the walker's `Frame` shape */
  frames: Frame[];
}
interface OracleDoc {
  threads: Record<string, OracleThread>;
  main: ThreadIds;
  markers: Record<string, number>;
}

/** Spawn `exe script args`, wait for its `ready {json}` line, return the child and the parsed JSON. */
async function startReady<T>(exe: string, path: string, args: string[], children: Set<ChildProcess>): Promise<{ child: ChildProcess; pid: number; doc: T }> {
  const child = spawn(exe, [path, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  let line: string;
  try {
    line = await firstLine(child, `${exe} ${path}`, 15_000);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  assert.match(line, /^ready( |$)/, `first line of ${path}`);
  const json = line.slice('ready'.length).trim();
  return { child, pid: child.pid!, doc: (json ? JSON.parse(json) : {}) as T };
}

function kill(child: ChildProcess | undefined): void {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

function threadOf(d: DumpResult, ids: ThreadIds, what: string): DumpThread {
  const th = d.threads.find((t) => t.pthreadId === String(ids.ident));
  assert.ok(th, `thread ${what} (ident ${ids.ident}) in the dump: ${d.threads.map((t) => t.pthreadId).join(', ')}`);
  assert.equal(th.error, undefined, `${what}: ${th.error}`);
  return th;
}

const brief = (f: Frame) => `${f.qualname}@${f.line}`;
const render = (frames: Frame[]) => frames.map((f) => `${brief(f)}${f.name !== f.qualname ? ` [${f.name}]` : ''} (${f.file.split('/').at(-1)})`).join(' < ');

/** The frames of `file`, root first, as {name, qualname, line}. */
function shapeOf(frames: Frame[], file: string): { name: string; qualname: string; line: number | null }[] {
  return frames
    .filter((f) => f.file === file)
    .reverse()
    .map((f) => ({ name: f.name, qualname: f.qualname, line: f.line }));
}

/**
 * Expected shape from [qualname (3.11+), plain name, marker key]: qualnames on 3.11+, the
 * plain name as qualname before (no co_qualname).
 */
function expectShape(minor: number, markers: Record<string, number>, rows: [string, string, string][]) {
  return rows.map(([qualname, name, key]) => {
    assert.ok(markers[key] !== undefined, `marker ${key}`);
    return { name, qualname: minor >= 11 ? qualname : name, line: markers[key]! };
  });
}

/** The walker's frames must be exactly what Python saw (all fields, every frame). */
function assertMatchesPython(th: DumpThread, oracle: OracleThread, what: string): void {
  assert.deepEqual(th.frames, oracle.frames, `${what}\n walker: ${render(th.frames)}\n python: ${render(oracle.frames)}`);
}

/**
 * Dumps until `parked` holds (or `timeoutMs` passes; the last dump is returned either way, and
 * the caller's assertions say what is wrong). The main thread prints `ready` just BEFORE it
 * parks, so a dump right after the line can catch it in `print` or between lines.
 */
async function dumpWhen(pid: number, parked: (d: DumpResult) => boolean, timeoutMs = 3000): Promise<DumpResult> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const d = dumpProcess(pid);
    if (parked(d) || performance.now() > end) return d;
    await sleep(10);
  }
}

/** the thread `ids` has leaf `name` at `line` */
function leafAt(d: DumpResult, ids: ThreadIds | number, name: string, line: number | undefined): boolean {
  const th = typeof ids === 'number' ? d.threads[ids] : d.threads.find((t) => t.pthreadId === String(ids.ident));
  const f = th?.frames[0];
  return f !== undefined && f.name === name && f.line === line;
}

function leafOf(p: Profile, i: number): string | undefined {
  const s = p.samples.stack[i]!;
  return s < 0 ? undefined : frameInfo(p, p.stacks.frame[s]!).qualname;
}

// ---- running the CLI as an unprivileged user ----------------------------------------------

const NOBODY = 65534;

function which(cmd: string): string | undefined {
  for (const d of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').concat(['/usr/sbin', '/usr/bin', '/sbin', '/bin'])) {
    try {
      accessSync(join(d, cmd), constants.X_OK);
      return join(d, cmd);
    } catch {
      // next
    }
  }
  return undefined;
}

interface AsNobody {
  /** argv prefix that runs a command as uid/gid 65534 with no supplementary groups */
  prefix: string[];
  /** the directory holding src/ and package.json that uid 65534 can read */
  root: string;
  node: string;
  note: string;
}

let asNobodyMemo: AsNobody | string | undefined;
let copiedRoot: string | undefined;

/** How to run `node src/cli/main.ts` as nobody, or why it cannot be done (a skip reason). */
function asNobody(): AsNobody | string {
  if (asNobodyMemo !== undefined) return asNobodyMemo;
  const compute = (): AsNobody | string => {
    if (process.getuid?.() !== 0) return `switching to uid ${NOBODY} needs root; the test runs as uid ${process.getuid?.()}`;
    const setpriv = which('setpriv');
    const runuser = which('runuser');
    let prefix: string[];
    if (setpriv) prefix = [setpriv, `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'];
    else if (runuser) prefix = [runuser, '-u', 'nobody', '--'];
    else return 'neither setpriv nor runuser is installed';
    const node = join(REPO, 'node_modules', '.bin', 'node');
    const canRead = (root: string) =>
      spawnSync(prefix[0]!, [...prefix.slice(1), node, '-e', `require('fs').accessSync(${JSON.stringify(join(root, 'src', 'cli', 'main.ts'))}, 4)`], { timeout: 20_000 }).status === 0;
    if (canRead(REPO)) return { prefix, root: REPO, node, note: `${prefix[0]} as uid ${NOBODY} over ${REPO}` };
    // not readable by nobody: copy src/ and package.json to a world-readable tmp dir
    copiedRoot = mkdtempSync(join(tmpdir(), 'pylens-nobody-'));
    cpSync(join(REPO, 'src'), join(copiedRoot, 'src'), { recursive: true });
    copyFileSync(join(REPO, 'package.json'), join(copiedRoot, 'package.json'));
    const open = (p: string) => {
      chmodSync(p, statSync(p).isDirectory() ? 0o755 : 0o644);
      if (statSync(p).isDirectory()) for (const e of readdirSync(p)) open(join(p, e));
    };
    open(copiedRoot);
    if (!canRead(copiedRoot)) return `uid ${NOBODY} cannot run ${node} even over a world-readable copy in ${copiedRoot}`;
    return { prefix, root: copiedRoot, node, note: `${REPO} is not readable by uid ${NOBODY}: ran a copy of src/ in ${copiedRoot}` };
  };
  asNobodyMemo = compute();
  return asNobodyMemo;
}

after(() => {
  if (copiedRoot) rmSync(copiedRoot, { recursive: true, force: true });
});

// ---- per version ------------------------------------------------------------------------

const pythons = installedPythons().filter((p) => p.minor >= 8 && p.minor <= 13);

if (pythons.length === 0) it('stack shapes on live CPython', { skip: 'no CPython 3.8–3.13 installed' }, () => {});

for (const py of pythons) {
  describe(`stack shapes on live ${py.label}`, { timeout: 60_000 }, () => {
    const children = new Set<ChildProcess>();
    after(() => {
      for (const c of children) kill(c);
    });
    const minor = py.minor;

    it('qualnames, generators, genexpr, listcomp, yield from and an asyncio chain: exactly what Python sees', { timeout: 20_000 }, async () => {
      const path = script('shapes_threads.py');
      const { child, pid, doc } = await startReady<OracleDoc>(py.exe, path, [], children);
      try {
        const m = doc.markers;
        const d = await dumpWhen(pid, (x) => leafAt(x, doc.main, 'hold', m.hold));
        assert.equal(d.threads.length, 7, 'six workers and main');
        const shape = (name: string) => {
          const th = threadOf(d, doc.threads[name]!, name);
          assert.equal(th.tid, doc.threads[name]!.native, `${name}: OS TID`);
          assert.equal(th.tidIsOs, true);
          assertMatchesPython(th, doc.threads[name]!, name);
          // below the script's frames: threading's bootstrap only
          const rootward = th.frames.slice(th.frames.findLastIndex((f) => f.file === path) + 1);
          assert.deepEqual(rootward.map((f) => f.name), ['run', '_bootstrap_inner', '_bootstrap'], `${name}: ${render(th.frames)}`);
          return { th, shape: shapeOf(th.frames, path) };
        };

        // 1. qualnames on 3.11+, plain names before
        assert.deepEqual(
          shape('qual').shape,
          expectShape(minor, m, [
            ['t_qual', 't_qual', 't_qual'],
            ['Outer.Inner.method', 'method', 'method'],
            ['func', 'func', 'func'],
            ['func.<locals>.inner', 'inner', 'inner'],
            ['func.<locals>.inner.<locals>.<lambda>', '<lambda>', 'inner'],
            ['func.<locals>.Local.meth', 'meth', 'local_meth'],
            ['hold', 'hold', 'hold'],
          ]),
        );
        // 3. a resumed generator under its consumer
        assert.deepEqual(
          shape('gen').shape,
          expectShape(minor, m, [
            ['t_gen', 't_gen', 't_gen'],
            ['consumer', 'consumer', 'consumer'],
            ['gen_body', 'gen_body', 'gen_body'],
            ['hold', 'hold', 'hold'],
          ]),
        );
        // a generator expression resumed by list() (C) on its second item
        assert.deepEqual(
          shape('genexpr').shape,
          expectShape(minor, m, [
            ['t_genexpr', 't_genexpr', 't_genexpr'],
            ['t_genexpr.<locals>.<genexpr>', '<genexpr>', 't_genexpr'],
            ['pause_at', 'pause_at', 'pause_at'],
            ['hold', 'hold', 'hold'],
          ]),
        );
        // list comprehensions are inlined from 3.12 (PEP 709): no <listcomp> frame
        assert.deepEqual(
          shape('listcomp').shape,
          expectShape(minor, m, [
            ['t_listcomp', 't_listcomp', 't_listcomp'],
            ...(minor <= 11 ? [['t_listcomp.<locals>.<listcomp>', '<listcomp>', 't_listcomp'] as [string, string, string]] : []),
            ['hold', 'hold', 'hold'],
          ]),
        );
        // a `yield from` chain, suspended at the innermost yield and resumed through it
        assert.deepEqual(
          shape('yield_from').shape,
          expectShape(minor, m, [
            ['t_yield_from', 't_yield_from', 't_yield_from'],
            ['drive', 'drive', 'drive'],
            ['outer_gen', 'outer_gen', 'outer_gen'],
            ['middle_gen', 'middle_gen', 'middle_gen'],
            ['inner_gen', 'inner_gen', 'inner_gen'],
            ['hold', 'hold', 'hold'],
          ]),
        );
        // asyncio: a → b → c (c busy) on the event loop, after one suspension
        const as = shape('async');
        assert.deepEqual(
          as.shape,
          expectShape(minor, m, [
            ['t_async', 't_async', 't_async'],
            ['a', 'a', 'a'],
            ['b', 'b', 'b'],
            ['c', 'c', 'c'],
          ]),
        );
        const ia = as.th.frames.findIndex((f) => f.name === 'a');
        const iTop = as.th.frames.findIndex((f) => f.name === 't_async');
        const loop = as.th.frames.slice(ia + 1, iTop);
        assert.ok(loop.length > 0 && loop.every((f) => /\/asyncio\/[a-z_]+\.py$/.test(f.file)), `only asyncio between a and t_async: ${render(loop)}`);
        assert.ok(loop.some((f) => f.name === 'run_until_complete'), render(loop));

        // main: hold ← <module>
        const main = threadOf(d, doc.main, 'main');
        assert.equal(main.tid, pid);
        assert.deepEqual(shapeOf(main.frames, path), expectShape(minor, m, [['<module>', '<module>', 'main'], ['hold', 'hold', 'hold']]));
        assert.equal(main.frames.length, 2);
      } finally {
        kill(child);
      }
    });

    it('unicode file and directory names, unicode function names, names longer than 200 characters', { timeout: 20_000 }, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'pylens-ünïcode_дир_漢字-'));
      const path = join(dir, '計算_λ.py');
      copyFileSync(script('unicode_names.py'), path);
      let child: ChildProcess | undefined;
      try {
        const started = await startReady<OracleDoc>(py.exe, path, [], children);
        child = started.child;
        const { pid, doc } = started;
        const LONG_ASCII = 'long_' + 'abcdefghij'.repeat(24) + '_end';
        const LONG_UNI = '長い_' + 'λü𠀀'.repeat(70) + '_終';
        assert.equal(LONG_ASCII.length, 249);
        assert.equal([...LONG_UNI].length, 215);
        const d = dumpProcess(pid);
        const th = threadOf(d, doc.threads.uni!, 'uni');
        assertMatchesPython(th, doc.threads.uni!, 'uni');
        assert.deepEqual(
          shapeOf(th.frames, path),
          expectShape(minor, doc.markers, [
            ['t_uni', 't_uni', 't_uni'],
            ['Ωμέγα.метод', 'метод', 'method'],
            ['計算_λ', '計算_λ', 'calc'],
            [LONG_ASCII, LONG_ASCII, 'ascii_long'],
            [LONG_UNI, LONG_UNI, 'uni_long'],
            ['hold', 'hold', 'hold'],
          ]),
        );
        // the names survive the sampler into the profile
        const p = await sampleProcess(pid, { rateHz: 100, durationS: 0.2, idle: true });
        validateProfile(p);
        const tid = doc.threads.uni!.native;
        const ti = p.threads.tid.indexOf(tid);
        assert.ok(ti >= 0, `thread ${tid} in the profile`);
        const i = p.samples.thread.indexOf(ti);
        assert.ok(i >= 0);
        const names = stackFrames(p, p.samples.stack[i]!).map((f) => frameInfo(p, f)).filter((f) => f.file === path).map((f) => f.name);
        assert.deepEqual(names, ['t_uni', 'метод', '計算_λ', LONG_ASCII, LONG_UNI, 'hold']);
      } finally {
        kill(child);
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('recursion 3,000 deep: every frame (under the default cap of 4,096), no error, walk < 200 ms', { timeout: 20_000 }, async (t) => {
      const DEPTH = 3000;
      const path = script('deep_recursion.py');
      const { child, pid, doc } = await startReady<{ depth: number; markers: Record<string, number> }>(py.exe, path, [String(DEPTH)], children);
      let mem: ProcMemory | undefined;
      try {
        const m = doc.markers;
        assert.equal(doc.depth, DEPTH + 2, 'Python sees recurse × 3,001 + <module>');
        await dumpWhen(pid, (x) => leafAt(x, 0, 'recurse', m.spin)); // `ready` is printed just before the spin loop
        const rt = locateRuntime(pid);
        const layout = layoutFor(rt.version.major, rt.version.minor)!;
        mem = ProcMemory.open(pid);
        // cold: fresh code cache, fresh page cache (the default)
        const t0 = performance.now();
        const threads = walkThreads(mem, rt, layout, rt.version);
        const ms = performance.now() - t0;
        t.diagnostic(`${py.label}: cold walk of ${threads[0]?.frames?.length} frames in ${ms.toFixed(1)} ms`);
        assert.equal(threads.length, 1);
        const th = threads[0]!;
        assert.equal(th.error, undefined, th.error);
        assert.equal(th.truncated, undefined, 'not truncated: 3,002 frames is under the default maxDepth 4,096');
        const frames = th.frames!;
        assert.equal(frames.length, doc.depth);
        assert.deepEqual(
          { name: frames[0]!.name, line: frames[0]!.line, file: frames[0]!.file },
          { name: 'recurse', line: m.spin, file: path },
        );
        for (let i = 1; i <= DEPTH; i++) {
          const f = frames[i]!;
          if (f.name !== 'recurse' || f.line !== m.recurse || f.file !== path) assert.fail(`frame ${i}: ${brief(f)} in ${f.file}`);
        }
        assert.deepEqual({ name: frames.at(-1)!.name, line: frames.at(-1)!.line }, { name: '<module>', line: m.module });
        assert.ok(ms < 200, `walk took ${ms.toFixed(1)} ms`);

        // an explicit cap is marked, without an error
        const capped = walkThreads(mem, rt, layout, rt.version, { maxDepth: 1000 })[0]!;
        assert.equal(capped.error, undefined);
        assert.equal(capped.truncated, true);
        assert.equal(capped.frames!.length, 1000);
        assert.deepEqual(capped.frames, frames.slice(0, 1000), 'the cap keeps the leaf end');

        // dumpProcess and the sampler see the whole stack too
        const d = dumpProcess(pid);
        assert.equal(d.threads[0]!.frames.length, DEPTH + 2);
        assert.equal(d.threads[0]!.truncated, undefined);
        // wall-clock mode: the samples do not depend on the CPU a loaded machine gives the target
        const p = await sampleProcess(pid, { rateHz: 100, durationS: 0.3, idle: true });
        validateProfile(p);
        assert.ok(p.samples.length >= 5, `${p.samples.length} samples`);
        assert.equal(p.meta.errorCount, 0);
        for (let i = 0; i < p.samples.length; i++) assert.equal(stackFrames(p, p.samples.stack[i]!).length, DEPTH + 2);
      } finally {
        mem?.close();
        kill(child);
      }
    });

    it('recursion 4,500 deep: the default cap keeps the 4,096 leaf-most frames and sets truncated, no error', { timeout: 20_000 }, async () => {
      const DEPTH = 4500;
      const DEFAULT_MAX_DEPTH = 4096; // walker.ts walkStack: opts.maxDepth ?? 4096
      const path = script('deep_recursion.py');
      const { child, pid, doc } = await startReady<{ depth: number; markers: Record<string, number> }>(py.exe, path, [String(DEPTH)], children);
      try {
        assert.equal(doc.depth, DEPTH + 2);
        const d = await dumpWhen(pid, (x) => leafAt(x, 0, 'recurse', doc.markers.spin));
        const th = d.threads[0]!;
        assert.equal(th.error, undefined, th.error);
        assert.equal(th.truncated, true);
        assert.equal(th.frames.length, DEFAULT_MAX_DEPTH);
        assert.deepEqual(th.frames[0]!.line, doc.markers.spin);
        assert.ok(th.frames.every((f) => f.name === 'recurse' && f.file === path), 'the leaf end is kept: all recurse frames');
      } finally {
        kill(child);
      }
    });

    interface IdleBusyDoc {
      sleeper: ThreadIds;
      locker: ThreadIds;
      spinner: ThreadIds;
      main: ThreadIds;
      markers: Record<string, number>;
    }

    it('idle vs busy: dumpProcess says sleep → idle, Lock.acquire → idle, busy loop → running', { timeout: 20_000 }, async (t) => {
      const path = script('idle_busy.py');
      const { child, pid, doc } = await startReady<IdleBusyDoc>(py.exe, path, [], children);
      try {
        await dumpWhen(pid, (x) => leafAt(x, doc.main, 'main', doc.markers.main));
        const m = doc.markers;
        let matched = false;
        const seen: string[] = [];
        for (let i = 0; i < 10 && !matched; i++) {
          if (i) await sleep(20);
          const d = dumpProcess(pid);
          assert.equal(d.threads.length, 4);
          const st: Record<string, string> = {};
          for (const name of ['sleeper', 'locker', 'spinner', 'main'] as const) {
            const th = threadOf(d, doc[name], name);
            assert.equal(th.tid, doc[name].native, `${name}: OS TID`);
            assert.equal(th.tidIsOs, true);
            assert.deepEqual({ qualname: th.frames[0]!.qualname, line: th.frames[0]!.line }, { qualname: name, line: m[name] }, `${name} leaf`);
            st[name] = th.state;
          }
          seen.push(`${st.sleeper}/${st.locker}/${st.spinner}/${st.main}`);
          matched = st.sleeper === 'idle' && st.locker === 'idle' && st.spinner === 'running' && st.main === 'idle';
        }
        t.diagnostic(`${py.label}: sleeper/locker/spinner/main states per dump: ${seen.join(', ')}`);
        assert.ok(matched, `never idle/idle/running/idle: ${seen.join(', ')}`);
      } finally {
        kill(child);
      }
    });

    // under the 'timing' lock: other files' busy loops next to it moved the spinner's sampled
    // CPU share 23 points below its schedstat share in two suite runs on 3.13 (alone, or under
    // two busy loops of its own, it agrees within the bound); see issue 12
    it('idle vs busy: sampleProcess idle:false keeps only the busy thread, idle:true marks the others idle', { timeout: 120_000 }, (t) => exclusive('timing', async () => {
      const path = script('idle_busy.py');
      const { child, pid, doc } = await startReady<IdleBusyDoc>(py.exe, path, [], children);
      try {
        await dumpWhen(pid, (x) => leafAt(x, doc.main, 'main', doc.markers.main));
        // the spinner's own CPU over a window: on a loaded machine it waits for a CPU now and
        // then, and those samples are rightly not on a CPU (the CPU rule)
        const spinStat = () => Number(readFileSync(`/proc/${pid}/task/${doc.spinner.native}/schedstat`, 'latin1').split(' ')[0]);
        /** at least the spinner's share of the ticks, within sampling noise (3σ, at least 15 points) */
        const enough = (got: number, ticks: number, truth: number): boolean => {
          const share = Math.min(truth, 1);
          const tol = Math.max(0.15, 3 * Math.sqrt((share * (1 - share)) / Math.max(ticks, 1)));
          return got >= 3 && got / Math.max(ticks, 1) >= share - tol;
        };
        const cpuC0 = spinStat();
        const cpuW0 = performance.now();
        const cpu = await sampleProcess(pid, { rateHz: 100, durationS: 0.4 });
        const cpuTruth = (spinStat() - cpuC0) / ((performance.now() - cpuW0) * 1e6);
        validateProfile(cpu);
        const cpuTicks = Number(cpu.meta.extra?.ticks) || 40;
        assert.ok(enough(cpu.samples.length, cpuTicks, cpuTruth), `${cpu.samples.length} cpu samples of ${cpuTicks} ticks, the spinner on a CPU ${(100 * cpuTruth).toFixed(0)} % of the time`);
        assert.deepEqual(cpu.threads.tid, [doc.spinner.native], 'only the spinner has samples');
        for (let i = 0; i < cpu.samples.length; i++) {
          assert.equal(sampleState(cpu, i), 'on-cpu');
          assert.equal(leafOf(cpu, i), 'spinner');
        }

        // the same for the idle:true run
        const c0 = spinStat();
        const w0 = performance.now();
        const wall = await sampleProcess(pid, { rateHz: 100, durationS: 0.4, idle: true });
        const spinTruth = (spinStat() - c0) / ((performance.now() - w0) * 1e6);
        validateProfile(wall);
        const per = new Map<number, { idle: number; cpu: number; other: number; leaf: Set<string | undefined> }>();
        for (let i = 0; i < wall.samples.length; i++) {
          const tid = wall.threads.tid[wall.samples.thread[i]!]!;
          let c = per.get(tid);
          if (!c) per.set(tid, (c = { idle: 0, cpu: 0, other: 0, leaf: new Set() }));
          const s = sampleState(wall, i);
          if (s === 'idle') c.idle++;
          else if (s === 'on-cpu') c.cpu++;
          else c.other++;
          c.leaf.add(leafOf(wall, i));
        }
        t.diagnostic(`${py.label}: wall per thread ${JSON.stringify([...per].map(([tid, c]) => ({ tid, idle: c.idle, cpu: c.cpu, other: c.other })))}`);
        assert.deepEqual([...per.keys()].sort((a, b) => a - b), [doc.sleeper.native, doc.locker.native, doc.spinner.native, doc.main.native].sort((a, b) => a - b));
        for (const name of ['sleeper', 'locker', 'main'] as const) {
          const c = per.get(doc[name].native)!;
          assert.ok(c.idle >= 10, `${name}: ${c.idle} idle samples`);
          assert.equal(c.cpu + c.other, 0, `${name}: every sample idle`);
          assert.deepEqual([...c.leaf], [name]);
        }
        const sp = per.get(doc.spinner.native)!;
        const spN = sp.cpu + sp.idle + sp.other;
        // within sampling noise (3σ, at least 15 points: 40 samples) of the share of the time it
        // was on a CPU, as in CPU mode (a starved run once gave 15 ticks in 0.4 s, the spinner
        // on a CPU 23 % of the time and in 4 of them)
        assert.ok(enough(sp.cpu, spN, spinTruth), `spinner: ${sp.cpu} on-cpu of ${spN}, on a CPU ${(100 * spinTruth).toFixed(0)} % of the time`);
        assert.deepEqual([...sp.leaf], ['spinner']);
      } finally {
        kill(child);
      }
    }));

    it('GIL: the one busy thread holds it in > 80 % of 50 dumps; sleeping threads never do', { timeout: 20_000 }, async (t) => {
      const path = script('idle_busy.py');
      const { child, pid, doc } = await startReady<IdleBusyDoc>(py.exe, path, [], children);
      try {
        await dumpWhen(pid, (x) => leafAt(x, doc.main, 'main', doc.markers.main));
        let spinnerHolds = 0;
        let nobody = 0;
        const N = 50;
        for (let i = 0; i < N; i++) {
          const d = dumpProcess(pid);
          for (const th of d.threads) assert.notEqual(th.holdsGil, null, 'GIL state readable');
          for (const name of ['sleeper', 'locker', 'main'] as const) assert.equal(threadOf(d, doc[name], name).holdsGil, false, `${name} never holds the GIL (dump ${i})`);
          if (threadOf(d, doc.spinner, 'spinner').holdsGil) spinnerHolds++;
          else nobody++;
          await sleep(0);
        }
        t.diagnostic(`${py.label}: spinner held the GIL in ${spinnerHolds} of ${N} dumps (nobody in ${nobody})`);
        assert.ok(spinnerHolds > 0.8 * N, `spinner held the GIL in ${spinnerHolds} of ${N}`);
      } finally {
        kill(child);
      }
    });

    // the count of samples needs CPU for the target: under the 'timing' lock, as in a full run
    // beside the busiest files the running main thread once got 8 on-CPU ticks in 1 s
    it('attach to a process that has been running for a while (churned threads, 1 s later)', { timeout: 120_000 }, () => exclusive('timing', async () => {
      const path = script('long_running.py');
      const { child, pid, doc } = await startReady<{ background: ThreadIds; main: ThreadIds; markers: Record<string, number> }>(py.exe, path, [], children);
      try {
        await sleep(1000);
        const m = doc.markers;
        const d = dumpProcess(pid);
        assert.equal(d.threads.length, 2, 'the 20 joined threads are gone');
        const main = threadOf(d, doc.main, 'main');
        assert.equal(main.tid, pid);
        assert.equal(main.state, 'running');
        assert.deepEqual(main.frames.map(brief), [`handle@${m.handle}`, `serve@${m.serve}`, `<module>@${m.main}`]);
        const bg = threadOf(d, doc.background, 'background');
        assert.equal(bg.tid, doc.background.native);
        assert.deepEqual(shapeOf(bg.frames, path).map((f) => `${f.name}@${f.line}`), [`background@${m.background}`, `hold@${m.hold}`]);

        // 1 s: a loaded machine gave the running main thread no CPU at 30 ticks in 0.3 s once
        const p = await sampleProcess(pid, { rateHz: 100, durationS: 1 });
        validateProfile(p);
        assert.ok(p.samples.length >= 10, `${p.samples.length} samples`);
        assert.equal(p.meta.errorCount, 0);
        assert.deepEqual(p.threads.tid, [pid]);
        for (let i = 0; i < p.samples.length; i++) {
          assert.deepEqual(stackFrames(p, p.samples.stack[i]!).map((f) => frameInfo(p, f).name), ['<module>', 'serve', 'handle']);
        }
      } finally {
        kill(child);
      }
    }));

    // under the 'timing' lock: in a full run beside the busiest files it got 20 ticks in 1 s
    it('a target that exits mid-record: sampleProcess without a duration returns its samples', { timeout: 120_000 }, (t) => exclusive('timing', async () => {
      const path = script('exit_after.py');
      const { child, pid } = await startReady<Record<string, never>>(py.exe, path, ['1'], children);
      const exited = new Promise<number | null>((r) => (child.exitCode !== null ? r(child.exitCode) : child.once('exit', (c) => r(c))));
      const guard = new AbortController();
      const timer = setTimeout(() => guard.abort(), 10_000);
      try {
        const t0 = performance.now();
        // wall-clock mode: a sample a tick, however loaded the machine
        const p = await sampleProcess(pid, { rateHz: 100, signal: guard.signal, idle: true });
        const took = (performance.now() - t0) / 1000;
        t.diagnostic(`${py.label}: sampling ended after ${took.toFixed(2)} s with ${p.samples.length} samples, ${p.meta.errorCount} errors, ${p.meta.extra?.ticks} ticks`);
        assert.equal(guard.signal.aborted, false, 'sampling ended because the target exited, not by the 10 s guard');
        validateProfile(p);
        assert.equal(await exited, 0, 'the target exited normally');
        assert.ok(took > 0.5 && took < 5, `took ${took} s`);
        // ≥ 50 ticks expected in ~1 s; a full run starved the sampler to 12 and 20 (its samples kept is what counts)
        assert.ok(p.samples.length >= 10, `${p.samples.length} samples`);
        const leaves = new Set<string | undefined>();
        for (let i = 0; i < p.samples.length; i++) leaves.add(leafOf(p, i));
        assert.ok(leaves.has('spin'), [...leaves].join(', '));
      } finally {
        clearTimeout(timer);
        kill(child);
      }
    }));

    it('permission denied: `pylens dump` as an unprivileged user names the PID and the ptrace fix', { timeout: 30_000 }, async (t) => {
      const how = asNobody();
      if (typeof how === 'string') {
        t.skip(how);
        return;
      }
      t.diagnostic(how.note);
      const target = await startSleepingPython(py.exe);
      try {
        assert.equal(statSync(`/proc/${target.pid}`).uid, process.getuid!(), 'the target runs as us (root), not as nobody');
        const r = spawnSync(how.prefix[0]!, [...how.prefix.slice(1), how.node, join(how.root, 'src', 'cli', 'main.ts'), 'dump', '-p', String(target.pid)], {
          encoding: 'utf8',
          timeout: 25_000,
          cwd: '/',
        });
        assert.equal(r.error, undefined);
        t.diagnostic(`exit ${r.status}; stderr: ${r.stderr.trim().split('\n')[0]}`);
        assert.notEqual(r.status, 0, 'non-zero exit');
        assert.equal(r.status, 1);
        assert.equal(r.stdout, '');
        assert.ok(r.stderr.includes(`process ${target.pid}`) || r.stderr.includes(`PID ${target.pid}`), `stderr names the PID ${target.pid}: ${r.stderr}`);
        assert.match(r.stderr, /permission denied/i);
        assert.match(r.stderr, /ptrace_scope/);
        assert.match(r.stderr, /CAP_SYS_PTRACE/);
        // record and top attach the same way and explain the same way
        for (const cmd of [['record', '-d', '1', '-o', '/tmp/never-written.pylens'], ['top', '--once']]) {
          const rr: SpawnSyncReturns<string> = spawnSync(how.prefix[0]!, [...how.prefix.slice(1), how.node, join(how.root, 'src', 'cli', 'main.ts'), cmd[0]!, '-p', String(target.pid), ...cmd.slice(1)], {
            encoding: 'utf8',
            timeout: 25_000,
            cwd: '/',
          });
          assert.equal(rr.status, 1, `${cmd[0]}: ${rr.stderr}`);
          assert.ok(rr.stderr.includes(`process ${target.pid}`) || rr.stderr.includes(`PID ${target.pid}`), `${cmd[0]} names the PID: ${rr.stderr}`);
          assert.match(rr.stderr, /permission denied/i);
          assert.match(rr.stderr, /CAP_SYS_PTRACE/);
          assert.match(rr.stderr, /--cap-add SYS_PTRACE/);
        }
      } finally {
        stop(target);
      }
    });
  });
}
