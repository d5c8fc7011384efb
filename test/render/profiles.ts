/**
 * Synthetic profiles for the renderer tests and bench/html.ts.
 *   smallProfile — 14 samples with known numbers (three threads in two processes, all frame kinds, states)
 *   demoProfile  — a plausible web service, for screenshots
 *   bigProfile   — N samples over S distinct stacks, seeded, for size and speed checks
 *   twoThreadProfile — two threads active at different times, for the time range
 */
import { ProfileBuilder } from '../../src/model/builder.ts';
import type { FrameSpec, Profile, SampleState } from '../../src/model/profile.ts';
import { seededRandom } from '../../src/analysis/random.ts';

export const SMALL_ENV = {
  cpuModel: 'Test CPU @ 3.00GHz',
  cpuCores: 8,
  kernel: 'Linux 6.1.0-test',
  os: 'Debian GNU/Linux 12 (bookworm)',
  python: { version: '3.12.1', implementation: 'CPython', buildFlags: '--enable-shared' },
  pylensVersion: '0.1.0',
};

/**
 * Samples (value 1 each, 1 ms apart per thread):
 *   MainThread 100/100: main;compute;dot ×4 (on-cpu), main;compute ×2 (on-cpu),
 *                       main;load;sys_read_[k] ×2 (off-cpu)
 *   worker 100/101:     worker_loop;<idle> ×3 (idle), worker_loop;parse ×1 (on-cpu)
 *   child 200/200:      child_main ×2 (on-cpu)
 * Total 14; compute 6 (42.86%), dot 4, main 8, worker_loop 4, child_main 2.
 */
export function smallProfile(): Profile {
  const b = new ProfileBuilder({
    meta: {
      name: 'small test',
      lens: 'sampling',
      backend: 'pylens-sampler',
      mode: 'wall',
      rateHz: 1000,
      durationNs: 14_000_000,
      command: ['python', 'app.py', '--fast'],
      pid: 100,
      startTime: '2026-01-02T03:04:05.000Z',
      errorCount: 1,
      overhead: { fraction: 0.012, method: 'sampler CPU time / wall time' },
      environment: SMALL_ENV,
    },
  });
  const main = b.frame({ name: 'main', file: '/srv/app.py', line: 1 });
  const compute = b.frame({ name: 'compute', file: '/srv/app.py', line: 10 });
  const dot = b.frame({ name: 'dot', kind: 'native', lib: 'libopenblas.so' });
  const load = b.frame({ name: 'load', file: '/srv/io.py', line: 5 });
  const read = b.frame({ name: 'sys_read', kind: 'kernel' });
  const wl = b.frame({ name: 'worker_loop', file: '/srv/worker.py', line: 3 });
  const idle = b.frame({ name: '<idle>', kind: 'marker' });
  const parse = b.frame({ name: 'parse', file: '/srv/worker.py', line: 20 });
  const child = b.frame({ name: 'child_main', file: '/srv/child.py', line: 7 });
  const t1 = b.thread(100, 100, 'MainThread');
  const t2 = b.thread(100, 101, 'worker');
  const t3 = b.thread(200, 200, 'child');
  let time = 0;
  const add = (frames: number[], n: number, t: number, st: SampleState) => {
    for (let i = 0; i < n; i++) b.sample(b.stackOf(frames), 1, t, st, (time += 1_000_000));
  };
  add([main, compute, dot], 4, t1, 'on-cpu');
  add([wl, idle], 3, t2, 'idle');
  add([main, compute], 2, t1, 'on-cpu');
  add([main, load, read], 2, t1, 'off-cpu');
  add([wl, parse], 1, t2, 'on-cpu');
  add([child], 2, t3, 'on-cpu');
  return b.build();
}

export const rng = seededRandom;

