import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { frameInfo, stackFrames, threadLabel, type FrameInfo, type Profile } from '../../src/model/profile.ts';
import { aggregate, foldedStacks, validateProfile } from '../../src/model/query.ts';
import { commandFromPerfCmdline, eventBaseName, parseSampleHeader, perfScriptImporter, splitSymbolDso } from '../../src/formats/perf-script.ts';
import { InputFile, NOT_MINE, ParseError } from '../../src/formats/types.ts';
import { FIXTURES, detectsWithoutName, fixture, goldenSummary, rejectsGarbage, rng } from '../helpers/format-checks.ts';

/** Sampled with cpu-clock; perf-script-sched-switch.txt (a tracepoint) is tested on its own. */
const FIXTURE_FILES = [
  '3.12/perf-script.txt',
  '3.12/perf-script-fields-pid-tid-cpu-header.txt',
  '3.12/perf-script-fp-no-py-frames.txt',
  '3.13/perf-script-jit.txt',
].filter((f) => existsSync(join(FIXTURES, 'perf', f)));

function imp(text: string | Uint8Array, name = 'inline.perf'): Profile {
  const input = typeof text === 'string' ? InputFile.fromText(text, name) : new InputFile(text, name);
  const r = perfScriptImporter.parse(input);
  assert.notEqual(r, NOT_MINE);
  validateProfile(r as Profile);
  return r as Profile;
}

function parseError(text: string, name = 'bad.perf'): ParseError {
  try {
    perfScriptImporter.parse(InputFile.fromText(text, name));
  } catch (e) {
    assert.ok(e instanceof ParseError, `${(e as Error).name}: ${(e as Error).message}`);
    assert.ok(e.message.startsWith(`${name}:`), e.message);
    return e;
  }
  assert.fail('expected a ParseError');
}

/** Frames of sample i, root first. */
const sampleFrames = (p: Profile, i: number): FrameInfo[] => stackFrames(p, p.samples.stack[i]!).map((f) => frameInfo(p, f));
const short = (f: FrameInfo) => `${f.kind}:${f.qualname}${f.file ? `@${f.file}` : ''}${f.lib ? `[${f.lib}]` : ''}`;
const threads = (p: Profile) => Array.from({ length: p.threads.length }, (_, t) => threadLabel(p, t));

const LIBPY = '/root/.pyenv/versions/3.12.1/lib/libpython3.12.so.1.0';

test('sample headers: comm with spaces, pid/tid, cpu, period, event; parsed from the time token', () => {
  assert.deepEqual(parseSampleHeader('worker alpha  6045 [000]   560.590851:    2004008 cpu-clock:ppp: '), {
    comm: 'worker alpha', pid: -1, tid: 6045, cpu: 0, sec: 560, fracNs: 590851000, period: 2004008, event: 'cpu-clock:ppp', rest: '',
  });
  assert.deepEqual(parseSampleHeader('python3.12  6043/6045  [001]   560.449343:    2004008 cpu-clock:ppp: '), {
    comm: 'python3.12', pid: 6043, tid: 6045, cpu: 1, sec: 560, fracNs: 449343000, period: 2004008, event: 'cpu-clock:ppp', rest: '',
  });
  // no cpu, --ns time, no period, tracepoint text after the event
  assert.deepEqual(parseSampleHeader('python3.12 12601  1119.654730123: sched:sched_switch: prev_comm=python3.12 prev_pid=12601 ==> next_comm=swapper/1'), {
    comm: 'python3.12', pid: -1, tid: 12601, cpu: -1, sec: 1119, fracNs: 654730123, period: -1, event: 'sched:sched_switch', rest: 'prev_comm=python3.12 prev_pid=12601 ==> next_comm=swapper/1',
  });
  // left-padded comm (no-callchain output), comm that looks like numbers and colons
  assert.equal(parseSampleHeader('      python3.12 12595  1118.348851:    1001001 cpu-clock:ppp:  ffffffff81c39564 percpu_counter_add_batch+0x4 ([kernel.kallsyms])')!.rest, 'ffffffff81c39564 percpu_counter_add_batch+0x4 ([kernel.kallsyms])');
  assert.deepEqual(
    ['kworker/0:1 1.5: 7 [003] 12.000001: 1 cycles:P:', 'my app 2 77 12.5: task-clock:'].map((l) => {
      const h = parseSampleHeader(l)!;
      return [h.comm, h.tid, h.cpu, h.sec, h.fracNs, h.period, h.event];
    }),
    [
      ['kworker/0:1 1.5:', 7, 3, 12, 1000, 1, 'cycles:P'],
      ['my app 2', 77, -1, 12, 500000000, -1, 'task-clock'],
    ],
  );
  for (const bad of ['main;foo;bar 12', 'hello world', '\t7f00 foo (/lib.so)', 'python 12 [0] 1.5 cycles:', '{"a": 1.5: 2}', '']) assert.equal(parseSampleHeader(bad), null, bad);
  assert.deepEqual(['cpu-clock:ppp', 'cycles:P', 'cycles:u', 'sched:sched_switch', 'probe_python:function__entry', 'cycles'].map(eventBaseName), ['cpu-clock', 'cycles', 'cycles', 'sched:sched_switch', 'probe_python:function__entry', 'cycles']);
});

