/**
 * `pylens offcpu`, the pure half: wait classes from kernel stacks, attribution of off-CPU
 * records to the sampler's Python stacks, the profile and the report, on synthetic data.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildOffCpu, classifyWait, formatOffCpuReport, NO_PYTHON, waitFrames, type WaitRecord } from '../../src/analysis/offcpu.ts';
import { ProfileBuilder } from '../../src/model/builder.ts';
import { frameInfo, sampleState, stackFrames, type Profile } from '../../src/model/profile.ts';

const k = (s: string) => s.split(' ');

test('wait classes from kernel stacks, thread state and the GIL probe', () => {
  const c = (stack: string, state = 'S', gilWait = false) => classifyWait({ kstack: k(stack), state, gilWait });
  assert.equal(c('__schedule schedule futex_wait_queue futex_wait do_futex __x64_sys_futex do_syscall_64'), 'lock');
  assert.equal(c('__schedule schedule futex_wait_queue futex_wait do_futex __x64_sys_futex do_syscall_64', 'S', true), 'gil');
  assert.equal(c('__schedule schedule schedule_timeout wait_woken sk_wait_data tcp_recvmsg_locked tcp_recvmsg inet_recvmsg sock_recvmsg __sys_recvfrom'), 'network');
  assert.equal(c('__schedule schedule schedule_timeout unix_stream_read_generic unix_stream_recvmsg sock_read_iter'), 'network');
  assert.equal(c('__schedule schedule schedule_hrtimeout_range ep_poll do_epoll_wait __x64_sys_epoll_wait'), 'network');
  assert.equal(c('__schedule schedule schedule_timeout inet_csk_accept inet_accept do_accept'), 'network');
  assert.equal(c('__schedule schedule io_schedule folio_wait_bit_common folio_wait_writeback __filemap_fdatawait_range file_write_and_wait_range ext4_sync_file vfs_fsync_range do_fsync', 'D'), 'disk');
  assert.equal(c('__schedule schedule jbd2_log_wait_commit jbd2_complete_transaction ext4_fc_commit ext4_sync_file do_fsync', 'D'), 'disk');
  assert.equal(c('__schedule schedule io_schedule filemap_fault __do_fault handle_mm_fault do_user_addr_fault exc_page_fault', 'D'), 'disk');
  assert.equal(c('__schedule schedule rwsem_down_read_slowpath do_user_addr_fault exc_page_fault'), 'lock');
  assert.equal(c('__schedule schedule do_nanosleep hrtimer_nanosleep common_nsleep __x64_sys_clock_nanosleep'), 'sleep');
  assert.equal(c('__schedule schedule schedule_hrtimeout_range do_select core_sys_select kern_select __x64_sys_select'), 'sleep');
  assert.equal(c('__schedule schedule handle_mm_fault do_user_addr_fault exc_page_fault'), 'page-fault');
  assert.equal(c('__schedule preempt_schedule_irq irqentry_exit asm_sysvec_apic_timer_interrupt', 'R'), 'preempted');
  assert.equal(c('__schedule schedule do_wait kernel_wait4 __do_sys_wait4'), 'other');
  assert.equal(c(''), 'other');
});

test('wait frames: root first, without the scheduler frames at the leaf', () => {
  assert.deepEqual(waitFrames(k('finish_task_switch.isra.0 __schedule schedule do_nanosleep hrtimer_nanosleep')), ['hrtimer_nanosleep', 'do_nanosleep']);
  assert.deepEqual(waitFrames(['schedule']), ['schedule']);
  assert.deepEqual(waitFrames([]), []);
});

/**
 * The sampler's view: MainThread (tid 101) sleeps in `nap` from 0 to 100 ms and then runs
 * `spin` (on-cpu) to 200 ms; worker (tid 102) waits in `fetch` the whole time. Samples
 * every 10 ms.
 */