/** A plausible Django-ish service: request handling, ORM, JSON, native and kernel frames, an idle pool. */
export function demoProfile(): Profile {
  const b = new ProfileBuilder({
    meta: {
      name: 'gunicorn app:wsgi (demo)',
      lens: 'sampling',
      backend: 'pylens-sampler',
      mode: 'wall',
      rateHz: 100,
      durationNs: 30e9,
      command: ['gunicorn', '-w', '2', 'app:wsgi'],
      pid: 4242,
      startTime: '2026-03-14T09:26:53.000Z',
      errorCount: 3,
      overhead: { fraction: 0.008, method: 'sampler CPU / target wall' },
      environment: {
        cpuModel: 'AMD EPYC 7B13',
        cpuCores: 8,
        kernel: 'Linux 6.1.0-18-amd64',
        os: 'Debian GNU/Linux 12 (bookworm)',
        hostname: 'web-3',
        python: { version: '3.12.3', implementation: 'CPython', buildFlags: '--enable-optimizations --with-lto' },
        pylensVersion: '0.1.0',
      },
    },
  });
  const py = (name: string, file: string, line: number): FrameSpec => ({ name, qualname: name, file, line });
  const F = (s: FrameSpec) => b.frame(s);
  const f = {
    main: F(py('<module>', '/usr/bin/gunicorn', 8)),
    run: F(py('Arbiter.run', '/venv/gunicorn/arbiter.py', 209)),
    loop: F(py('SyncWorker.run_for_one', '/venv/gunicorn/workers/sync.py', 72)),
    accept: F(py('SyncWorker.accept', '/venv/gunicorn/workers/sync.py', 30)),
    handle: F(py('SyncWorker.handle_request', '/venv/gunicorn/workers/sync.py', 176)),
    wsgi: F(py('WSGIHandler.__call__', '/venv/django/core/handlers/wsgi.py', 124)),
    getresp: F(py('BaseHandler.get_response', '/venv/django/core/handlers/base.py', 140)),
    view: F(py('OrderListView.get', '/srv/shop/views.py', 88)),
    serialize: F(py('OrderSerializer.data', '/srv/shop/serializers.py', 41)),
    to_repr: F(py('Serializer.to_representation', '/venv/rest_framework/serializers.py', 522)),
    field: F(py('DecimalField.to_representation', '/venv/rest_framework/fields.py', 1112)),
    qs: F(py('QuerySet.__iter__', '/venv/django/db/models/query.py', 398)),
    fetch: F(py('SQLCompiler.execute_sql', '/venv/django/db/models/sql/compiler.py', 1562)),
    cursor: F(py('CursorWrapper.execute', '/venv/django/db/backends/utils.py', 67)),
    pgexec: F({ name: 'PQexec', kind: 'native', lib: 'libpq.so.5' }),
    recv: F({ name: '__libc_recv', kind: 'native', lib: 'libc.so.6' }),
    tcp: F({ name: 'tcp_recvmsg', kind: 'kernel' }),
    sched: F({ name: 'schedule', kind: 'kernel' }),
    json: F(py('JSONRenderer.render', '/venv/rest_framework/renderers.py', 100)),
    dumps: F(py('dumps', '/usr/lib/python3.12/json/__init__.py', 231)),
    encode: F(py('JSONEncoder.iterencode', '/usr/lib/python3.12/json/encoder.py', 258)),
    cenc: F({ name: 'encoder_listencode_list', kind: 'native', lib: '_json.cpython-312-x86_64-linux-gnu.so' }),
    tmpl: F(py('Template.render', '/venv/django/template/base.py', 170)),
    node: F(py('NodeList.render', '/venv/django/template/base.py', 1005)),
    mw: F(py('SessionMiddleware.process_response', '/venv/django/contrib/sessions/middleware.py', 30)),
    save: F(py('SessionStore.save', '/venv/django/contrib/sessions/backends/db.py', 73)),
    gc: F({ name: '<GC>', kind: 'marker' }),
    idle: F({ name: '<idle>', kind: 'marker' }),
    select: F({ name: 'select', kind: 'native', lib: 'libc.so.6' }),
    poll: F({ name: 'do_select', kind: 'kernel' }),
  };
  const base = [f.main, f.run, f.loop];
  const req = [...base, f.handle, f.wsgi, f.getresp];
  const shapes: Array<[number[], number, SampleState]> = [
    [[...req, f.view, f.serialize, f.to_repr, f.field], 260, 'on-cpu'],
    [[...req, f.view, f.serialize, f.to_repr], 140, 'on-cpu'],
    [[...req, f.view, f.qs, f.fetch, f.cursor, f.pgexec, f.recv, f.tcp], 120, 'off-cpu'],
    [[...req, f.view, f.qs, f.fetch, f.cursor, f.pgexec], 60, 'on-cpu'],
    [[...req, f.view, f.qs, f.fetch], 45, 'on-cpu'],
    [[...req, f.view, f.json, f.dumps, f.encode, f.cenc], 130, 'on-cpu'],
    [[...req, f.view, f.json, f.dumps, f.encode], 30, 'on-cpu'],
    [[...req, f.view, f.tmpl, f.node], 70, 'on-cpu'],
    [[...req, f.mw, f.save, f.cursor, f.pgexec, f.recv, f.tcp], 50, 'off-cpu'],
    [[...req, f.gc], 25, 'on-cpu'],
    [[...base, f.accept, f.select, f.poll, f.sched], 180, 'idle'],
    [[...base, f.accept, f.idle], 40, 'idle'],
  ];
  const r = rng(7);
  const threads = [b.thread(4242, 4242, 'MainThread'), b.thread(4242, 4250, 'worker-1'), b.thread(4243, 4243, 'MainThread')];
  const times = [0, 0, 0];
  const bag: number[] = [];
  shapes.forEach(([, n], i) => {
    for (let k = 0; k < n; k++) bag.push(i);
  });
  for (let k = bag.length - 1; k > 0; k--) {
    const j = Math.floor(r() * (k + 1));
    [bag[k], bag[j]] = [bag[j]!, bag[k]!];
  }
  for (const i of bag) {
    const [frames, , st] = shapes[i]!;
    const t = r() < 0.55 ? 0 : r() < 0.6 ? 1 : 2;
    times[t] = times[t]! + 10_000_000;
    b.sample(b.stackOf(frames), 1, threads[t]!, st, times[t]!);
  }
  return b.build();
}