test('frame lines: the dso is the last balanced ( … ), symbols keep spaces and parentheses', () => {
  assert.deepEqual(splitSymbolDso('(anonymous namespace)::Worker::operator()+0x1d (/tmp/pl/cpp)'), { sym: '(anonymous namespace)::Worker::operator()+0x1d', dso: '/tmp/pl/cpp' });
  assert.deepEqual(splitSymbolDso('std::_Function_handler<void (int), main::{lambda(int)#1}>::_M_invoke+0x28 (/tmp/pl/cpp)'), { sym: 'std::_Function_handler<void (int), main::{lambda(int)#1}>::_M_invoke+0x28', dso: '/tmp/pl/cpp' });
  assert.deepEqual(splitSymbolDso('foo+0x3 (/tmp/libx.so (deleted))'), { sym: 'foo+0x3', dso: '/tmp/libx.so (deleted)' });
  assert.deepEqual(splitSymbolDso('[unknown] ([unknown])'), { sym: '[unknown]', dso: '[unknown]' });
  assert.deepEqual(splitSymbolDso('operator()'), { sym: 'operator()', dso: null });
  assert.deepEqual(splitSymbolDso('foo+0x3'), { sym: 'foo+0x3', dso: null });
});

test('default output: pid from the perf map, python / native / kernel frames, inlined frames, cpu column', () => {
  const p = imp(`python3.12  6043 [000]   560.449343:    2004008 cpu-clock:ppp: 
\tffffffff815eb739 __handle_mm_fault+0x59 ([kernel.kallsyms])
\tffffffff81000c82 asm_exc_page_fault+0x22 ([kernel.kallsyms])
\t          1cfddb has_own_state+0x2b (inlined)
\t          1cfddb get_state+0x2b (inlined)
\t          1cfddb _PyObject_Malloc+0x2b (${LIBPY})
\t          1123df _PyEval_EvalFrameDefault+0x661f (${LIBPY})
\t    7f6f3b465d0a py::inner_hot:/work/app/callchain.py+0x5 (/tmp/perf-6043.map)

worker alpha  6045 [001]   560.451364:    2004008 cpu-clock:ppp: 
\t          1123c0 _PyEval_EvalFrameDefault+0x6600 (${LIBPY})
\t    7f6f3b465d36 py::Größe.übertrage:/work/app/unicode_names.py+0x5 (/tmp/perf-6043.map)

python3.12  6043 [000]   560.453364:    2004008 cpu-clock:ppp: 
\t          1cfdd0 has_own_state+0x30 (inlined)
\t          1cfdd0 get_state+0x30 (inlined)
\t          1cfdd0 _PyObject_Malloc+0x30 (${LIBPY})
\t          1123df _PyEval_EvalFrameDefault+0x661f (${LIBPY})
\t    7f6f3b465d0a py::inner_hot:/work/app/callchain.py+0x5 (/tmp/perf-6043.map)
`);
  assert.equal(p.samples.length, 3);
  assert.deepEqual(sampleFrames(p, 0).map(short), [
    'python:inner_hot@/work/app/callchain.py',
    `native:_PyEval_EvalFrameDefault[libpython3.12.so.1.0]`,
    `native:_PyObject_Malloc[libpython3.12.so.1.0]`,
    `native:get_state[libpython3.12.so.1.0]`,
    `native:has_own_state[libpython3.12.so.1.0]`,
    'kernel:asm_exc_page_fault[[kernel.kallsyms]]',
    'kernel:__handle_mm_fault[[kernel.kallsyms]]',
  ]);
  const py = sampleFrames(p, 1)[0]!;
  assert.deepEqual(py, { name: 'übertrage', qualname: 'Größe.übertrage', file: '/work/app/unicode_names.py', line: 0, kind: 'python', lib: null });
  const s0 = p.samples.stack[0]!;
  assert.equal(p.samples.stack[2], p.stacks.parent[p.stacks.parent[s0]!], 'other offsets, same frames, same stack (less the kernel part)');
  assert.deepEqual(threads(p), ['python3.12 (6043/6043)', 'worker alpha (6043/6045)']);
  assert.deepEqual(p.valueTypes, [{ name: 'samples', unit: 'samples' }, { name: 'cpu', unit: 'nanoseconds' }]);
  assert.deepEqual([...p.samples.values[1]!], [2004008, 2004008, 2004008]);
  assert.deepEqual([...p.samples.time!], [0, 2021000, 4021000]);
  assert.deepEqual([...p.samples.state], [1, 1, 1], 'on-cpu');
  assert.equal(p.meta.lens, 'perf');
  assert.equal(p.meta.backend, 'perf');
  assert.equal(p.meta.mode, 'cpu');
  assert.equal(p.meta.sampleCount, 3);
  assert.equal(p.meta.durationNs, 4021000);
  assert.equal(p.meta.rateHz, 499, 'from the cpu-clock period');
  assert.equal(p.meta.pid, 6043);
  assert.equal(p.meta.extra!.event, 'cpu-clock:ppp');
  assert.match(String(p.meta.extra!.pids), /perf-PID\.map/);
  assert.deepEqual(p.meta.environment, {}, 'no header, no environment guessed');
});