function samplerProfile(): Profile {
  const b = new ProfileBuilder({ meta: { lens: 'sampling', backend: 'pylens-sampler', mode: 'wall' }, unitValues: true });
  const main = b.frame({ name: 'main', file: 'app.py', line: 30 });
  const nap = b.frame({ name: 'nap', file: 'app.py', line: 10 });
  const spin = b.frame({ name: 'spin', file: 'app.py', line: 20 });
  const run = b.frame({ name: 'run', qualname: 'Thread.run', file: 'threading.py', line: 900 });
  const fetch = b.frame({ name: 'fetch', file: 'app.py', line: 40 });
  const t1 = b.thread(7, 101, 'MainThread');
  const t2 = b.thread(7, 102, 'worker');
  for (let t = 0; t < 200e6; t += 10e6) {
    b.sample(b.stackOf(t < 100e6 ? [main, nap] : [main, spin]), 1, t1, t < 100e6 ? 'idle' : 'on-cpu', t);
    b.sample(b.stackOf([run, fetch]), 1, t2, 'idle', t + 3e6);
  }
  return b.build();
}

const ORIGIN = 5_000_000_000; // CLOCK_MONOTONIC of the sampler's time 0
const rec = (tid: number, s: number, e: number, ns: number, kstack: string, extra: Partial<WaitRecord> = {}): WaitRecord => ({
  pid: 7,
  tid,
  comm: tid === 101 ? 'python3' : 'worker',
  kstack: k(kstack),
  startNs: ORIGIN + s,
  endNs: ORIGIN + e,
  blockedNs: ns,
  count: 1,
  gilWait: false,
  state: 'S',
  ...extra,
});

const path = (p: Profile, i: number) => stackFrames(p, p.samples.stack[i]!).map((f) => frameInfo(p, f).name).join(';');

test('records get the Python stack of their thread during the wait, with class marker and kernel frames', () => {
  const py = samplerProfile();
  const records = [
    // main: a 95 ms sleep; samples inside it are all in nap
    rec(101, 2e6, 97e6, 95e6, 'finish_task_switch __schedule schedule do_nanosleep hrtimer_nanosleep __x64_sys_clock_nanosleep'),
    // main: a 0.5 ms wait at 155 ms: no sample inside, the nearest (150 ms, spin) is 5 ms away
    rec(101, 155e6, 155.5e6, 0.5e6, '__schedule schedule futex_wait_queue futex_wait do_futex'),
    // worker: network, 3 merged intervals over 40 ms, blocked 30
    rec(102, 40e6, 80e6, 30e6, '__schedule schedule schedule_timeout sk_wait_data tcp_recvmsg', { count: 3 }),
    // worker: GIL wait
    rec(102, 120e6, 125e6, 5e6, '__schedule schedule futex_wait do_futex', { gilWait: true }),
    // a thread the sampler never saw
    rec(103, 10e6, 20e6, 10e6, '__schedule schedule io_schedule blk_mq_get_tag', { state: 'D' }),
    // main, far after the last sample (190 ms): beyond the 50 ms bound
    rec(101, 400e6, 401e6, 1e6, '__schedule schedule do_nanosleep'),
  ];
  const { profile: p, report } = buildOffCpu(py, records, { originNs: ORIGIN });
  // the merged network record spans four idle samples of the worker: shared among them
  assert.equal(p.samples.length, records.length + 3);
  assert.equal(p.meta.lens, 'ebpf');
  assert.equal(p.meta.mode, 'off-cpu');
  assert.deepEqual(p.valueTypes.map((v) => v.unit), ['nanoseconds', 'samples']);
  const rows = Array.from({ length: p.samples.length }, (_, i) => `${path(p, i)} ${sampleState(p, i)} ${p.samples.values[0]![i]} ${p.samples.values[1]![i]}`);
  assert.deepEqual(rows, [
    'main;nap;[wait: sleep];__x64_sys_clock_nanosleep;hrtimer_nanosleep;do_nanosleep off-cpu 95000000 1',
    'main;spin;[wait: lock];do_futex;futex_wait;futex_wait_queue off-cpu 500000 1',
    ...Array(4).fill('run;fetch;[wait: network];tcp_recvmsg;sk_wait_data;schedule_timeout off-cpu 7500000 0.75'),
    'run;fetch;[wait: GIL];do_futex;futex_wait gil 5000000 1',
    `${NO_PYTHON};[wait: disk];blk_mq_get_tag;io_schedule off-cpu 10000000 1`,
    `${NO_PYTHON};[wait: sleep];do_nanosleep off-cpu 1000000 1`,
  ]);
  assert.equal(frameInfo(p, stackFrames(p, p.samples.stack[0]!).at(-1)!).kind, 'kernel');
  // shared rows sit at their samples' times, others at the wait's start
  assert.deepEqual(Array.from(p.samples.time!.subarray(2, 6)), [43e6, 53e6, 63e6, 73e6]);
  assert.equal(p.samples.time![0], 2e6);
  // threads keep the sampler's names; an unsampled one gets its comm
  assert.deepEqual(Array.from({ length: p.threads.length }, (_, t) => p.strings[p.threads.name[t]!]), ['MainThread', 'worker', 'worker']);

  assert.deepEqual(report.matched, { inside: 3, near: 1, none: 2 });
  assert.equal(report.totalNs, 141.5e6);
  assert.equal(report.count, 8);
  assert.deepEqual(report.byClass.sleep, { ns: 96e6, count: 2 });
  const nap = report.functions.find((f) => f.name === 'nap')!;
  assert.equal(nap.totalNs, 95e6);
  assert.equal(nap.file, 'app.py');
  const fetch = report.functions.find((f) => f.name === 'fetch')!;
  assert.deepEqual(fetch.byClass, { network: { ns: 30e6, count: 3 }, gil: { ns: 5e6, count: 1 } });
  assert.equal(fetch.longestNs, 10e6); // merged records: their mean, without maxNs
  assert.equal(report.functions[0]!.name, 'nap');
  const worker = report.threads.find((t) => t.tid === 102)!;
  assert.equal(worker.name, 'worker');
  assert.equal(worker.totalNs, 35e6);
  const text = formatOffCpuReport(report);
  assert.match(text, /off-CPU time: 141\.5 ms in 8 switch-outs/);
  assert.match(text, /95\.0 ms +1 +95\.0 ms +nap \(app\.py:10\) — sleep 100%/);
  assert.match(text, /fetch \(app\.py:40\) — network 86%, gil 14%/);
  assert.match(text, /MainThread \(tid 101\)/);
});

