/**
 * `pylens doctor`: every lens's state with its reason and fix, checked against what this
 * machine really allows — as root with capabilities, as root stripped of them (setpriv), with
 * perf missing, inside a PID namespace of its own — and `-p PID` on real processes: a pyenv
 * CPython, Debian's stripped python3, a process that is not Python, one we may not read, a
 * dead PID. A lens's permission error points to doctor.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { firstLine, installedPythons } from '../sampler/pythons.ts';
import type { DoctorView } from '../../src/render/doctor.ts';

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
const NODE = process.execPath;
const DEBIAN_PY = '/usr/bin/python3';
const pyenv = installedPythons().find((p) => p.minor === 11) ?? installedPythons().at(-1);
const hasSetpriv = spawnSync('setpriv', ['--version']).status === 0;
const hasUnshare = spawnSync('unshare', ['--version']).status === 0;

type Status = 'ready' | 'degraded' | 'unavailable';
type Check = DoctorView['lenses'][number]['checks'][number];
type Doc = DoctorView & { format: string };

function doctor(args: string[], wrap: string[] = [], env: NodeJS.ProcessEnv = process.env): { code: number | null; doc: Doc; stderr: string } {
  const argv = [...wrap, NODE, MAIN, 'doctor', '--json', ...args];
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', env, timeout: 60_000 });
  assert.ok(r.stdout, `no output: ${r.stderr}`);
  return { code: r.status, doc: JSON.parse(r.stdout) as Doc, stderr: r.stderr };
}

const lens = (d: Doc, id: string) => d.lenses.find((l) => l.id === id)!;
const check = (d: Doc, id: string, name: RegExp) => lens(d, id).checks.find((c) => name.test(c.name));
const DROP_CAPS = ['setpriv', '--inh-caps=-all', '--bounding-set=-all'];

async function sleeper(argv: string[]): Promise<ChildProcess> {
  const c = spawn(argv[0]!, [...argv.slice(1)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await firstLine(c, argv.join(' '));
  return c;
}
const SLEEP_PY = ['-c', 'import time\nprint("ready", flush=True)\ntime.sleep(60)'];

test('doctor as root with capabilities: each lens ready or degraded with a reason, every non-ready check has its fix', { timeout: 120_000 }, () => {
  const { code, doc } = doctor([]);
  assert.equal(code, 0);
  assert.equal(doc.format, 'pylens-doctor');
  assert.deepEqual(doc.lenses.map((l) => l.id), ['sampler', 'perf', 'ebpf', 'hooks']);
  const caps = new Set(doc.environment.capabilities);
  // the sampler: attach judged from the capability, the memory read really tried
  if (caps.has('SYS_PTRACE')) assert.equal(check(doc, 'sampler', /attach/)!.status, 'ready');
  assert.equal(check(doc, 'sampler', /read process memory/)!.status, 'ready');
  assert.match(check(doc, 'sampler', /read process memory/)!.detail, /tried on a child process/);
  // eBPF: this machine has bpftrace and root with CAP_BPF → it can load programs
  if (existsSync('/usr/bin/bpftrace') && caps.has('BPF') && caps.has('PERFMON')) assert.equal(check(doc, 'ebpf', /load and attach/)!.status, 'ready');
  for (const l of doc.lenses) {
    const worst = l.checks.some((c) => c.status === 'unavailable') ? 'unavailable' : l.checks.some((c) => c.status === 'degraded') ? 'degraded' : 'ready';
    assert.equal(l.status, worst, `${l.id}: its status is the worst of its checks`);
    for (const c of l.checks) if (c.status !== 'ready' && c.name !== 'attach to a running process') assert.ok(c.fix, `${l.id} / ${c.name} is ${c.status} without a fix`);
  }
  // the text form says the same
  const text = spawnSync(NODE, [MAIN, 'doctor'], { encoding: 'utf8' });
  assert.equal(text.status, 0);
  for (const t of ['sampling', 'perf', 'eBPF', 'interpreter hooks']) assert.match(text.stdout, new RegExp(`^[✓!✗] ${t} \\(`, 'm'));
});

test('doctor without capabilities (root under setpriv): attach degraded, eBPF unavailable, each with the capability to add', { skip: !hasSetpriv && 'no setpriv', timeout: 120_000 }, () => {
  const { code, doc } = doctor([], DROP_CAPS);
  assert.equal(code, 0);
  assert.deepEqual(doc.environment.capabilities, []);
  const attach = check(doc, 'sampler', /attach/)!;
  assert.equal(attach.status, 'degraded');
  assert.match(attach.fix!, /CAP_SYS_PTRACE/);
  assert.equal(lens(doc, 'ebpf').status, 'unavailable');
  assert.match(check(doc, 'ebpf', /load and attach/)!.detail, /without CAP_BPF/);
  // no CAP_PERFMON and paranoid ≥ 2 (Debian's default): the task clock is refused, the CPU rule degrades
  const para = Number(spawnSync('cat', ['/proc/sys/kernel/perf_event_paranoid'], { encoding: 'utf8' }).stdout);
  if (para >= 2) assert.equal(check(doc, 'sampler', /CPU rule/)!.status, 'degraded');
});

test('doctor with perf missing: the perf lens is unavailable with the install fix', { timeout: 60_000 }, () => {
  const { doc } = doctor([], [], { ...process.env, PYLENS_PERF: '/nonexistent/perf' });
  const p = lens(doc, 'perf');
  assert.equal(p.status, 'unavailable');
  assert.match(p.checks[0]!.detail, /nonexistent\/perf/);
  assert.match(p.checks[0]!.fix!, /install/i);
});

test('doctor -p: a pyenv CPython, Debian’s stripped python3, a process that is not Python, a dead PID', { skip: !pyenv && 'no pyenv CPython', timeout: 120_000 }, async () => {
  const a = await sleeper([pyenv!.exe, ...SLEEP_PY]);
  const b = existsSync(DEBIAN_PY) ? await sleeper([DEBIAN_PY, ...SLEEP_PY]) : undefined;
  const s = spawn('sleep', ['60'], { stdio: 'ignore' });
  try {
    const ra = doctor(['-p', String(a.pid)]);
    assert.equal(ra.code, 0);
    assert.equal(ra.doc.target!.status, 'ready');
    assert.equal(ra.doc.target!.python!.version.split('.').slice(0, 2).join('.'), `3.${pyenv!.minor}`);
    assert.equal(ra.doc.target!.python!.symbols, 'symbols');
    assert.equal(ra.doc.target!.lenses.find((l) => l.id === 'sampler')!.status, 'ready');
    assert.equal(ra.doc.target!.lenses.find((l) => l.id === 'hooks')!.status, 'unavailable');
    if (b) {
      const rb = doctor(['-p', String(b.pid)]);
      assert.equal(rb.code, 0);
      assert.equal(rb.doc.target!.python!.symbols, 'stripped');
      const perf = rb.doc.target!.lenses.find((l) => l.id === 'perf')!;
      if (lens(rb.doc, 'perf').status !== 'unavailable') {
        assert.equal(perf.status, 'degraded');
        assert.match(perf.sees, /stripped.*python3\.\d+-dbg/);
        // the machine-level check names Debian's interpreter too
        assert.ok(lens(rb.doc, 'perf').checks.some((c) => /interpreter/.test(c.name) && c.status === 'degraded' && /python3\.\d+/.test(c.detail)), 'no stripped-interpreter check in the perf lens');
      }
    }
    const rs = doctor(['-p', String(s.pid)]);
    assert.equal(rs.code, 1, 'a process that cannot be sampled exits 1');
    const cp = rs.doc.target!.checks.find((c) => c.name === 'CPython')!;
    assert.equal(cp.status, 'unavailable');
    assert.match(cp.detail, /does not look like a CPython process/);
    assert.match(cp.fix!, /pgrep -af python/);
  } finally {
    a.kill('SIGKILL');
    b?.kill('SIGKILL');
    s.kill('SIGKILL');
  }
  const dead = spawnSync(NODE, [MAIN, 'doctor', '-p', '999999999'], { encoding: 'utf8' });
  assert.equal(dead.status, 1);
  assert.match(dead.stderr, /no process 999999999 here/);
  assert.match(dead.stderr, /fix: check the PID/);
});

test('doctor -p on a process of another user without CAP_SYS_PTRACE: cannot be read, exit 1, the fix names the capability; the sampler’s own error points to doctor', { skip: (!hasSetpriv || !existsSync(DEBIAN_PY)) && 'needs setpriv and /usr/bin/python3', timeout: 120_000 }, async () => {
  const other = await sleeper(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', DEBIAN_PY, ...SLEEP_PY]);
  try {
    const pid = Number(spawnSync('pgrep', ['-P', String(other.pid)], { encoding: 'utf8' }).stdout.trim() || other.pid);
    const r = doctor(['-p', String(pid)], DROP_CAPS);
    assert.equal(r.code, 1);
    const rd = r.doc.target!.checks.find((c) => c.name === 'read its memory')!;
    assert.equal(rd.status, 'unavailable');
    assert.match(rd.detail, /permission denied/);
    assert.match(rd.fix!, /CAP_SYS_PTRACE/);
    assert.equal(r.doc.target!.lenses.find((l) => l.id === 'sampler')!.status, 'unavailable');
    const dump = spawnSync(DROP_CAPS[0]!, [...DROP_CAPS.slice(1), NODE, MAIN, 'dump', '-p', String(pid)], { encoding: 'utf8' });
    assert.equal(dump.status, 1);
    assert.match(dump.stderr, /permission denied reading the memory of process/);
    assert.match(dump.stderr, /`pylens doctor` checks every lens/);
  } finally {
    other.kill('SIGKILL');
    spawnSync('pkill', ['-KILL', '-f', 'print\\("ready", flush=True\\)\ntime.sleep\\(60\\)']);
  }
});

test('doctor inside a PID namespace of its own (unshare): says so, with the nsenter / shared-namespace recipes', { skip: !hasUnshare && 'no unshare', timeout: 60_000 }, () => {
  const r = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', NODE, MAIN, 'doctor', '--json'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as Doc;
  assert.equal(doc.environment.pidNamespace, 'own');
  const text = doc.container.join('\n');
  assert.match(text, /nsenter -t HOSTPID -p -m/);
  assert.match(text, /shareProcessNamespace: true/);
  assert.match(text, /--pid=container:APP/);
});