test('jitted frames (perf inject --jit), [unknown], kernel addresses in unknown dsos, C++ symbols', () => {
  const p = imp(`python3.13  6072/6072   567.229219:    2004008 cpu-clock:ppp: 
\tffffffff8142b9de [unknown] ([unknown])
\t    7f7b39450b20 [unknown] ([unknown])
\t          28ae26 [unknown] (/usr/lib/x86_64-linux-gnu/libcrypto.so.3)
\t            1177 (anonymous namespace)::Worker::operator()+0x1d (/opt/app/bin/app)
\t            1383 std::_Function_handler<void (int), main::{lambda(int)#1}>::_M_invoke+0x28 (/opt/app/bin/app)
\t              85 py::fib:/work/app/callchain.py+0x5 (/tmp/jitted-6072-287.so)
\t          2bc5f0 py_trampoline_evaluator+0x70 (/root/.pyenv/versions/3.13.0/lib/libpython3.13.so.1.0)
\t              85 py::Thread._bootstrap:<frozen threading>+0x5 (/tmp/jitted-6072-275.so)
\t            dead foo+0x3 (/tmp/libx.so (deleted))
`);
  assert.deepEqual(sampleFrames(p, 0).map(short), [
    'native:foo[libx.so (deleted)]',
    'python:Thread._bootstrap@<frozen threading>',
    'native:py_trampoline_evaluator[libpython3.13.so.1.0]',
    'python:fib@/work/app/callchain.py',
    'native:std::_Function_handler<void (int), main::{lambda(int)#1}>::_M_invoke[app]',
    'native:(anonymous namespace)::Worker::operator()[app]',
    'native:[unknown][libcrypto.so.3]',
    'native:[unknown]',
    'kernel:[unknown]',
  ]);
  assert.equal(sampleFrames(p, 0)[1]!.name, '_bootstrap');
});