/**
 * `samples` samples over exactly `stacks` distinct stacks (the stack table's size), with
 * temporal locality (runs of the same stack, mean length `run`), four threads, states
 * ~85% on-cpu / 10% idle / 5% gil, and 1 ms between samples of a thread.
 */
export function bigProfile(o: { samples?: number; stacks?: number; run?: number; seed?: number } = {}): Profile {
  const nSamples = o.samples ?? 1_000_000;
  const nStacks = o.stacks ?? 100_000;
  const meanRun = o.run ?? 1;
  const r = rng(o.seed ?? 1);
  const b = new ProfileBuilder({ meta: { name: `synthetic ${nSamples} samples / ${nStacks} stacks`, lens: 'sampling', backend: 'synthetic', mode: 'cpu', rateHz: 1000 } });
  const frames: number[] = [];
  for (let i = 0; i < 3000; i++) frames.push(b.frame({ name: `fn_${i}`, qualname: `mod${i % 97}.fn_${i}`, file: `/srv/pkg/mod${i % 97}.py`, line: 1 + ((i * 7) % 400) }));
  for (let i = 0; i < 400; i++) frames.push(b.frame({ name: `native_${i}`, kind: 'native', lib: `lib${i % 13}.so` }));
  for (let i = 0; i < 100; i++) frames.push(b.frame({ name: `k_${i}`, kind: 'kernel' }));
  const idle = b.frame({ name: '<idle>', kind: 'marker' });
  const depthOf: number[] = [];
  // A few roots, then extend random existing stacks (shallower ones more often) until nStacks exist.
  const roots = [b.frame({ name: '<module>', file: '/srv/main.py', line: 1 }), b.frame({ name: 'Thread.run', file: '/usr/lib/python3.12/threading.py', line: 1010 })];
  for (const f of roots) depthOf[b.stack(-1, f)] = 1;
  while (b.stacks.length < nStacks) {
    const pick = Math.floor(Math.pow(r(), 1.6) * b.stacks.length);
    const d = depthOf[pick]!;
    if (d >= 40) continue;
    const kindRoll = r();
    const f = d > 12 && kindRoll < 0.08 ? frames[3400 + Math.floor(r() * 100)]! : d > 8 && kindRoll < 0.2 ? frames[3000 + Math.floor(r() * 400)]! : kindRoll < 0.003 ? idle : frames[Math.floor(Math.pow(r(), 2) * 3000)]!;
    const before = b.stacks.length;
    const s = b.stack(pick, f);
    if (b.stacks.length > before) depthOf[s] = d + 1;
  }
  const threads = [b.thread(1, 1, 'MainThread'), b.thread(1, 2, 'worker-1'), b.thread(1, 3, 'worker-2'), b.thread(1, 4, 'worker-3')];
  const times = [0, 0, 0, 0];
  let i = 0;
  while (i < nSamples) {
    // Zipf-ish popularity over a fixed permutation of the stacks.
    const s = Math.floor(Math.pow(r(), 3) * nStacks);
    const t = Math.floor(r() * 4);
    const roll = r();
    const st: SampleState = roll < 0.85 ? 'on-cpu' : roll < 0.95 ? 'idle' : 'gil';
    const len = meanRun <= 1 ? 1 : 1 + Math.floor(-Math.log(1 - r()) * (meanRun - 1));
    for (let k = 0; k < len && i < nSamples; k++, i++) {
      times[t] = times[t]! + 1_000_000;
      b.sample((s * 7919) % nStacks, 1, threads[t]!, st, times[t]!);
    }
  }
  return b.build();
}

