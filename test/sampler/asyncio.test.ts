/**
 * `pylens dump --async`: the live asyncio tasks of a real process, read from outside
 * (src/capture/sampler/asyncio.ts), on every installed CPython 3.8–3.13, against what the
 * program itself sees (asyncio.all_tasks()).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessSampler } from '../../src/capture/sampler/session.ts';
import { decodePylens } from '../../src/formats/pylens.ts';
import { frameInfo, SampleStateCode, stackFrames } from '../../src/model/profile.ts';
import { firstLine, installedPythons } from './pythons.ts';

const SCRIPT = join(import.meta.dirname, 'scripts/async_tasks.py');
const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
const pythons = installedPythons().filter((p) => p.minor >= 8 && p.minor <= 13);

for (const py of pythons) {
  test(`${py.label}: every live task with its name, coroutine, state, what it waits on and its await chain; a parent awaits its child by name`, { timeout: 30_000 }, async () => {
    const child = spawn(py.exe, [SCRIPT], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const truth = JSON.parse(await firstLine(child, 'async_tasks.py')) as Record<string, string>;
      const s = ProcessSampler.attach(child.pid!);
      try {
        const a = s.asyncTasks();
        assert.equal(a.asyncio, true);
        assert.equal(a.unsupported, 0);
        const got = Object.fromEntries(a.tasks.map((t) => [t.name, t.coroutine]));
        assert.deepEqual(got, truth);
        for (const t of a.tasks) assert.equal(t.state, 'pending', t.name);
        const by = new Map(a.tasks.map((t) => [t.coroutine, t]));
        assert.equal(by.get('parent')!.waitsOn, '_asyncio.Task');
        assert.equal(by.get('parent')!.awaitsTask, by.get('child')!.name);
        for (const c of ['sleeper', 'locker', 'child', 'main']) assert.equal(by.get(c)!.waitsOn, '_asyncio.Future', c);
        // the await chains, innermost first, each script frame on the line that awaits
        const chains: Record<string, string[]> = { sleeper: ['sleep', 'sleeper'], child: ['sleep', 'child'], main: ['sleep', 'main'], locker: ['acquire', '__aenter__', 'locker'], parent: ['parent'] };
        const source = readFileSync(SCRIPT, 'utf8').split('\n');
        for (const [coro, names] of Object.entries(chains)) {
          const st = by.get(coro)!.stack;
          assert.deepEqual(st.map((f) => f.name), names, `${coro}: ${JSON.stringify(st)}`);
          const own = st.at(-1)!;
          assert.equal(own.file, SCRIPT);
          assert.match(source[own.line! - 1]!, /\bawait\b|async with/, `${coro} at line ${own.line}`);
          if (names[0] === 'sleep') assert.match(st[0]!.file, /asyncio\/tasks\.py$/);
        }
      } finally {
        s.close();
      }
      // the CLI: text and JSON
      const text = spawnSync(process.execPath, [MAIN, 'dump', '--async', '-p', String(child.pid)], { encoding: 'utf8' });
      assert.equal(text.status, 0, text.stderr);
      assert.match(text.stdout, /^asyncio tasks \(5\):$/m);
      assert.match(text.stdout, /^Task "sleeper-task" \(pending\) sleeper — waits on a Future\n    sleep \(tasks\.py:\d+\)\n    sleeper \(.*async_tasks\.py:10\)$/m);
      assert.match(text.stdout, /^Task "Task-\d+" \(pending\) parent — awaits task "Task-\d+"$/m);
      const json = JSON.parse(spawnSync(process.execPath, [MAIN, 'dump', '--async', '--json', '-p', String(child.pid)], { encoding: 'utf8' }).stdout);
      assert.equal(json.asyncio.tasks.length, 5);
    } finally {
      child.kill('SIGKILL');
    }
  });
}

test('a process without asyncio: dump --async says so', { timeout: 30_000 }, async () => {
  const py = pythons.at(-1)!;
  const child = spawn(py.exe, ['-c', "import time\nprint('ready', flush=True)\ntime.sleep(60)"], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await firstLine(child, 'sleeper');
    const r = spawnSync(process.execPath, [MAIN, 'dump', '--async', '-p', String(child.pid)], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^asyncio tasks: none \(asyncio is not imported\)$/m);
  } finally {
    child.kill('SIGKILL');
  }
});

test('record --async: a sample per waiting task each tick, its await chain under a "task NAME" root, idle', { timeout: 60_000 }, async () => {
  const py = pythons.find((p) => p.minor === 12) ?? pythons.at(-1)!;
  const child = spawn(py.exe, [SCRIPT], { stdio: ['ignore', 'pipe', 'inherit'] });
  const dir = mkdtempSync(join(tmpdir(), 'pylens-async-'));
  try {
    await firstLine(child, 'async_tasks.py');
    const out = join(dir, 'a.pylens');
    const r = spawnSync(process.execPath, [MAIN, 'record', '--async', '-p', String(child.pid), '-d', '1', '-o', out], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const p = decodePylens(readFileSync(out), out);
    const paths = new Map<string, number>();
    for (let i = 0; i < p.samples.length; i++) {
      const names = stackFrames(p, p.samples.stack[i]!).map((f) => frameInfo(p, f).name);
      if (!names[0]!.startsWith('task ')) continue;
      assert.equal(p.samples.state[i], SampleStateCode.idle);
      const k = names.join(' > ');
      paths.set(k, (paths.get(k) ?? 0) + p.samples.values[0]![i]!);
    }
    const ticks = Number(p.meta.extra?.ticks);
    // every waiting task in every tick: five tasks, named ones by name, the others by coroutine
    for (const k of ['task sleeper-task > sleeper > sleep', 'task locker-task > locker > __aenter__ > acquire', 'task parent > parent > awaits task child > child > sleep', 'task child > child > sleep', 'task main > main > sleep']) {
      assert.ok((paths.get(k) ?? 0) >= 0.9 * ticks, `${k}: ${paths.get(k)} of ${ticks} ticks; ${JSON.stringify([...paths])}`);
    }
    assert.equal(Number(p.meta.extra?.asyncTaskSamples), [...paths.values()].reduce((a, b) => a + b, 0));
    // report: where the tasks wait, as data and text
    const rep = JSON.parse(spawnSync(process.execPath, [MAIN, 'report', out, '--json'], { encoding: 'utf8' }).stdout);
    const w = rep.asyncio;
    assert.deepEqual(w.tasks.map((t: { task: string }) => t.task).sort(), ['child', 'locker-task', 'main', 'parent', 'sleeper-task']);
    for (const t of w.tasks) assert.ok(Math.abs(t.share - 0.2) < 0.03, JSON.stringify(w.tasks));
    // the parent awaits its child task: its site names the task; the child's chain is counted under the child alone
    const parent = w.coroutines.find((c: { name: string }) => c.name === 'parent');
    assert.equal(parent.sites[0].awaits, 'awaits task child');
    assert.ok(Math.abs(w.coroutines.find((c: { name: string }) => c.name === 'child').share - 0.2) < 0.03);
    const locker = w.coroutines.find((c: { name: string }) => c.name === 'locker');
    assert.match(locker.sites[0].awaits, /__aenter__$/);
    assert.match(readFileSync(SCRIPT, 'utf8').split('\n')[locker.sites[0].line - 1], /async with lock/);
    const sleep = w.innermost.find((l: { name: string }) => l.name === 'sleep');
    assert.ok(Math.abs(sleep.share - 0.6) < 0.05, 'sleeper, child and main sleep (the parent at its await of the child)');
    const text = spawnSync(process.execPath, [MAIN, 'report', out], { encoding: 'utf8' }).stdout;
    assert.match(text, /^asyncio — where tasks wait/m);
    assert.match(text, /^ +\d+\.\d+% +locker \(async_tasks\.py\)\n +\d+\.\d+% +line \d+ → \S*__aenter__$/m);
    // --task keeps one task's samples; --no-tasks the threads alone
    const one = JSON.parse(spawnSync(process.execPath, [MAIN, 'report', out, '--json', '--task', 'sleeper-task'], { encoding: 'utf8' }).stdout);
    assert.deepEqual(one.asyncio.tasks.map((t: { task: string }) => t.task), ['sleeper-task']);
    const none = spawnSync(process.execPath, [MAIN, 'report', out, '--json', '--no-tasks'], { encoding: 'utf8' });
    assert.equal(none.status, 0, none.stderr);
    const threads = JSON.parse(none.stdout);
    assert.equal(threads.asyncio, undefined);
    assert.ok(threads.rows.length > 0 && threads.rows.every((r: { label: string }) => !r.label.startsWith('task ')), 'thread samples only');
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tasks read in turn: with a stride of 4, each task is read once in every 4 reads, and the registry still counts them all', { timeout: 30_000 }, async () => {
  const py = pythons.find((p) => p.minor === 12) ?? pythons.at(-1)!;
  const child = spawn(py.exe, [SCRIPT], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await firstLine(child, 'async_tasks.py');
    const s = ProcessSampler.attach(child.pid!);
    try {
      const all = s.asyncTasks().tasks.map((t) => t.address).sort();
      assert.equal(all.length, 5);
      for (let round = 0; round < 3; round++) {
        const seen: number[] = [];
        for (let i = 0; i < 4; i++) {
          const a = s.asyncTasks({ stride: 4 });
          assert.equal(a.stride, 4);
          assert.equal(a.registered, 5);
          seen.push(...a.tasks.map((t) => t.address));
        }
        // the read after the unstrided one starts a turn: four reads cover every task once
        assert.deepEqual(seen.sort(), all, `round ${round}`);
      }
    } finally {
      s.close();
    }
  } finally {
    child.kill('SIGKILL');
  }
});

test('reads within a budget: past it, each task is read once every P ticks (weight P), in reads every E ticks of one turn each, and the weights still count every task', { timeout: 60_000 }, async () => {
  const py = pythons.find((p) => p.minor === 12) ?? pythons.at(-1)!;
  const child = spawn(py.exe, [join(import.meta.dirname, '../../bench/workloads/tasks.py'), '300'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await firstLine(child, 'tasks.py');
    const s = ProcessSampler.attach(child.pid!);
    try {
      // a budget no read meets: the period doubles every ten reads until a read would keep
      // fewer than MIN_TASKS_PER_READ tasks (300 tasks: a stride of 16, with E = 4, P = 64)
      const tick = () => s.budgetedAsyncTasks(1, { maxEvery: 4 });
      let last: ReturnType<typeof tick> = null;
      for (let i = 0; i < 600 && last?.stride !== 64; i++) last = tick() ?? last;
      assert.equal(last?.stride, 64, `period ${last?.stride}`);
      // a whole period: a read on every 4th tick exactly, 16 reads, every task once
      const read: number[] = [];
      const seen = new Map<number, number>();
      let weight = 0;
      let registered = 0;
      for (let i = 0; i < 64; i++) {
        const a = tick();
        if (a === null) continue;
        read.push(i);
        assert.equal(a.stride, 64);
        registered += a.registered;
        for (const t of a.tasks) {
          weight += a.stride;
          seen.set(t.address, (seen.get(t.address) ?? 0) + 1);
        }
      }
      assert.equal(read.length, 16, `reads at ticks ${read.join(' ')}`);
      for (let k = 1; k < read.length; k++) assert.equal(read[k]! - read[k - 1]!, 4);
      registered /= read.length;
      assert.ok(registered >= 300 && registered < 320, `${registered} registered`);
      // tasks.py's tasks live for ever: each read once (a set rebuilt meanwhile may move a few)
      assert.ok(seen.size >= 0.95 * 300, `${seen.size} of 300 tasks read`);
      assert.ok([...seen.values()].filter((n) => n > 1).length <= 15, 'a task read twice in a period');
      // the weights stand for every task at every tick
      assert.ok(Math.abs(weight / 64 - 300) < 30, `${(weight / 64).toFixed(0)} task samples a tick`);
    } finally {
      s.close();
    }
  } finally {
    child.kill('SIGKILL');
  }
});

test('record --async on 1,000 tasks: the cost stays bounded by reading tasks in turn, and the weights still add up to every waiting task each tick', { timeout: 60_000 }, async () => {
  const py = pythons.find((p) => p.minor === 12) ?? pythons.at(-1)!;
  const child = spawn(py.exe, [join(import.meta.dirname, '../../bench/workloads/tasks.py'), '1000'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const dir = mkdtempSync(join(tmpdir(), 'pylens-async-'));
  try {
    await firstLine(child, 'tasks.py');
    const out = join(dir, 'a.pylens');
    const r = spawnSync(process.execPath, [MAIN, 'record', '--async', '-p', String(child.pid), '-d', '3', '-o', out], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /[\d,]+ asyncio task samples/);
    const p = decodePylens(readFileSync(out), out);
    const x = p.meta.extra!;
    let weight = 0;
    let rows = 0;
    let chains = 0;
    for (let i = 0; i < p.samples.length; i++) {
      const names = stackFrames(p, p.samples.stack[i]!).map((f) => frameInfo(p, f).name);
      if (!names[0]!.startsWith('task ')) continue;
      const w = p.samples.values[0]![i]!;
      weight += w;
      rows++;
      if (names.join(' > ') === 'task worker > worker > middle > leaf > sleep') chains += w;
    }
    const ticks = Number(x.ticks);
    {
      // nearly all 1,000 tasks wait at any moment (each runs for microseconds between sleeps)
      const perTick = weight / ticks;
      assert.ok(perTick > 850 && perTick < 1100, `${perTick.toFixed(0)} task samples per tick (${weight} over ${ticks} ticks, stride ${x.asyncTaskStride})`);
    }
    assert.equal(Number(x.asyncTaskSamples), weight);
    assert.ok(chains >= 0.95 * weight, `the whole chain in ${chains} of ${weight}`);
    // one row per distinct stack and tick, not one per task
    assert.ok(rows < weight / 10, `${rows} rows for ${weight} task samples`);
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('top --async: the waiting tasks’ await chains are counted in the live table, and the header counts the tasks', { timeout: 30_000 }, async () => {
  const py = pythons.find((p) => p.minor === 11) ?? pythons.at(-1)!;
  const child = spawn(py.exe, [SCRIPT], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await firstLine(child, 'async_tasks.py');
    const r = spawnSync(process.execPath, [MAIN, 'top', '--async', '--once', '-p', String(child.pid)], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Threads 1 {2}Tasks 5 /);
    // sleeper, child and main wait in asyncio.sleep every tick: 300 % of one thread's time; locker in the lock
    const row = (fn: RegExp) => r.stdout.split('\n').find((l) => fn.test(l));
    const sleep = row(/ sleep \(asyncio\/tasks\.py:\d+\)$/);
    assert.ok(sleep, r.stdout);
    const own = Number(/^\s*([\d.]+)%/.exec(sleep)![1]);
    assert.ok(own > 250 && own < 320, sleep);
    assert.ok(row(/acquire \(asyncio\/locks\.py:\d+\)$/), r.stdout);
    assert.ok(row(/ locker \(.*async_tasks\.py:\d+\)$/), r.stdout);
  } finally {
    child.kill('SIGKILL');
  }
});

for (const py of pythons.filter((p) => p.label.startsWith('pyenv') && [8, 10, 11, 13].includes(p.minor))) {
  test(`${py.label}: record --async — a running task gets its thread's stack under its root, so a loop blocked in it shows as that task's CPU time`, { timeout: 60_000 }, async () => {
    const child = spawn(py.exe, [join(import.meta.dirname, 'scripts/async_blocked.py')], { stdio: ['ignore', 'pipe', 'inherit'] });
    const dir = mkdtempSync(join(tmpdir(), 'pylens-async-'));
    try {
      await firstLine(child, 'async_blocked.py');
      const out = join(dir, 'b.pylens');
      const r = spawnSync(process.execPath, [MAIN, 'record', '--async', '-p', String(child.pid), '-d', '2', '-o', out], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const p = decodePylens(readFileSync(out), out);
      const col = p.samples.values[0]!;
      let crunching = 0;
      let crunchingOnCpu = 0;
      let cruncherAll = 0;
      let napperRunning = 0;
      for (let i = 0; i < p.samples.length; i++) {
        const names = stackFrames(p, p.samples.stack[i]!).map((f) => frameInfo(p, f).name);
        if (names[0] === 'task cruncher') {
          cruncherAll += col[i]!;
          // running: cruncher → crunch, never under the event loop's frames, in its thread's
          // state (on a CPU, unless a loaded machine left the thread waiting for one)
          if (names[1] === 'cruncher' && names.includes('crunch')) {
            crunching += col[i]!;
            if (p.samples.state[i] !== SampleStateCode.idle) crunchingOnCpu += col[i]!;
            assert.ok(!names.includes('run_forever') && !names.includes('_run_once'), names.join(' > '));
          }
        }
        if (names[0] === 'task napper' && p.samples.state[i] !== SampleStateCode.idle) napperRunning += col[i]!;
      }
      // cruncher computes ~75 % of the time: most of its samples are its running stack
      assert.ok(crunching >= 0.55 * cruncherAll, `crunch in ${crunching} of ${cruncherAll} cruncher samples`);
      assert.ok(crunchingOnCpu > 0, 'some of them on a CPU');
      assert.ok(Number(p.meta.extra!.asyncRunningTaskSamples) >= crunching);
      assert.ok(napperRunning <= 0.05 * cruncherAll, `napper running ${napperRunning}`);
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('pure-Python tasks (no _asyncio module): read from their attributes on every version, chains down to Future.__await__', { timeout: 90_000 }, async () => {
  for (const py of pythons.filter((p) => p.label.startsWith('pyenv'))) {
    const child = spawn(py.exe, ['-c', `import sys; sys.modules['_asyncio'] = None; import runpy; runpy.run_path(${JSON.stringify(SCRIPT)}, run_name='__main__')`], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const truth = JSON.parse(await firstLine(child, 'async_tasks.py')) as Record<string, string>;
      const s = ProcessSampler.attach(child.pid!);
      try {
        const a = s.asyncTasks();
        assert.equal(a.unsupported, 0, py.label);
        assert.deepEqual(Object.fromEntries(a.tasks.map((t) => [t.name, t.coroutine])), truth, py.label);
        const by = new Map(a.tasks.map((t) => [t.coroutine, t]));
        assert.equal(by.get('parent')!.awaitsTask, by.get('child')!.name, py.label);
        for (const [coro, inner] of [['sleeper', 'sleep'], ['locker', 'acquire'], ['main', 'sleep']] as const) {
          const names = by.get(coro)!.stack.map((f) => f.name);
          assert.equal(names[0], '__await__', `${py.label} ${coro}: ${names}`);
          assert.equal(names[1], inner, `${py.label} ${coro}: ${names}`);
          assert.equal(names.at(-1), coro);
        }
      } finally {
        s.close();
      }
    } finally {
      child.kill('SIGKILL');
    }
  }
});

for (const py of pythons.filter((p) => p.label.startsWith('pyenv') && [8, 11, 13].includes(p.minor))) {
  test(`${py.label}: gather and TaskGroup children, timeouts, cancellation and a loop in another thread — dump names them, record places and marks them`, { timeout: 60_000 }, async () => {
    const script = join(import.meta.dirname, 'scripts/async_shapes.py');
    const child = spawn(py.exe, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const dir = mkdtempSync(join(tmpdir(), 'pylens-async-'));
    try {
      await firstLine(child, 'async_shapes.py');
      const text = spawnSync(process.execPath, [MAIN, 'dump', '--async', '-p', String(child.pid)], { encoding: 'utf8' });
      assert.equal(text.status, 0, text.stderr);
      assert.match(text.stdout, /^Task "Task-\d+" \(pending\) gatherer — awaits its gather of 2: tasks "Task-\d+", "Task-\d+" \[thread "MainThread"\]$/m);
      assert.match(text.stdout, /^Task "Task-\d+" \(pending\) in_thread — waits on a Future \[thread "loop-thread"\]$/m);
      if (py.minor >= 11) assert.match(text.stdout, /^Task "Task-\d+" \(pending\) grouped — awaits its TaskGroup of 2: tasks "in-group-\d", "in-group-\d"/m);
      const out = join(dir, 's.pylens');
      const r = spawnSync(process.execPath, [MAIN, 'record', '--async', '-p', String(child.pid), '-d', '2', '-o', out], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const p = decodePylens(readFileSync(out), out);
      const seen = new Map<string, { threads: Set<string>; last: Set<string>; top: Set<string> }>();
      for (let i = 0; i < p.samples.length; i++) {
        const names = stackFrames(p, p.samples.stack[i]!).map((f) => frameInfo(p, f).name);
        if (!names[0]!.startsWith('task ')) continue;
        const t = p.samples.thread[i]!;
        const e = seen.get(names[0]!) ?? { threads: new Set(), last: new Set(), top: new Set() };
        seen.set(names[0]!, e);
        e.threads.add(p.strings[p.threads.name[t]!] ?? '?');
        e.last.add(names.at(-1)!);
        e.top.add(names[1] ?? '');
      }
      const show = JSON.stringify([...seen].map(([k, v]) => [k, [...v.threads], [...v.last]]));
      assert.deepEqual([...seen.get('task in_thread')!.threads], ['loop-thread'], show);
      assert.deepEqual([...seen.get('task gatherer')!.threads], ['MainThread'], show);
      assert.deepEqual([...seen.get('task gatherer')!.last], ['awaits its gather of 2'], show);
      if (py.minor >= 11) assert.deepEqual([...seen.get('task grouped')!.last], ['awaits its TaskGroup of 2'], show);
      // the task cancelled over and over and the one timing out: every chain starts at the task's own coroutine
      for (const k of ['timeouts', 'cancelled']) assert.deepEqual([...(seen.get(`task ${k}`)?.top ?? [])], [k], show);
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('3.14 without _asyncio\'s table, and 3.15: no tasks, and the answer says why instead of "asyncio is not imported" (3.14 with the table: debug-offsets.test.ts)', async () => {
  const { readAsyncTasks } = await import('../../src/capture/sampler/asyncio.ts');
  const r = readAsyncTasks(undefined as never, undefined as never, 0x1000, 14);
  assert.equal(r.tasks.length, 0);
  assert.match(r.unreadable ?? '', /3\.14 are read through _asyncio's _Py_AsyncioModuleDebugOffsets \(section \.AsyncioDebug\), which were not found/);
  assert.match(readAsyncTasks(undefined as never, undefined as never, 0x1000, 15).unreadable ?? '', /3\.8–3\.14; this is 3\.15/);
});