test('no cpu field, pid/tid given, comm renamed mid-run: one thread named by its latest comm', () => {
  const p = imp(`python3.12 100/101 1.000000: 1000 task-clock: 
\t1 a (/x.so)

worker alpha 100/101 1.001000: 1000 task-clock: 
\t1 a (/x.so)

python3.12 100/100 1.002000: 1000 task-clock: 
\t2 b (/x.so)
`);
  assert.deepEqual(threads(p), ['worker alpha (100/101)', 'python3.12 (100/100)']);
  assert.deepEqual([...p.samples.thread], [0, 0, 1]);
  assert.equal(p.meta.pid, 100);
  assert.equal(p.meta.extra!.pids, undefined, 'printed pids need no note');
});

test('sched:sched_switch: off-cpu mode and state, samples only, the event kept in meta.extra', () => {
  const p = imp(`python3.12 12601 [001]  1119.654730: sched:sched_switch: prev_comm=python3.12 prev_pid=12601 prev_prio=120 prev_state=S ==> next_comm=swapper/1 next_pid=0 next_prio=120
\tffffffff821f8298 __schedule+0x618 ([kernel.kallsyms])
\tffffffff821ffb7e do_nanosleep+0x5e ([kernel.kallsyms])
\t           cf503 clock_nanosleep@GLIBC_2.2.5+0x23 (/usr/lib/x86_64-linux-gnu/libc.so.6)

python3.12 12601 [001]  1119.663972: sched:sched_switch: prev_comm=python3.12 prev_pid=12601 prev_prio=120 prev_state=S ==> next_comm=swapper/1 next_pid=0 next_prio=120
\tffffffff821f8298 __schedule+0x618 ([kernel.kallsyms])
\t               0 [unknown] ([unknown])
`);
  assert.equal(p.meta.mode, 'off-cpu');
  assert.deepEqual(p.valueTypes, [{ name: 'samples', unit: 'samples' }]);
  assert.deepEqual([...p.samples.state], [2, 2], 'off-cpu');
  assert.equal(p.meta.extra!.event, 'sched:sched_switch');
  assert.deepEqual(foldedStacks(p), [
    ['[unknown];__schedule_[k]', 1],
    ['clock_nanosleep@GLIBC_2.2.5;do_nanosleep_[k];__schedule_[k]', 1],
  ]);
  assert.equal(p.meta.rateHz, undefined, 'tracepoints have no sampling rate');
});

test('no callchain: one frame on each left-padded header line; -F ip only; idle swapper', () => {
  const p = imp(`      python3.12 12595  1118.348851:    1001001 cpu-clock:ppp:  ffffffff81c39564 percpu_counter_add_batch+0x4 ([kernel.kallsyms])
      python3.12 12595  1118.350857:    1001001 cpu-clock:ppp:      7fd17c4b2abc _Py_hashtable_get_entry_generic+0x4c (${LIBPY})
         swapper     0 [000]  1118.351000:    1001001 cpu-clock:ppp:  ffffffff821f8298 default_idle+0x8 ([kernel.kallsyms])
      python3.12 12595  1118.352870:    1001001 cpu-clock:ppp: 
\t    7fd17c4b2abc
\t    7fd17c4b2000
`);
  assert.equal(p.samples.length, 4);
  assert.deepEqual(sampleFrames(p, 0).map(short), ['kernel:percpu_counter_add_batch[[kernel.kallsyms]]']);
  assert.deepEqual(sampleFrames(p, 1).map(short), ['native:_Py_hashtable_get_entry_generic[libpython3.12.so.1.0]']);
  assert.deepEqual([...p.samples.state], [1, 1, 3, 1], 'tid 0 is idle');
  assert.deepEqual(sampleFrames(p, 3).map(short), ['native:0x7fd17c4b2000', 'native:0x7fd17c4b2abc']);
  assert.deepEqual(threads(p), ['python3.12 (12595/12595)', 'swapper (0/0)']);
});