/**
 * Two threads at different times (1 kHz): A at 1..60 ms — main_a;parse_a and main_a;render_a
 * interleaved (no runs), then main_a;wait_a ×10 (idle) at 51..60 ms, one merged row — and B
 * at 101..140 ms: main_b;work_b (one run). `samples` lists every sample with the functions
 * on its stack, for counting what a time range holds independently of the page.
 */
export function twoThreadProfile(): { p: Profile; samples: Array<{ t: number; thread: string; fns: string[] }> } {
  const b = new ProfileBuilder({ meta: { name: 'two threads', lens: 'sampling', backend: 'test', mode: 'wall', rateHz: 1000 }, unitValues: true });
  const fr = (n: string, file: string) => b.frame({ name: n, file, line: 1 });
  const mainA = b.stack(-1, fr('main_a', '/srv/a.py'));
  const parse = b.stack(mainA, fr('parse_a', '/srv/a.py'));
  const render = b.stack(mainA, fr('render_a', '/srv/a.py'));
  const wait = b.stack(mainA, fr('wait_a', '/srv/a.py'));
  const work = b.stack(b.stack(-1, fr('main_b', '/srv/b.py')), fr('work_b', '/srv/b.py'));
  const ta = b.thread(1, 11, 'A');
  const tb = b.thread(1, 12, 'B');
  const samples: Array<{ t: number; thread: string; fns: string[] }> = [];
  for (let i = 1; i <= 60; i++) {
    const leaf = i > 50 ? 'wait_a' : i % 2 === 0 ? 'render_a' : 'parse_a';
    b.sample(i > 50 ? wait : i % 2 === 0 ? render : parse, 1, ta, i > 50 ? 'idle' : 'on-cpu', i * 1e6);
    samples.push({ t: i * 1e6, thread: 'A', fns: ['main_a', leaf] });
  }
  for (let i = 101; i <= 140; i++) {
    b.sample(work, 1, tb, 'on-cpu', i * 1e6);
    samples.push({ t: i * 1e6, thread: 'B', fns: ['main_b', 'work_b'] });
  }
  return { p: b.build(), samples };
}
