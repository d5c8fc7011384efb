/**
 * The perf lens's decisions: access checks, the plan per CPython build, finding the
 * interpreter of a command, perf's error text explained, folding CPython's frames out of
 * real perf fixtures — and the access checks against the real kernel as an unprivileged user.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/format-checks.ts';
import { checkPerfAccess, explainPerfStderr, PerfError, readPerfAccess, type PerfAccess } from '../../src/capture/perf/tool.ts';
import { planAttach, planLaunch, pythonOfCommand, type PythonBuild } from '../../src/capture/perf/python.ts';
import { hideInterpreter, isPlumbing } from '../../src/analysis/interpreter.ts';
import { perfScriptImporter } from '../../src/formats/perf-script.ts';
import { InputFile, NOT_MINE } from '../../src/formats/types.ts';
import { frameInfo, stackFrames, type Profile } from '../../src/model/profile.ts';
import { decodePylens } from '../../src/formats/pylens.ts';

const user = (over: Partial<PerfAccess>): PerfAccess => ({
  paranoid: 2, kptrRestrict: 0, uid: 1000, capPerfmon: false, capSysAdmin: false, capSyslog: false, tracefs: '/sys/kernel/tracing', ...over,
});

test('access: paranoid 3 refuses an unprivileged user, with the sysctl and the capability in the fix', () => {
  assert.throws(() => checkPerfAccess(user({ paranoid: 3 }), {}), (e: unknown) => e instanceof PerfError && /paranoid is 3/.test(e.message) && /perf_event_paranoid=2/.test(e.fix) && /CAP_PERFMON/.test(e.fix));
});

test('access: paranoid 2 keeps user space and says kernel frames are left out', () => {
  const r = checkPerfAccess(user({ paranoid: 2 }), { kernel: true });
  assert.equal(r.kernel, false);
  assert.match(r.warnings.join('\n'), /kernel frames are left out/);
  assert.deepEqual(checkPerfAccess(user({ paranoid: 1 }), { kernel: true }), { warnings: [], kernel: true });
});

test('access: tracepoints and system-wide need more; CAP_PERFMON or root bypasses paranoid', () => {
  assert.throws(() => checkPerfAccess(user({ paranoid: 0 }), { tracepoints: true }), /tracepoints need -1/);
  assert.throws(() => checkPerfAccess(user({ paranoid: 1 }), { systemWide: true }), /system-wide/);
  assert.equal(checkPerfAccess(user({ paranoid: 3, capPerfmon: true }), { kernel: true, tracepoints: true, systemWide: true }).kernel, true);
  assert.equal(checkPerfAccess(user({ paranoid: 3, capSysAdmin: true }), { kernel: true }).kernel, true);
  // uid 0 is not enough: the kernel asks for the capability
  assert.throws(() => checkPerfAccess(user({ paranoid: 3, uid: 0 }), { kernel: true }), /paranoid is 3/);
});

test('access: no tracefs and no perf events are errors; kptr_restrict is a warning', () => {
  assert.throws(() => checkPerfAccess(user({ paranoid: -1, tracefs: undefined }), { tracepoints: true }), (e: unknown) => e instanceof PerfError && /mount -t tracefs/.test(e.fix));
  assert.throws(() => checkPerfAccess(user({ paranoid: undefined }), {}), /no perf events/);
  assert.match(checkPerfAccess(user({ paranoid: 1, kptrRestrict: 1 }), { kernel: true }).warnings.join(''), /kptr_restrict is 1/);
  assert.deepEqual(checkPerfAccess(user({ paranoid: 1, kptrRestrict: 1, capSyslog: true }), { kernel: true }).warnings, []);
});

test('access facts are read from /proc/self/status capabilities and the sysctls', () => {
  const files: Record<string, string> = {
    '/proc/sys/kernel/perf_event_paranoid': '2\n',
    '/proc/sys/kernel/kptr_restrict': '1\n',
    // CAP_PERFMON (38) only
    '/proc/self/status': 'Name:\tx\nUid:\t1000\t1000\t1000\t1000\nCapEff:\t0000004000000000\n',
  };
  const a = readPerfAccess((p) => files[p], (p) => p === '/sys/kernel/tracing/events');
  assert.deepEqual(a, { paranoid: 2, kptrRestrict: 1, uid: 1000, capPerfmon: true, capSysAdmin: false, capSyslog: false, tracefs: '/sys/kernel/tracing' });
});

test("perf's error text is turned into the fix", () => {
  const para = explainPerfStderr('Error:\nAccess to performance monitoring and observability operations is limited.\nConsider adjusting /proc/sys/kernel/perf_event_paranoid setting', 'perf record');
  assert.ok(para && /refused access/.test(para.message) && /perf_event_paranoid=1/.test(para.fix));
  const ev = explainPerfStderr("Error:\nThe cycles:u event is not supported.", 'perf record');
  assert.ok(ev && /cpu-clock/.test(ev.fix));
  assert.equal(explainPerfStderr('something new', 'perf record'), undefined);
});

const build = (over: Partial<PythonBuild>): PythonBuild => ({ executable: '/x/python3', version: '3.13.0', major: 3, minor: 13, framePointers: false, perfTrampoline: true, cflags: '-O3', ...over });

test('plan: 3.13 without frame pointers gets perf_jit + inject + dwarf; with them, -X perf + fp', () => {
  const a = planLaunch(build({}), 'auto');
  assert.deepEqual([a.callGraph, a.jit, a.env, a.pythonFrames], ['dwarf', true, { PYTHON_PERF_JIT_SUPPORT: '1' }, 'full']);
  assert.match(a.summary, /perf_jit.*dwarf.*without frame pointers/);
  const b = planLaunch(build({ framePointers: true }), 'auto');
  assert.deepEqual([b.callGraph, b.jit, b.env, b.pythonFrames], ['fp', false, { PYTHONPERFSUPPORT: '1' }, 'full']);
});

test('plan: 3.12 dwarf sees the innermost Python frame and says so; 3.11 has no perf support', () => {
  const a = planLaunch(build({ version: '3.12.1', minor: 12 }), 'auto');
  assert.deepEqual([a.callGraph, a.jit, a.env, a.pythonFrames], ['dwarf', false, { PYTHONPERFSUPPORT: '1' }, 'innermost']);
  assert.match(a.notes.join(), /record --native/);
  const b = planLaunch(build({ version: '3.11.7', minor: 11, perfTrampoline: false }), 'auto');
  assert.equal(b.pythonFrames, 'none');
  assert.match(b.notes.join(), /no perf support \(it came in 3\.12\).*record --native/);
  const c = planLaunch(build({ version: '3.11.7', minor: 11, perfTrampoline: false }), 'fp');
  assert.match(c.notes.join(), /without frame pointers: --call-graph fp stacks will be short/);
});

test('plan: attaching says what the process lacks and offers record --native', () => {
  const none = planAttach({ pid: 42, executable: '/x/python3.12', perfMap: false, jitDump: false }, build({ version: '3.12.1', minor: 12 }), 'auto');
  assert.equal(none.pythonFrames, 'none');
  assert.match(none.notes.join(), /not started with perf support.*-X perf_jit.*record --native -p 42/);
  const map = planAttach({ pid: 42, executable: '/x/python3.12', perfMap: true, jitDump: false }, build({ version: '3.12.1', minor: 12 }), 'auto');
  assert.deepEqual([map.jit, map.pythonFrames], [false, 'innermost']);
  const jit = planAttach({ pid: 42, executable: '/x/python3.13', perfMap: false, jitDump: true }, build({}), 'auto');
  assert.equal(jit.jit, true);
});

test('the interpreter of a command: python itself, or the #! of a script (also through env)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-shebang-'));
  const env = { PATH: `${dir}:/usr/bin:/bin` };
  writeFileSync(join(dir, 'tool'), '#!/usr/bin/env python3\nprint(1)\n');
  writeFileSync(join(dir, 'direct'), '#!/usr/bin/python3 -u\n');
  writeFileSync(join(dir, 'shell'), '#!/bin/sh\necho\n');
  for (const f of ['tool', 'direct', 'shell']) chmodSync(join(dir, f), 0o755);
  assert.equal(pythonOfCommand(['python3', 'app.py'], env), '/usr/bin/python3');
  assert.equal(pythonOfCommand(['tool', '-x'], env), '/usr/bin/python3');
  assert.equal(pythonOfCommand([join(dir, 'direct')], env), '/usr/bin/python3');
  assert.equal(pythonOfCommand(['shell'], env), undefined);
  assert.equal(pythonOfCommand(['no-such-command'], env), undefined);
});

function fixture(rel: string): Profile {
  const path = join(ROOT, 'fixtures', 'perf', rel);
  const p = perfScriptImporter.parse(new InputFile(readFileSync(path), path));
  assert.notEqual(p, NOT_MINE);
  return p as Profile;
}

const labels = (p: Profile, s: number) => stackFrames(p, s).map((f) => frameInfo(p, f));

test('hideInterpreter on a 3.13 perf_jit capture: Python frames in order, no libpython between them, native leaves kept', () => {
  const raw = fixture('3.13/perf-script-jit.txt');
  const p = hideInterpreter(raw);
  assert.equal(p.meta.sampleCount, raw.meta.sampleCount);
  let pythonStacks = 0;
  let deflateUnderCompress = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const fr = labels(p, p.samples.stack[i]!);
    const firstPy = fr.findIndex((f) => f.kind === 'python');
    if (firstPy < 0) continue;
    pythonStacks++;
    assert.equal(firstPy, 0, `native frames before the outermost Python frame: ${fr.map((f) => f.name).join(';')}`);
    const lastPy = fr.map((f) => f.kind).lastIndexOf('python');
    for (const f of fr.slice(0, lastPy)) {
      assert.ok(!(f.kind === 'native' && f.lib && /^libpython/.test(f.lib)), `libpython frame ${f.name} between Python frames`);
    }
    for (const f of fr) assert.ok(!(f.kind === 'native' && isPlumbing(f.name, f.lib)), `plumbing frame ${f.name} kept`);
    const names = fr.map((f) => f.name);
    const c = names.indexOf('compress_blob');
    if (c >= 0 && names.indexOf('deflate') > c) deflateUnderCompress++;
  }
  assert.ok(pythonStacks > raw.samples.length * 0.8, `${pythonStacks} of ${raw.samples.length} stacks have Python frames`);
  assert.ok(deflateUnderCompress > 10, `deflate under compress_blob in ${deflateUnderCompress} samples`);
  // the raw capture had the eval loop everywhere
  const rawNames = new Set(Array.from({ length: raw.frames.length }, (_, f) => raw.strings[raw.frames.name[f]!]));
  assert.ok(rawNames.has('_PyEval_EvalFrameDefault') && rawNames.has('py_trampoline_evaluator'));
});

test('hideInterpreter leaves stacks without Python frames alone', () => {
  const raw = fixture('3.12/perf-script-fp-no-py-frames.txt');
  const p = hideInterpreter(raw);
  let same = 0;
  for (let i = 0; i < raw.samples.length; i++) {
    const a = labels(raw, raw.samples.stack[i]!);
    if (a.some((f) => f.kind === 'python')) continue;
    assert.deepEqual(labels(p, p.samples.stack[i]!).map((f) => f.name), a.map((f) => f.name));
    same++;
  }
  assert.ok(same > 0);
});

// The same checks against the real kernel without privileges: setpriv drops every capability
// (uid 0 stays, so the checkout stays readable, but with noroot securebits it gives no power).
const paranoid = Number(readFileSync('/proc/sys/kernel/perf_event_paranoid', 'utf8'));
const canDrop = process.getuid?.() === 0 && spawnSync('setpriv', ['--version']).status === 0 && spawnSync('perf', ['--version']).status === 0;
const asNobody = (args: string[]) =>
  spawnSync('setpriv', ['--securebits=+noroot,+noroot_locked', '--bounding-set=-all', '--inh-caps=-all', process.execPath, join(ROOT, 'src', 'cli', 'main.ts'), ...args], { encoding: 'utf8', timeout: 120_000 });

test('without capabilities, paranoid 2: sched is refused with the fix; perf records user space only and says so', { skip: (!canDrop && 'needs root, setpriv and perf') || (paranoid !== 2 && `perf_event_paranoid is ${paranoid}, not 2`) || (!existsSync('/usr/bin/python3') && 'no /usr/bin/python3') }, () => {
  const s = asNobody(['sched', '-d', '1', '--', 'true']);
  assert.equal(s.status, 1, s.stderr);
  assert.match(s.stderr, /perf_event_paranoid is 2: tracepoints need -1 or CAP_PERFMON/);
  assert.match(s.stderr, /fix: sudo sysctl kernel\.perf_event_paranoid=-1/);
  const dir = mkdtempSync(join(tmpdir(), 'pylens-nocaps-'));
  const out = join(dir, 'u.pylens');
  const p = asNobody(['perf', '-F', '499', '-o', out, '--', '/usr/bin/python3', '-c', 'sum(i*i for i in range(3000000))']);
  assert.equal(p.status, 0, p.stderr);
  assert.match(p.stderr, /kernel frames are left out \(user space only\)/);
  const prof = decodePylens(readFileSync(out), out);
  assert.ok(prof.meta.sampleCount > 20, `${prof.meta.sampleCount} samples`);
  assert.equal(prof.frames.kind.filter((k) => k === 'kernel').length, 0);
  assert.match(String(prof.meta.extra?.event), /:u$/);
});