test('perf script --header: environment, command, rate; CRLF and a BOM are fine', () => {
  const text = `# ========
# captured on    : Tue Nov 24 16:23:57 2026
# hostname : vm
# os release : 6.18.44-fc-v595
# perf version : 6.1.187
# arch : x86_64
# nrcpus online : 2
# nrcpus avail : 4
# cpudesc : AMD EPYC
# cmdline : /usr/bin/perf record -F 499 -g -o p.data -- /usr/bin/python3.12 -X perf app.py 1.5 
# event : name = cpu-clock:ppp, , id = { 216, 217 }, type = 1, size = 128, { sample_period, sample_freq } = 499, sample_type = IP|TID|TIME, freq = 1, enable_on_exec = 1
# ========
#
python3.12  6043/6043  [000]   560.449343:    2004008 cpu-clock:ppp: 
\t          1123df _PyEval_EvalFrameDefault+0x661f (${LIBPY})

`;
  for (const t of [text, text.replaceAll('\n', '\r\n'), `\ufeff${text}`]) {
    const p = imp(t);
    assert.deepEqual(p.meta.environment, { hostname: 'vm', kernel: 'Linux 6.18.44-fc-v595', cpuModel: 'AMD EPYC', cpuCores: 2, python: { executable: '/usr/bin/python3.12' } });
    assert.deepEqual(p.meta.command, ['/usr/bin/python3.12', '-X', 'perf', 'app.py', '1.5']);
    assert.equal(p.meta.rateHz, 499);
    assert.equal(p.meta.pid, 6043);
    assert.equal(p.meta.extra!.perfVersion, '6.1.187');
    assert.equal(p.meta.extra!.capturedOn, 'Tue Nov 24 16:23:57 2026');
    assert.deepEqual(foldedStacks(p), [['_PyEval_EvalFrameDefault', 1]]);
  }
  // a header with no samples is an empty perf profile, not "unknown format"
  const empty = imp('# ========\n# captured on : x\n# hostname : vm\n# ========\n#\n');
  assert.equal(empty.samples.length, 0);
  assert.equal(empty.meta.environment.hostname, 'vm');
});

test('the profiled command from perf cmdline', () => {
  assert.deepEqual(commandFromPerfCmdline('/usr/bin/perf record -F 99 -g --call-graph dwarf -o x.data python3 app.py --n 3'), { command: ['python3', 'app.py', '--n', '3'] });
  assert.deepEqual(commandFromPerfCmdline('perf record -a -g -- sleep 5'), { command: ['sleep', '5'] });
  assert.deepEqual(commandFromPerfCmdline('perf record -g -p 1234'), { pid: 1234 });
  assert.deepEqual(commandFromPerfCmdline('perf top'), {});
});

test('side-band records and stderr warnings are skipped and counted; srcline lines under frames too', () => {
  const p = imp(`Warning: 3 out of order events recorded.
python3.12 100 [000] 1.000000: PERF_RECORD_MMAP2 100/100: [0x7f00(0x1000) @ 0 08:01 1 0]: r-xp /usr/lib/libc.so.6
python3.12 100 [000] 1.000100: 1000 task-clock: 
\t1 a+0x1 (/x.so)
  x.c:12
\t2 b+0x2 (/x.so)
`);
  assert.equal(p.samples.length, 1);
  assert.deepEqual(foldedStacks(p), [['b;a', 1]]);
  assert.equal(p.meta.extra!.skippedLines, 3);
});