test('a sample in which the thread was idle wins over a nearer running one', () => {
  const b = new ProfileBuilder({ unitValues: true });
  const a = b.frame({ name: 'runs' });
  const w = b.frame({ name: 'waits' });
  const t = b.thread(7, 101);
  b.sample(b.stackOf([a]), 1, t, 'on-cpu', 50e6);
  b.sample(b.stackOf([w]), 1, t, 'idle', 59e6);
  const { profile } = buildOffCpu(b.build(), [rec(101, 40e6, 60e6, 20e6, 'schedule futex_wait')], { originNs: ORIGIN });
  assert.equal(path(profile, 0), 'waits;[wait: lock];futex_wait');
});

test('combined view: on-CPU samples carry the thread\'s measured CPU time, idle ones are replaced by the waits', () => {
  const py = samplerProfile();
  const records = [
    rec(101, 2e6, 97e6, 95e6, 'schedule do_nanosleep'),
    // preempted around the on-cpu sample at 160 ms: runnable, not running: dropped
    rec(101, 159e6, 165e6, 6e6, 'schedule preempt_schedule_irq', { state: 'R' }),
    // preempted 0.1 ms before the sample at 150 ms: the sampler waking up; kept
    rec(101, 149.9e6, 151e6, 1.1e6, 'schedule preempt_schedule_irq', { state: 'R' }),
    // merged preemptions around 170 and 180 ms: when is unknown, the samples stay
    rec(101, 168e6, 182e6, 7e6, 'schedule preempt_schedule_irq', { state: 'R', count: 2 }),
    // a sleep around the on-cpu sample at 140 ms: the sampler would have read it idle; stays
    rec(101, 138e6, 142e6, 4e6, 'schedule do_nanosleep'),
  ];
  const { profile: p, report } = buildOffCpu(py, records, { originNs: ORIGIN, withCpu: { periodNs: 10e6 } });
  assert.equal(p.meta.mode, 'wall');
  // CPU time measured, not counted in periods: main was watched from its first wait (2 ms) to
  // half a period after its last on-CPU sample (195 ms), 193 ms, and waited 113.1 ms of it
  // (95 + 6 + 1.1 + 7 + 4): 79.9 ms over its 9 kept samples (the sampled count said 90)
  assert.deepEqual({ ...report.cpu, ns: Math.round(report.cpu!.ns) }, { samples: 9, ns: 79.9e6, droppedPreempted: 1 });
  const byState = new Map<string, number>();
  for (let i = 0; i < p.samples.length; i++) byState.set(sampleState(p, i), (byState.get(sampleState(p, i)) ?? 0) + p.samples.values[0]![i]!);
  assert.equal(byState.get('off-cpu'), 113.1e6);
  assert.ok(Math.abs(byState.get('on-cpu')! - 79.9e6) < 1, String(byState.get('on-cpu')));
  const cpuRows = Array.from({ length: p.samples.length }, (_, i) => i).filter((i) => sampleState(p, i) === 'on-cpu');
  assert.ok(cpuRows.every((i) => path(p, i) === 'main;spin'));
  // the worker's idle samples are not CPU, and not counted again next to its waits
  assert.ok(!Array.from({ length: p.samples.length }, (_, i) => path(p, i)).some((x) => x === 'run;fetch'));
  assert.match(formatOffCpuReport(report), /on-CPU time: 79\.9 ms \(each thread's watched span less its measured waits\), spread over 9 samples/);
});

test('the flamegraph marks off-CPU and GIL-wait time (hatched, own colours), not CPU time, and not as idle', async () => {
  const { deflateRawSync } = await import('node:zlib');
  const { encodePageData } = await import('../../src/render/html.ts');
  const { decodeColumns } = await import('../../src/render/page/decode.ts');
  const { FlameModel } = await import('../../src/render/page/tree.ts');
  const { profile: p } = buildOffCpu(
    samplerProfile(),
    [rec(101, 2e6, 97e6, 95e6, 'schedule do_nanosleep'), rec(102, 120e6, 125e6, 5e6, 'schedule futex_wait', { gilWait: true })],
    { originNs: ORIGIN, withCpu: { periodNs: 10e6 } },
  );
  const { data, blob } = encodePageData(p);
  const m = new FlameModel(await decodeColumns({ ...data, compressed: 'deflate-raw' }, Buffer.from(deflateRawSync(blob)).toString('base64')));
  for (const l of [m.buildMerged({ threads: null, states: null, valueIndex: 0, byThread: false }), m.buildTimeOrder({ threads: null, states: null, valueIndex: 0, byThread: false })]) {
    const shares = (label: string) => {
      let off = 0;
      let idle = 0;
      let v = 0;
      // time order splits a frame into runs: weigh each run's share by its width
      for (let i = 0; i < l.node.length; i++) {
        if (!m.nodeLabel(l.node[i]!).startsWith(label)) continue;
        const w = l.end[i]! - l.start[i]!;
        off += l.offCpu[i]! * w;
        idle += l.idle[i]! * w;
        v += w;
      }
      assert.ok(v > 0, `no box ${label}`);
      return [Math.round(off / v), Math.round(idle / v)];
    };
    assert.deepEqual(shares('nap'), [255, 0], l.view);
    assert.deepEqual(shares('[wait: GIL]'), [255, 0], l.view);
    assert.deepEqual(shares('spin'), [0, 0], l.view);
  }
  const merged = m.buildMerged({ threads: null, states: null, valueIndex: 0, byThread: false });
  const main = [...merged.node].findIndex((n) => m.nodeLabel(n).startsWith('main'));
  // main: 95 ms off the CPU; on it, its watched span (the wait's start at 2 ms to half a
  // period after its last on-CPU sample, 195 ms) less that wait: 98 ms
  assert.equal(merged.offCpu[main], Math.round((255 * 95) / (95 + 98)));
});

test('a record without times (a whole-run total, as bcc gives) is shared among the thread’s idle samples', () => {
  const b = new ProfileBuilder({ unitValues: true });
  const [a, c, x] = ['reads', 'sleeps', 'computes'].map((n) => b.frame({ name: n, file: 'w.py', line: 1 }));
  const t = b.thread(7, 101);
  for (let i = 0; i < 10; i++) b.sample(b.stackOf([i < 3 ? a! : i < 9 ? c! : x!]), 1, t, i < 9 ? 'idle' : 'on-cpu', i * 10e6);
  // bcc: the recording's span, count 1, no state
  const { report } = buildOffCpu(b.build(), [rec(101, 0, 100e6, 45e6, 'schedule futex_wait', { state: '?' })], { originNs: ORIGIN });
  assert.deepEqual(
    report.functions.map((f) => [f.name, Math.round(f.totalNs), Math.round(f.count * 1e6) / 1e6]),
    [['sleeps', 30e6, 0.666667], ['reads', 15e6, 0.333333]],
  );
  assert.equal(report.threads[0]!.totalNs, 45e6);
  assert.deepEqual(report.byClass, { lock: { ns: 45e6, count: 1 } });
});
