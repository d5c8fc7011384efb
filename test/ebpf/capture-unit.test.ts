/**
 * eBPF capture, no kernel needed: the generated programs, the parsers on real captured
 * bpftrace output (fixtures/ebpf/, each with the program that made it), the fallbacks'
 * parsers, and the environment checks on synthetic facts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES } from '../helpers/format-checks.ts';
import { bareSymbol, intervalsFromSched, mergeRecords, OffCpuOutputParser, offCpuProgram, parseOffcputime, stateLetter, type RawRecord } from '../../src/capture/ebpf/offcpu.ts';
import { CpuOutputParser, cpuProgram, NO_STACK } from '../../src/capture/ebpf/cpu.ts';
import { UserSymbolizer } from '../../src/capture/ebpf/symbolize.ts';
import { ElfFile } from '../../src/capture/sampler/elf.ts';
import { checkEbpfAccess, EbpfError, explainTracerStderr, memlockMatters, readEbpfFacts, tracerArgv, type EbpfFacts } from '../../src/capture/ebpf/tool.ts';
import { PerfError } from '../../src/capture/perf/tool.ts';
import { parseSchedScript } from '../../src/capture/perf/sched.ts';

const fx = (name: string) => readFileSync(join(FIXTURES, 'ebpf', name), 'utf8');

// ---------------------------------------------------------------------------------------
// Programs

test('offCpuProgram: target filter, threshold, buckets, GIL probes only when given', () => {
  const p = offCpuProgram({ pid: 4242, minBlockUs: 25, bucketNs: 5_000_000, gil: { kind: 'uprobe', file: '/opt/py/lib/libpython3.12.so.1.0', symbol: 'take_gil' } });
  assert.match(p, /tracepoint:sched:sched_switch/);
  assert.match(p, /pid == 4242 && args->prev_pid != 0/);
  assert.match(p, /\$d >= 25000\)/);
  assert.match(p, /\$o\.0 \/ 5000000;/);
  assert.match(p, /^uprobe:\/opt\/py\/lib\/libpython3\.12\.so\.1\.0:take_gil \/pid == 4242\//m);
  assert.match(p, /^uretprobe:\/opt\/py\/lib\/libpython3\.12\.so\.1\.0:take_gil /m);
  assert.match(p, /@gil\[args->prev_pid\]/);
  // three maps take turns; no else branch around print/clear (bpftrace 0.17 drops them)
  for (const m of ['@m0', '@m1', '@m2']) assert.match(p, new RegExp(`print\\(${m}\\); clear\\(${m}\\);`));
  assert.doesNotMatch(p, /else\s*\{\s*print/);
  assert.match(p, /BEGIN \{ printf\("pylens-ready/);
  const q = offCpuProgram({ pid: 7, minBlockUs: 1, bucketNs: 10_000_000 });
  assert.doesNotMatch(q, /uprobe|@gil/);
  assert.match(q, /\$d >= 1000\)/);
  assert.throws(() => offCpuProgram({ pid: 0, minBlockUs: 1, bucketNs: 1 }), RangeError);
  assert.throws(() => offCpuProgram({ pid: 1, minBlockUs: 1, bucketNs: 1, gil: { kind: 'uprobe', file: '/a b/lib.so', symbol: 'take_gil' } }), RangeError);
  assert.throws(() => offCpuProgram({ pid: 1, minBlockUs: 1, bucketNs: 1, gil: { kind: 'futex', start: 100, end: 100, threadSize: 16384, futexSyscall: 202 } }), RangeError);
});

test('offCpuProgram: GIL waits by futex address read from the saved user registers, no probe', () => {
  const p = offCpuProgram({ pid: 4242, minBlockUs: 1, bucketNs: 10_000_000, gil: { kind: 'futex', start: 0x7f0000001000, end: 0x7f0000001000 + 208, threadSize: 16384, futexSyscall: 202 } });
  assert.doesNotMatch(p, /uprobe|uretprobe|@gil/);
  assert.match(p, /\(struct pt_regs \*\)\(\(uint64\)curtask->stack \+ 16384 - sizeof\(struct pt_regs\)\)/);
  assert.match(p, new RegExp(`\\$r->orig_ax == 202 && \\$r->di >= ${0x7f0000001000} && \\$r->di < ${0x7f0000001000 + 208}`));
  // the flag goes where the uprobe's map value went
  assert.match(p, /@off\[args->prev_pid\] = \(\$now, kstack\(\d+\), args->prev_state, \$gw, comm\);/);
});

test('cpuProgram: one process or all but idle, rate checked', () => {
  const p = cpuProgram({ pid: 99, hz: 49 });
  assert.match(p, /^profile:hz:49 \/pid == 99\/$/m);
  // one record per sample: header, kernel stack, user stack; no maps
  assert.match(p, /printf\("S %d %d %llu %s\\n%s\\nE\\n", pid, tid, nsecs, comm, kstack\(\d+\)\)/);
  assert.match(p, /ustack\(\d+\)/);
  assert.doesNotMatch(p, /@/);
  assert.match(cpuProgram({ all: true, hz: 99 }), /^profile:hz:99 \/pid != 0\/$/m);
  assert.throws(() => cpuProgram({ hz: 99 }), RangeError);
  assert.throws(() => cpuProgram({ pid: 1, hz: 0 }), RangeError);
});

// ---------------------------------------------------------------------------------------
// Parsing real output

test('stateLetter and bareSymbol', () => {
  assert.equal(stateLetter(1), 'S');
  assert.equal(stateLetter(2), 'D');
  assert.equal(stateLetter(0), 'R');
  assert.equal(stateLetter(256), 'R');
  assert.equal(stateLetter(0x80), 'I');
  assert.equal(bareSymbol('    do_nanosleep+94'), 'do_nanosleep');
  assert.equal(bareSymbol('finish_task_switch.isra.0+0x1a'), 'finish_task_switch.isra.0');
  assert.equal(bareSymbol('0xffffffff81000000'), '0xffffffff81000000');
});

test('off-CPU fixture (a thread sleeping 40 x 50 ms, stopped with SIGINT): every interval once', () => {
  const text = fx('offcpu-sleep.txt');
  const program = fx('offcpu-sleep.bt');
  const pid = Number(/of process (\d+)/.exec(program)![1]);
  const p = new OffCpuOutputParser(pid);
  for (const l of text.split('\n')) p.line(l);
  assert.ok(p.readyNs! > 0 && p.endNs! > p.readyNs!);
  assert.deepEqual(p.skipped, []);
  // this capture shows bpftrace 0.17 printing the flushed map again at exit (its clear() was
  // not processed yet): the same entries, same generation, appear twice in the text
  const closing = text.split('\n').filter((l) => /^, .*\]: \(\d+, \d+, \d+, \d+\)$/.test(l));
  const distinct = new Set(closing);
  assert.ok(closing.length > distinct.size, 'the fixture has entries printed twice');
  // open intervals close when pylens asked bpftrace to stop (here: 1 ms after the last switch-in)
  const lastIn = Math.max(...p.records.map((r) => r.endNs));
  const intervals = p.finish(10_000_000, lastIn + 1e6);
  assert.equal(p.open.length, 1);
  const sleeps = intervals.filter((i) => i.kstack.includes('do_nanosleep') && i.startNs !== p.open[0]!.startNs);
  const sleepEntries = new Set([...text.matchAll(/^@m\d\[[^\]]*?\]: \(\d+, \d+, \d+, \d+\)$/gm)].map((m) => m[0]).filter((e) => e.includes('do_nanosleep')));
  assert.equal(sleeps.reduce((a, i) => a + i.count, 0), sleepEntries.size);
  assert.ok(sleepEntries.size >= 20);
  for (const s of sleeps) {
    assert.equal(s.state, 'S');
    assert.equal(s.gilWait, false);
    assert.ok(s.blockedNs >= 50e6 * s.count && s.blockedNs < 60e6 * s.count, `${s.blockedNs}`);
    assert.ok(s.endNs - s.startNs >= s.blockedNs);
    assert.ok(s.startNs >= p.readyNs! - 1e9 && s.endNs <= p.endNs!);
    assert.ok(s.kstack.every((f) => !/\+\d+$/.test(f)));
    assert.equal(s.kstack[0], '__schedule');
    assert.ok(s.kstack.includes('hrtimer_nanosleep'));
  }
  // the sleeper was off the CPU when recording stopped: its open interval ends then
  const open = intervals.find((i) => i.startNs === p.open[0]!.startNs && i.tid === p.open[0]!.tid);
  assert.ok(open && open.endNs === lastIn + 1e6 && open.count === 1 && open.kstack.includes('do_nanosleep'));
});

test('mergeRecords: the same generation once, different generations summed', () => {
  const base: RawRecord = { pid: 1, tid: 2, comm: 'x', kstack: ['a', 'b'], startNs: 100, endNs: 200, blockedNs: 100, count: 1, gilWait: false, state: 'S', startBucket: 0, endBucket: 0, gen: 0, rawStack: 'a+1\nb+2' };
  const out = mergeRecords([base, { ...base }, { ...base, gen: 1, startNs: 50, endNs: 300, blockedNs: 30, count: 2 }]);
  assert.equal(out.length, 1);
  assert.deepEqual({ ...out[0] }, { pid: 1, tid: 2, comm: 'x', kstack: ['a', 'b'], startNs: 50, endNs: 300, blockedNs: 130, count: 3, gilWait: false, state: 'S' });
  // different printed stacks that strip to the same names are two entries, then merged
  assert.equal(mergeRecords([base, { ...base, rawStack: 'a+9\nb+2' }])[0]!.count, 2);
  // the GIL flag and state keep records apart
  assert.equal(mergeRecords([base, { ...base, gilWait: true }, { ...base, state: 'D' }]).length, 3);
});

test('CPU fixture (a spinning CPython, 49 Hz, one record per sample): every sample once, user frames unresolved', () => {
  const text = fx('cpu-spin.txt');
  const pid = Number(/pid == (\d+)/.exec(fx('cpu-spin.bt'))![1]);
  const p = new CpuOutputParser();
  for (const l of text.split('\n')) p.line(l);
  assert.deepEqual(p.skipped, []);
  const samples = p.samples();
  assert.equal(samples.length, text.match(/^S \d+ /gm)!.length);
  for (const s of samples) {
    assert.equal(s.pid, pid);
    assert.equal(s.tid, pid);
    assert.equal(s.count, 1);
    assert.ok(s.ustack.length > 0 && s.ustack.every((f) => /^0x[0-9a-f]+$/.test(f)), s.ustack.join(','));
    assert.ok(s.timeNs >= p.readyNs! && s.timeNs <= p.endNs!);
  }
  // 49 Hz for ~1.4 s of a thread that never sleeps
  const secs = (p.endNs! - p.readyNs!) / 1e9;
  assert.ok(samples.length > 49 * secs * 0.5 && samples.length < 49 * secs * 1.5, `${samples.length} samples in ${secs} s`);
});

test('CPU parser: a sample the kernel recorded no stack for is kept under a frame that says so, and counted', () => {
  const p = new CpuOutputParser();
  for (const l of ['S 7 8 100 py', '', 'E', '', 'U', 'S 7 8 200 py', '        do_syscall_64', 'E', '', 'U', 'S 7 9 300 py', '', 'E', '        0x10', 'U']) p.line(l);
  const s = p.samples();
  assert.deepEqual(s.map((x) => [x.timeNs, x.kstack, x.ustack]), [
    [100, [], [NO_STACK]],
    [200, ['do_syscall_64'], []],
    [300, [], ['0x10']],
  ]);
  assert.equal(p.stackless, 1);
});

test('CPU parser with a symbolizer: user addresses named through the maps and ELF symbols of a live process', () => {
  // this very process: an address inside a libc function is named after it
  const maps = readFileSync(`/proc/${process.pid}/maps`, 'utf8');
  const libc = /^([0-9a-f]+)-[0-9a-f]+ r-xp ([0-9a-f]+) \S+ \d+\s+(\S*libc\.so\.6)$/m.exec(maps);
  if (!libc) return;
  const elf = ElfFile.read(libc[3]!);
  const sym = elf.symbols('.dynsym').get('getpid')!;
  const text = elf.programHeaders.find((h) => h.type === 1 && sym.value >= h.vaddr && sym.value < h.vaddr + h.memsz)!;
  const addr = Number.parseInt(libc[1]!, 16) - Number.parseInt(libc[2]!, 16) + (sym.value - text.vaddr + text.offset) + 1;
  const p = new CpuOutputParser(new UserSymbolizer());
  for (const l of [`S ${process.pid} ${process.pid} 5 node`, '', 'E', `        0x${addr.toString(16)}`, '        0x10', 'U']) p.line(l);
  const [s] = p.samples();
  assert.equal(s!.ustack[0], 'getpid');
  assert.equal(s!.ulibs![0], 'libc.so.6');
  assert.equal(s!.ustack[1], '[unknown]');
});

test('parseOffcputime: bcc\'s multi-line output (hand-written in its documented shape)', () => {
  const text = `Tracing off-CPU time (us) of PID 500 by kernel stack... Hit Ctrl-C to end.

    finish_task_switch.isra.0
    __schedule
    schedule
    do_nanosleep
    hrtimer_nanosleep
    -                python3 (501)
        1002345

    finish_task_switch.isra.0
    __schedule
    schedule
    futex_wait_queue
    -                my worker (502)
        40

`;
  const r = parseOffcputime(text, 500, 1000, 5000);
  assert.equal(r.length, 2);
  assert.deepEqual({ ...r[0] }, { pid: 500, tid: 501, comm: 'python3', kstack: ['finish_task_switch.isra.0', '__schedule', 'schedule', 'do_nanosleep', 'hrtimer_nanosleep'], startNs: 1000, endNs: 5000, blockedNs: 1_002_345_000, count: 1, gilWait: false, state: '?' });
  assert.equal(r[1]!.comm, 'my worker');
  assert.equal(r[1]!.blockedNs, 40_000);
});

test('intervalsFromSched: switch-out to switch-in, runnable tail included, kernel frames only', () => {
  const trace = parseSchedScript(`
         python3   100/101   [000] 1.000000000:       sched:sched_switch: prev_comm=python3 prev_pid=101 prev_prio=120 prev_state=S ==> next_comm=swapper/0 next_pid=0 next_prio=120
\tffffffff81000001 __schedule+0x10 ([kernel.kallsyms])
\tffffffff81000002 do_nanosleep ([kernel.kallsyms])
\t    7f0000000001 clock_nanosleep@GLIBC_2.2.5 (/usr/lib/x86_64-linux-gnu/libc.so.6)

         swapper     0/0     [000] 1.050000000:       sched:sched_wakeup: comm=python3 pid=101 prio=120 target_cpu=000
         swapper     0/0     [000] 1.052000000:       sched:sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=python3 next_pid=101 next_prio=120
         python3   100/101   [000] 1.060000000:       sched:sched_switch: prev_comm=python3 prev_pid=101 prev_prio=120 prev_state=D ==> next_comm=swapper/0 next_pid=0 next_prio=120
\tffffffff81000001 __schedule ([kernel.kallsyms])
\tffffffff81000004 io_schedule ([kernel.kallsyms])

         swapper     0/0     [000] 1.061000000:       sched:sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=python3 next_pid=101 next_prio=120
         python3   100/101   [000] 1.070000000:       sched:sched_switch: prev_comm=python3 prev_pid=101 prev_prio=120 prev_state=S ==> next_comm=swapper/0 next_pid=0 next_prio=120
\tffffffff81000001 __schedule ([kernel.kallsyms])

           other   200/200   [001] 1.080000000:       sched:sched_switch: prev_comm=other prev_pid=200 prev_prio=120 prev_state=S ==> next_comm=swapper/1 next_pid=0 next_prio=120
`);
  const r = intervalsFromSched(trace, [101], 100, 1000, 10_000_000);
  assert.equal(r.length, 3);
  assert.deepEqual([r[0]!.startNs, r[0]!.endNs, r[0]!.blockedNs, r[0]!.state], [1_000_000_000, 1_052_000_000, 52_000_000, 'S']);
  assert.deepEqual(r[0]!.kstack, ['__schedule', 'do_nanosleep']);
  assert.deepEqual([r[1]!.blockedNs, r[1]!.state, r[1]!.kstack], [1_000_000, 'D', ['__schedule', 'io_schedule']]);
  // still off the CPU at the end of the trace: closed there
  assert.deepEqual([r[2]!.startNs, r[2]!.endNs], [1_070_000_000, 1_080_000_000]);
  // the threshold drops the 1 ms one
  assert.equal(intervalsFromSched(trace, [101], 100, 2_000_000, 10_000_000).length, 2);
});

// ---------------------------------------------------------------------------------------
// Environment checks on synthetic facts

const ok: EbpfFacts = { kernel: '6.1.0-13-amd64', uid: 0, capBpf: true, capPerfmon: true, capSysAdmin: true, capSysResource: true, tracefs: '/sys/kernel/tracing', btf: true, memlock: { soft: 8 << 20, hard: 8 << 20 }, container: undefined, lockdown: 'none' };
const fails = (f: Partial<EbpfFacts>, re: RegExp, fix: RegExp) => {
  assert.throws(() => checkEbpfAccess({ ...ok, ...f }, { tool: 'bpftrace' }), (e: unknown) => {
    assert.ok(e instanceof EbpfError && e instanceof PerfError);
    assert.match(e.message, re);
    assert.match(e.fix, fix);
    return true;
  });
};

test('checkEbpfAccess: each refusal with its fix', () => {
  assert.deepEqual(checkEbpfAccess(ok, { tool: 'bpftrace' }), { warnings: [], raiseMemlock: false });
  fails({ uid: 1000 }, /root only/, /sudo/);
  fails({ uid: 1000, container: 'kubernetes' }, /root only/, /privileged pod.*hostPID.*DaemonSet/);
  fails({ capBpf: false, capSysAdmin: false }, /without CAP_BPF/, /CAP_BPF/);
  fails({ capPerfmon: false, capSysAdmin: false, container: 'docker' }, /without CAP_PERFMON/, /--cap-add BPF --cap-add PERFMON/);
  fails({ tracefs: undefined }, /tracefs is not mounted/, /mount -t tracefs tracefs \/sys\/kernel\/tracing/);
  fails({ tracefs: undefined, container: 'docker' }, /tracefs/, /-v \/sys\/kernel\/tracing/);
  fails({ lockdown: 'confidentiality' }, /lockdown/, /lockdown=integrity/);
  // CAP_SYS_ADMIN alone is enough (kernels before 5.8 have no CAP_BPF/CAP_PERFMON)
  assert.doesNotThrow(() => checkEbpfAccess({ ...ok, capBpf: false, capPerfmon: false }, { tool: 'bcc' }));
  const w = checkEbpfAccess({ ...ok, btf: false }, { tool: 'bpftrace' }).warnings;
  assert.equal(w.length, 1);
  assert.match(w[0]!, /BTF.*CONFIG_DEBUG_INFO_BTF/);
});

test('checkEbpfAccess: RLIMIT_MEMLOCK matters before 5.11 only; raised when it can be', () => {
  assert.equal(memlockMatters('5.10.0-28-amd64'), true);
  assert.equal(memlockMatters('5.11.0'), false);
  assert.equal(memlockMatters('4.19.0-26-amd64'), true);
  assert.equal(checkEbpfAccess({ ...ok, kernel: '5.4.0-150-generic' }, { tool: 'bpftrace' }).raiseMemlock, true);
  assert.equal(checkEbpfAccess({ ...ok, kernel: '5.4.0', memlock: { soft: Infinity, hard: Infinity } }, { tool: 'bpftrace' }).raiseMemlock, false);
  fails({ kernel: '5.4.0', capSysResource: false }, /RLIMIT_MEMLOCK is 8388608 bytes/, /ulimit -l unlimited/);
});

test('readEbpfFacts from synthetic /proc and /sys', () => {
  const files: Record<string, string> = {
    '/proc/self/status': 'Uid:\t0\t0\t0\t0\nCapEff:\t000000c000200000\n',
    '/proc/self/limits': 'Limit                     Soft Limit           Hard Limit           Units\nMax locked memory         65536                unlimited            bytes\n',
    '/proc/sys/kernel/osrelease': '5.10.0-9-amd64\n',
    '/proc/1/cgroup': '0::/kubepods/besteffort/pod1234/abc\n',
    '/sys/kernel/security/lockdown': 'none [integrity] confidentiality\n',
  };
  const f = readEbpfFacts((p) => files[p], (p) => p === '/sys/kernel/debug/tracing/events', {});
  assert.deepEqual(f, { kernel: '5.10.0-9-amd64', uid: 0, capBpf: true, capPerfmon: true, capSysAdmin: true, capSysResource: false, tracefs: '/sys/kernel/debug/tracing', btf: false, memlock: { soft: 65536, hard: Infinity }, container: 'kubernetes', lockdown: 'integrity' });
  assert.equal(checkEbpfAccess(f, { tool: 'bpftrace' }).raiseMemlock, true);
});

test('explainTracerStderr: known failures get their fix; the MEMLOCK banner alone is not blamed on new kernels', () => {
  const banner = 'ERROR: Unknown error -1: couldn\'t set RLIMIT_MEMLOCK for bpftrace. If your program is not loading, you can try "ulimit -l 8192" to fix the problem\n';
  assert.equal(explainTracerStderr(banner, 'bpftrace', '6.1.0'), undefined);
  assert.match(explainTracerStderr(`${banner}ERROR: failed to create map\n`, 'bpftrace', '5.4.0')!.fix, /ulimit -l unlimited/);
  assert.match(explainTracerStderr('ERROR: bpftrace currently only supports running as the root user.\n', 'bpftrace')!.fix, /sudo/);
  assert.match(explainTracerStderr('Unable to find kernel headers. Try rebuilding kernel with CONFIG_IKHEADERS=m\nException: Failed to compile BPF module <text>\n', 'offcputime')!.fix, /linux-headers/);
  assert.match(explainTracerStderr('ERROR: Could not resolve symbol: /x/libpython3.12.so:take_gil\n', 'bpftrace')!.message, /probe could not be placed/);
  assert.match(explainTracerStderr('ERROR: Error attaching probe: tracepoint:sched:sched_switch: Operation not permitted\n', 'bpftrace', '6.1.0')!.fix, /CAP_BPF/);
});

test('tracerArgv: parent-death signal through setpriv, else a shell watchdog; prlimit when raising memlock', () => {
  assert.deepEqual(tracerArgv('bpftrace', ['-p', '1', 'x.bt'], { setpriv: '/usr/bin/setpriv' }).argv, ['/usr/bin/setpriv', '--pdeathsig', 'TERM', 'bpftrace', '-p', '1', 'x.bt']);
  assert.deepEqual(tracerArgv('bpftrace', ['x.bt'], { setpriv: '/usr/bin/setpriv', raiseMemlock: true }).argv, ['/usr/bin/setpriv', '--pdeathsig', 'TERM', 'prlimit', '--memlock=unlimited:unlimited', 'bpftrace', 'x.bt']);
  const w = tracerArgv('bpftrace', ['x.bt'], { setpriv: null });
  assert.equal(w.watchdog, true);
  assert.equal(w.argv[0], '/bin/sh');
  assert.deepEqual(w.argv.slice(-2), ['bpftrace', 'x.bt']);
});