test('errors: stack lines outside samples, unreadable headers — file and line named; other text is not mine', () => {
  assert.match(parseError('\t7f00 foo (/lib.so)\n').message, /^bad\.perf:1: stack line before any sample header/);
  assert.match(parseError('# comment\n\n\t7f00 foo (/lib.so)\n').message, /^bad\.perf:3: stack line before any sample header/);
  const ok = 'python3.12 100 [000] 1.000100: 1000 task-clock: \n\t1 a+0x1 (/x.so)\n\n';
  assert.match(parseError(`${ok}\t2 b+0x2 (/x.so)\n`).message, /^bad\.perf:4: stack line outside a sample/);
  assert.match(parseError(`${ok}${ok}garbage line here\n\t2 b (/x.so)\n`).message, /^bad\.perf:7: cannot read a sample header/);
  assert.match(parseError(`${ok}python3.12 100 [000] 1.000200 task-clock:\n`).message, /^bad\.perf:4: cannot read a sample header/);
  for (const text of ['', 'main;a;b 3\n', '@[\n    a+1\n]: 3\n', '{"traceEvents": []}', 'P1;T0x7f;mixed.py:main:3 10\n', '# just a comment\n', 'Attaching 1 probe...\n']) {
    assert.equal(perfScriptImporter.detect(InputFile.fromText(text)), false, text);
    assert.equal(perfScriptImporter.parse(InputFile.fromText(text)), NOT_MINE, text);
  }
  assert.equal(perfScriptImporter.parse(new InputFile(Uint8Array.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]))), NOT_MINE);
});

test('truncated input: a cut in the last sample keeps what is complete', () => {
  const bytes = readFileSync(join(FIXTURES, 'perf', FIXTURE_FILES[0]!));
  const full = imp(bytes);
  for (const cut of [0.25, 0.5, 0.999]) {
    const n = Math.floor(bytes.length * cut);
    let p: Profile | undefined;
    try {
      p = imp(bytes.subarray(0, n));
    } catch (e) {
      assert.ok(e instanceof ParseError, String(e));
      continue;
    }
    assert.ok(p.samples.length <= full.samples.length);
    assert.ok(p.samples.length >= Math.floor(full.samples.length * cut * 0.8), `${p.samples.length} of ${full.samples.length} at ${cut}`);
  }
});

test('the block cache gives exactly what line-by-line reading gives', () => {
  // Space-led frame lines take the line-by-line path (no block cache, no tails); tab-led ones the cached path.
  const r = rng(5);
  const lines = ['a+0x1 (/x.so)', 'b+0x2 (inlined)', 'b2+0x2 (inlined)', 'c+0x3 (/y.so)', 'd+0x4 (/x.so)', 'py::f:/app.py+0x5 (/tmp/perf-9.map)', 'e+0x6 (inlined)', '[unknown] ([unknown])', 'ffff_k (inlined)'];
  const line = () => {
    const k = Math.floor(r() * lines.length);
    const addr = k === 8 ? 'ffffffff81000000' : (0x1000 + Math.floor(r() * 3)).toString(16);
    return `\t${addr} ${lines[k]}\n`;
  };
  // shared callers (trunks of 0–30 lines) under a few random leaf lines: leaf cuts and root cuts both hit
  const trunks = Array.from({ length: 6 }, () => Array.from({ length: Math.floor(r() * 31) }, line).join(''));
  let text = '';
  for (let i = 0; i < 600; i++) {
    text += `app ${10 + (i % 3)} [000] 5.${String(i).padStart(6, '0')}: 1000 cpu-clock: \n`;
    const top = Math.floor(r() * 6);
    for (let d = 0; d < top; d++) text += line();
    text += trunks[Math.floor(r() * trunks.length)]!;
    text += '\n';
  }
  for (const file of [...FIXTURE_FILES.map((f) => readFileSync(join(FIXTURES, 'perf', f), 'latin1')), text]) {
    const cached = imp(Buffer.from(file, 'latin1'));
    const slow = imp(Buffer.from(file.replaceAll('\n\t', '\n        '), 'latin1'));
    assert.deepEqual(foldedStacks(cached), foldedStacks(slow));
    for (let i = 0; i < cached.samples.length; i++) assert.deepEqual(sampleFrames(cached, i), sampleFrames(slow, i));
    assert.deepEqual(cached.samples.thread, slow.samples.thread);
    assert.deepEqual(cached.samples.time, slow.samples.time);
  }
});

for (const file of FIXTURE_FILES) {
  test(`fixture perf/${file}: detected, golden, python / native / kernel frames`, () => {
    const input = fixture(`perf/${file}`);
    const p = detectsWithoutName(input, 'perf-script');
    goldenSummary(`perf-${file.replace(/[/.]/g, '-').replace(/-txt$/, '')}`, p);
    const text = input.text();
    const headers = text.split('\n').filter((l) => l !== '' && !l.startsWith('#') && !l.startsWith('\t'));
    assert.equal(p.samples.length, headers.length);
    assert.equal(p.meta.sampleCount, headers.length);
    assert.ok(p.meta.rateHz! > 0);
    assert.deepEqual(p.valueTypes.map((v) => v.name), ['samples', 'cpu']);
    const rows = aggregate(p).rows;
    const kinds = (kind: string) => new Set(rows.filter((r) => r.kind === kind).map((r) => r.name));
    assert.ok(kinds('kernel').has('do_syscall_64'), 'the syscall phase reaches the kernel');
    assert.ok([...kinds('native')].some((n) => n.startsWith('_PyEval_EvalFrameDefault')));
    const names = threads(p).map((t) => t.replace(/ \(.*/, ''));
    assert.ok(names.includes('worker alpha') && names.includes('worker-beta'), names.join(', '));
    if (!file.includes('fp-no-py')) {
      const py = kinds('python');
      for (const fn of ['inner_hot', 'fib', 'berechne_größe', 'alpha_spin', 'compress_blob', 'hash_blob', 'stat_files']) assert.ok(py.has(fn), `python frame ${fn}`);
      const pids = new Set(p.threads.pid);
      assert.equal(pids.size, 1, 'all threads in one process');
    }
    if (file.includes('jit')) {
      const py = kinds('python');
      for (const fn of ['<module>', 'main', 'phase_loop', 'outer_work', 'Thread.run']) assert.ok(py.has(fn), `python frame ${fn} through the trampolines`);
    }
    if (file.includes('header')) {
      assert.ok(p.meta.environment.hostname);
      assert.equal(p.meta.rateHz, Number(/sample_freq \} = (\d+)/.exec(text)![1]), 'the rate perf recorded');
      assert.ok(p.meta.command!.some((a) => a.endsWith('mixed.py')));
    }
  });
}

test('fixture perf/3.12/perf-script-sched-switch.txt: off-cpu stacks from a tracepoint', () => {
  const input = fixture('perf/3.12/perf-script-sched-switch.txt');
  const p = detectsWithoutName(input, 'perf-script');
  goldenSummary('perf-3-12-perf-script-sched-switch', p);
  assert.equal(p.meta.mode, 'off-cpu');
  assert.deepEqual(p.valueTypes, [{ name: 'samples', unit: 'samples' }]);
  assert.equal(p.meta.extra!.event, 'sched:sched_switch');
  assert.equal(p.meta.rateHz, undefined);
  assert.ok(p.samples.state.every((s) => s === 2), 'every sample off-cpu');
  const top = aggregate(p).rows;
  assert.equal(top[0]!.name, '__schedule', 'every stack ends in the scheduler');
  assert.equal(top[0]!.kind, 'kernel');
  assert.ok(top.some((r) => r.name === 'clock_nanosleep@GLIBC_2.2.5' && r.kind === 'native'), 'time.sleep in the worker threads');
  assert.ok(threads(p).some((t) => t.startsWith('worker alpha ')));
});

test('fuzz: mutated perf script never throws anything but ParseError', () => {
  let parseErrors = 0;
  [...FIXTURE_FILES, '3.12/perf-script-sched-switch.txt'].forEach((f, i) => (parseErrors += rejectsGarbage(perfScriptImporter, readFileSync(join(FIXTURES, 'perf', f)), 150, 41 + i).parseErrors));
  assert.ok(parseErrors > 0);
});
