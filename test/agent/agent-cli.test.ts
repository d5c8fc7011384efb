/**
 * `pylens agent` as users run it: a child process (`node src/cli/main.ts agent …`) finding
 * real CPython processes by `--match`, shipping to real servers of the test's own (a node:http
 * Pyroscope `/ingest`, a node:http2 gRPC Parca `WriteRaw`: servers.ts) and to a local store:
 * the labels each backend gets, every body opened with `go tool pprof -raw`, /metrics fetched
 * mid-run on a port the agent picked (`--metrics 127.0.0.1:0`), SIGTERM delivering the last
 * partial window, backends down at the start getting every window in order once up,
 * `--config agent.toml` under flags, the usage errors (exit 2), and targets that cannot be
 * read (CPython 3.7; another user's process with no capabilities) said once and counted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProfileStore } from '../../src/store/store.ts';
import { installedPythons, pyenvRoot } from '../sampler/pythons.ts';
import {
  fakeHttp,
  fakeParca,
  fetchMetrics,
  freePort,
  goPprofRaw,
  hasGo,
  killGroup,
  MAIN,
  labelsOf,
  parcaIdsValid,
  parsePyroscopeName,
  pprofTimeMs,
  runAgent,
  spinningPython,
  until,
  type FakeHttp,
  type FakeParca,
} from './servers.ts';
import { exclusive } from '../helpers/exclusive.ts';

const pythons = installedPythons();
const py12 = pythons.find((p) => p.minor === 12) ?? pythons.at(-1)!;
const py9 = pythons.find((p) => p.minor === 9) ?? pythons[0]!;
const py37 = `${pyenvRoot()}/versions/3.7.16/bin/python3.7`;
const debianPy = '/usr/bin/python3.11';
const isRoot = process.getuid?.() === 0;
const hasSetpriv = spawnSync('setpriv', ['--help']).status === 0;
/** can another user (nobody) read pylens's sources here? not in a clone under a 0700 mktemp folder */
const othersCanRead = hasSetpriv && spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'test', '-r', MAIN]).status === 0;
/** command-line tags unique to this run (other test files run agents too) */
const RUN = `pylens-cli-${process.pid}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Pyroscope requests by the pid label */
function pyroByPid(srv: FakeHttp, pid: number | undefined): Array<{ labels: Map<string, string>; from: number; until: number; body: Buffer; url: URL }> {
  return srv.got
    .map((g) => ({ labels: parsePyroscopeName(g.url.searchParams.get('name')!), from: Number(g.url.searchParams.get('from')), until: Number(g.url.searchParams.get('until')), body: g.body, url: g.url }))
    .filter((g) => g.labels.get('pid') === String(pid));
}

function parcaByPid(srv: FakeParca, pid: number | undefined) {
  return srv.got.filter((g) => labelsOf(g).pid === String(pid));
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'pylens-agent-cli-'));
}

test('agent CLI: several CPythons by --match to Pyroscope, Parca and the store with their labels; go tool pprof reads what they got; /metrics on a picked port moves; SIGTERM exits 0 with the last partial window delivered', { timeout: 900_000 }, (t) => exclusive('timing', async () => {
  const dir = tmp();
  const pyro = await fakeHttp();
  const parca = await fakeParca();
  const targets: ChildProcess[] = [];
  let agent: ReturnType<typeof runAgent> | undefined;
  try {
    const a = await spinningPython(py12.exe, `${RUN}-alpha`);
    const b = await spinningPython(py12.exe, `${RUN}-beta`);
    const c = await spinningPython(py9.exe, `${RUN}-gamma`);
    const other = await spinningPython(py12.exe, `pylens-cli-other-${process.pid}`, { duty: 0 });
    const old = existsSync(py37) ? await spinningPython(py37, `${RUN}-old`, { duty: 0 }) : undefined;
    targets.push(a, b, c, other, ...(old ? [old] : []));
    const store = join(dir, 'profiles.db');
    agent = runAgent([
      '--match', `${RUN}-(alpha|beta|gamma|old)$`,
      '--pyroscope', `http://127.0.0.1:${pyro.port}`,
      '--parca', `127.0.0.1:${parca.port}`, '--parca-insecure',
      '--store', store,
      '--queue', join(dir, 'queue'),
      '--metrics', '127.0.0.1:0',
      '-w', '1', '--rate', '100',
      '--label', 'env=test,team=core',
      '--host', 'node-7',
    ]);
    const url = await agent.metricsUrl();
    assert.doesNotMatch(url, /:0\//, 'the port the agent got, not 0');
    for (const p of [a, b, c]) await agent.waitLog(new RegExp(`attached PID ${p.pid} \\(match; CPython 3\\.`));
    const m1 = await fetchMetrics(url);
    assert.equal((await fetch(url.replace('/metrics', '/healthz'))).status, 200);
    // two whole windows per target at both backends
    await until('2 windows per target at Pyroscope and Parca', () => [a, b, c].every((p) => pyroByPid(pyro, p.pid).length >= 2 && parcaByPid(parca, p.pid).length >= 2), 30_000);
    const m2 = await fetchMetrics(url);
    assert.equal(m2.get('pylens_agent_targets'), 3, 'alpha, beta, gamma; not the other one, not 3.7');
    for (const k of ['pylens_agent_windows_total', 'pylens_agent_samples_total', 'pylens_agent_windows_sent_total{destination="pyroscope"}', 'pylens_agent_windows_sent_total{destination="parca"}', 'pylens_agent_windows_sent_total{destination="store"}', 'pylens_agent_cpu_seconds_total']) {
      assert.ok(m2.get(k)! > (m1.get(k) ?? 0), `${k} moved: ${m1.get(k)} → ${m2.get(k)}`);
    }
    assert.equal(m2.get('pylens_agent_destination_up{destination="pyroscope"}'), 1);
    assert.equal(m2.get('pylens_agent_destination_up{destination="parca"}'), 1);
    assert.ok(m2.get('pylens_agent_resident_memory_bytes')! > 10e6);
    if (old) {
      assert.equal(m2.get('pylens_agent_unreadable_targets'), 1, 'CPython 3.7 counted');
      await agent.waitLog(new RegExp(`cannot sample PID ${old.pid}: .*3\\.7`));
    }
    assert.ok(!agent.lines.some((l) => l.includes(`PID ${other.pid}`)), 'a Python that does not match is not looked at');

    // labels, as each backend reads them
    const w = pyroByPid(pyro, a.pid).at(-1)!;
    assert.equal(w.labels.get('__name__'), 'python3.12.cpu', 'python -c: the interpreter names the service');
    assert.equal(w.labels.get('service_name'), 'python3.12');
    assert.equal(w.labels.get('python')!.split('.').slice(0, 2).join('.'), '3.12');
    assert.equal(w.labels.get('env'), 'test');
    assert.equal(w.labels.get('team'), 'core');
    assert.equal(w.labels.get('host'), 'node-7', '--host names the host label');
    assert.equal(w.url.searchParams.get('format'), 'pprof');
    assert.equal(w.url.searchParams.get('sampleRate'), '100');
    assert.equal(w.until - w.from, 1, '1 s windows');
    assert.equal(pyroByPid(pyro, c.pid).at(-1)!.labels.get('python')!.split('.').slice(0, 2).join('.'), '3.9');
    const pl = labelsOf(parcaByPid(parca, b.pid).at(-1)!);
    assert.equal(pl.__name__, 'process_cpu');
    assert.equal(pl.service_name, 'python3.12');
    assert.equal(pl.env, 'test');
    assert.equal(pl.team, 'core');
    assert.equal(pl.host, 'node-7');
    assert.ok(pl.python!.startsWith('3.12.'));
    assert.equal(parcaIdsValid(parcaByPid(parca, b.pid).at(-1)!.req.series[0]!.samples[0]!), null);

    // SIGTERM in the middle of a window: that partial window is cut and delivered
    while (Date.now() % 1000 < 550 || Date.now() % 1000 > 750) await sleep(10);
    const killMs = Date.now();
    agent.child.kill('SIGTERM');
    assert.equal(await agent.exit, 0);
    const stopped = await agent.waitLog(/stopped: /);
    const total = Number(/stopped: (\d+) windows/.exec(stopped)![1]);
    assert.match(stopped, new RegExp(`sent ${total} to pyroscope, ${total} to parca, ${total} to store; 0 left queued`));
    assert.equal(pyro.got.length, total);
    assert.equal(parca.got.length, total);
    const s = ProfileStore.open(store);
    try {
      for (const p of [a, b, c]) {
        const lastFrom = Math.floor(killMs / 1000);
        const pw = pyroByPid(pyro, p.pid);
        assert.equal(pw.at(-1)!.from, lastFrom, `PID ${p.pid}: the window SIGTERM cut short reached Pyroscope`);
        assert.equal(parcaByPid(parca, p.pid).length, pw.length, 'Parca got as many');
        const rows = s.list({ where: [`pid=${p.pid}`], limit: 1000 }).rows.sort((x, y) => x.startMs! - y.startMs!);
        assert.equal(rows.length, pw.length, 'the store got as many');
        const last = rows.at(-1)!;
        assert.equal(last.startMs, lastFrom * 1000);
        assert.ok(last.durationNs! < 0.95e9 && last.durationNs! > 0.3e9, `the last window is partial: ${last.durationNs! / 1e6} ms`);
        assert.equal(rows[0]!.labels.env, 'test');
      }
    } finally {
      s.close();
    }

    // what the servers got, opened with go tool pprof
    if (!hasGo) return t.skip('`go` is not on PATH: install golang-go to open the bodies with go tool pprof');
    for (const [p, tag] of [[a, 'alpha'], [b, 'beta'], [c, 'gamma']] as const) {
      const fn = `work_${`${RUN}-${tag}`.replace(/\W/g, '_')}`;
      // a whole window (not the first or the last), the biggest: the most samples on a busy machine
      const whole = pyroByPid(pyro, p.pid).slice(1, -1).sort((x, y) => y.body.length - x.body.length)[0]!;
      const pr = goPprofRaw(whole.body);
      assert.deepEqual(pr.types, ['samples/count', 'cpu/nanoseconds']);
      assert.ok(pr.totals[0]! > 0 && pr.totals[1] === pr.totals[0]! * 1e7, `samples and their CPU time at 100 Hz: ${pr.totals}`);
      assert.ok(pr.functions.includes(fn), `${fn} in ${pr.functions}`);
      const qr = goPprofRaw(parcaByPid(parca, p.pid).slice(1, -1).sort((x, y) => y.req.series[0]!.samples[0]!.length - x.req.series[0]!.samples[0]!.length)[0]!.req.series[0]!.samples[0]!);
      assert.ok(qr.functions.includes(fn), `Parca's: ${fn} in ${qr.functions}`);
    }
  } finally {
    if (agent && agent.child.exitCode === null) agent.child.kill('SIGKILL');
    killGroup(...targets);
    await pyro.close();
    await parca.close();
    rmSync(dir, { recursive: true, force: true });
  }
}));

test('agent CLI: Pyroscope and Parca down at the start get every window once they come up, in order (the queue)', { timeout: 900_000 }, () => exclusive('timing', async () => {
  const dir = tmp();
  const pyroPort = await freePort();
  const parcaPort = await freePort();
  let pyro: FakeHttp | undefined;
  let parca: FakeParca | undefined;
  let agent: ReturnType<typeof runAgent> | undefined;
  const p = await spinningPython(py12.exe, `${RUN}-late`);
  try {
    agent = runAgent(['--match', `${RUN}-late$`, '--pyroscope', `http://127.0.0.1:${pyroPort}`, '--parca', `127.0.0.1:${parcaPort}`, '--parca-insecure', '--store', join(dir, 'p.db'), '--queue', join(dir, 'queue'), '--metrics', '127.0.0.1:0', '-w', '1', '--rate', '50']);
    const url = await agent.metricsUrl();
    // down: windows pile up in the queue, the store (up) takes them, a few attempts
    let m = await fetchMetrics(url);
    for (const end = Date.now() + 20_000; (m.get('pylens_agent_windows_total') ?? 0) < 4; m = await fetchMetrics(url)) {
      assert.ok(Date.now() < end, 'windows are cut');
      await sleep(200);
    }
    assert.equal(m.get('pylens_agent_destination_up{destination="pyroscope"}'), 0);
    assert.equal(m.get('pylens_agent_destination_up{destination="parca"}'), 0);
    assert.ok(m.get('pylens_agent_windows_queued')! >= 3, `queued: ${m.get('pylens_agent_windows_queued')}`);
    assert.equal(m.get('pylens_agent_windows_sent_total{destination="pyroscope"}'), 0);
    assert.ok(m.get('pylens_agent_windows_sent_total{destination="store"}')! >= 3);
    // the queue writes behind: windows not taken within 2 s (the backends failing) are on disk
    await until('windows written to the queue folder', () => readdirSync(join(dir, 'queue')).filter((f) => f.endsWith('.win')).length >= 3, 10_000);
    const attempts = m.get('pylens_agent_send_attempts_total{destination="pyroscope"}')!;
    assert.ok(attempts >= 1 && attempts <= 5, `backoff, not a hot loop: ${attempts} attempts in ~4 s`);
    // up
    pyro = await fakeHttp(pyroPort);
    parca = await fakeParca(parcaPort);
    await until('both backends caught up', () => pyro!.got.length >= 6 && parca!.got.length >= 6, 40_000);
    m = await fetchMetrics(url);
    assert.equal(m.get('pylens_agent_destination_up{destination="pyroscope"}'), 1);
    agent.child.kill('SIGTERM');
    assert.equal(await agent.exit, 0);
    const stopped = await agent.waitLog(/stopped: /);
    const total = Number(/stopped: (\d+) windows/.exec(stopped)![1]);
    assert.match(stopped, /0 left queued/);
    assert.equal(pyro.got.length, total, 'every window at Pyroscope');
    assert.equal(parca.got.length, total, 'every window at Parca');
    const froms = pyroByPid(pyro, p.pid).map((g) => g.from);
    assert.deepEqual(froms, [...froms].sort((x, y) => x - y), 'Pyroscope got them in order');
    assert.equal(new Set(froms).size, froms.length, 'once each');
    for (let i = 1; i < froms.length; i++) assert.equal(froms[i], froms[i - 1]! + 1, 'no window missing');
    const times = parcaByPid(parca, p.pid).map((g) => pprofTimeMs(g.req.series[0]!.samples[0]!));
    assert.deepEqual(times, [...times].sort((x, y) => x - y), 'Parca got them in order');
    assert.equal(new Set(times).size, times.length);
  } finally {
    if (agent && agent.child.exitCode === null) agent.child.kill('SIGKILL');
    killGroup(p);
    await pyro?.close();
    await parca?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}));

test('agent CLI: --config agent.toml, flags over it; -d stops it with exit 0', { timeout: 60_000 }, async () => {
  const dir = tmp();
  const pyro = await fakeHttp();
  const p = await spinningPython(py12.exe, `${RUN}-cfg`);
  try {
    const cfg = join(dir, 'agent.toml');
    writeFileSync(
      cfg,
      [
        '# pylens agent settings',
        `match = "${RUN}-cfg$"`,
        'rate = 25',
        'window = 1',
        'service = "orders"',
        `queue = "${join(dir, 'queue')}"`,
        'metrics = "127.0.0.1:0"',
        'labels = { env = "from-config", region = "eu-1" }',
        '',
        '[pyroscope]',
        `url = "http://127.0.0.1:${pyro.port}"`,
        'org-id = "team-a"',
        '',
      ].join('\n'),
    );
    const agent = runAgent(['--config', cfg, '--label', 'env=from-flag', '--rate', '40', '-d', '3.5']);
    assert.equal(await agent.exit, 0, agent.lines.join('\n'));
    assert.match(agent.lines.join('\n'), /stopped: \d+ windows from 1 processes/);
    const got = pyroByPid(pyro, p.pid);
    assert.ok(got.length >= 2, `${got.length} windows`);
    const w = got[0]!;
    assert.equal(w.labels.get('__name__'), 'orders.cpu');
    assert.equal(w.labels.get('service_name'), 'orders');
    assert.equal(w.labels.get('env'), 'from-flag', 'the flag wins');
    assert.equal(w.labels.get('region'), 'eu-1', 'the config file still counts');
    assert.equal(w.url.searchParams.get('sampleRate'), '40', '--rate over rate = 25');
    assert.equal(pyro.got[0]!.headers['x-scope-orgid'], 'team-a');
  } finally {
    killGroup(p);
    await pyro.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('agent CLI: usage errors exit 2 with one clear line: no targets, no destination, a bad --match, an unknown config key (file:line, did you mean), a bad label', { timeout: 60_000 }, async () => {
  const dir = tmp();
  try {
    const bad = join(dir, 'agent.toml');
    writeFileSync(bad, '# settings\nmatch = "gunicorn"\nwindw = 10\n');
    const badSection = join(dir, 'agent2.toml');
    writeFileSync(badSection, 'match = "x"\n\n[pyroscope]\nurl = "http://p:4040"\norgid = "a"\n');
    const store = join(dir, 's.db');
    const cases: Array<[string[], RegExp]> = [
      [['--store', store], /no targets: give --pid, --match, --unit, --cgroup or --all-python/],
      [['--match', 'gunicorn'], /nowhere to send windows: give --pyroscope URL, --parca URL or --store PATH/],
      [['--match', 'gunicorn(', '--store', store], /--match 'gunicorn\(' is not a regular expression/],
      [['--config', bad], new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: windw: unknown key; did you mean 'window'\\?`)],
      [['--config', badSection], /agent2\.toml:5: pyroscope\.orgid: unknown key; did you mean 'org-id'\?/],
      [['--match', 'x', '--store', store, '--label', 'env'], /--label 'env' is not K=V/],
      [['--match', 'x', '--store', store, '--label', '1env=prod'], /--label '1env=prod' is not K=V/],
      [['--match', 'x', '--store', store, '--metrics', 'nowhere'], /--metrics 'nowhere' is not HOST:PORT/],
    ];
    for (const [args, want] of cases) {
      const r = spawnSync(process.execPath, [join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts'), 'agent', ...args], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(r.status, 2, `${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
      assert.match(r.stderr, want, args.join(' '));
      assert.match(r.stderr.split('\n')[0]!, /^pylens: error: /, 'one error line first');
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('agent CLI: a process it cannot read (another user\'s, the agent with no capabilities; CPython 3.7) is said once, counted in /metrics, not retried in a loop', { timeout: 60_000, skip: !isRoot || !hasSetpriv || !existsSync(debianPy) ? 'needs root, setpriv and /usr/bin/python3.11 (a Python another user can run)' : false }, async () => {
  const dir = tmp();
  const targets: ChildProcess[] = [];
  let agent: ReturnType<typeof runAgent> | undefined;
  try {
    const nobody = await spinningPython(debianPy, `${RUN}-nobody`, { duty: 0.2, wrap: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] });
    targets.push(nobody);
    const old = existsSync(py37) ? await spinningPython(py37, `${RUN}-old37`, { duty: 0 }) : undefined;
    if (old) targets.push(old);
    agent = runAgent(['--match', `${RUN}-(nobody|old37)$`, '--store', join(dir, 'p.db'), '--queue', join(dir, 'queue'), '--metrics', '127.0.0.1:0', '-w', '1'], { wrap: ['setpriv', '--inh-caps=-all', '--bounding-set=-all'] });
    const url = await agent.metricsUrl();
    await agent.waitLog(new RegExp(`cannot sample PID ${nobody.pid}: permission denied`));
    if (old) await agent.waitLog(new RegExp(`cannot sample PID ${old.pid}: `));
    const m1 = await fetchMetrics(url);
    await sleep(4500); // two more scans (every 2 s)
    const m2 = await fetchMetrics(url);
    assert.equal(m2.get('pylens_agent_unreadable_targets'), targets.length);
    assert.equal(m2.get('pylens_agent_targets'), 0);
    const cpu = m2.get('pylens_agent_cpu_seconds_total')! - m1.get('pylens_agent_cpu_seconds_total')!;
    assert.ok(cpu < 0.5, `${cpu.toFixed(3)} s of CPU in 4.5 s: no hot loop`);
    for (const p of targets) assert.equal(agent.lines.filter((l) => l.includes(`PID ${p.pid}`)).length, 1, `PID ${p.pid} said once:\n${agent.lines.join('\n')}`);
    // gone: no longer counted
    killGroup(nobody);
    for (const end = Date.now() + 10_000; ; await sleep(300)) {
      const m = await fetchMetrics(url);
      if (m.get('pylens_agent_unreadable_targets') === targets.length - 1) break;
      assert.ok(Date.now() < end, `unreadable_targets still ${m.get('pylens_agent_unreadable_targets')} after the process exited`);
    }
    agent.child.kill('SIGTERM');
    assert.equal(await agent.exit, 0);
    assert.match(agent.lines.join('\n'), /stopped: 0 windows from 0 processes/);
  } finally {
    if (agent && agent.child.exitCode === null) agent.child.kill('SIGKILL');
    killGroup(...targets);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('agent CLI: with the systemd unit\'s privileges (another user, CAP_SYS_PTRACE alone, no_new_privs) it samples a root process', { timeout: 60_000, skip: !isRoot || !hasSetpriv || !existsSync(debianPy) ? 'needs root, setpriv and /usr/bin/python3.11 (a Python another user can run)' : !othersCanRead ? `another user cannot read ${MAIN} (a clone in a private folder)` : false }, async () => {
  const dir = tmp();
  spawnSync('chmod', ['0777', dir]);
  const p = await spinningPython(debianPy, `${RUN}-rootpy`, { duty: 0.3 });
  try {
    const unitPrivileges = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all,+sys_ptrace', '--ambient-caps=-all,+sys_ptrace', '--bounding-set=-all,+sys_ptrace', '--no-new-privs'];
    const agent = runAgent(['--match', `${RUN}-rootpy$`, '--store', join(dir, 'p.db'), '--queue', join(dir, 'queue'), '--metrics', 'off', '-w', '1', '--rate', '50', '-d', '3.5'], { wrap: unitPrivileges });
    assert.equal(await agent.exit, 0, agent.lines.join('\n'));
    assert.match(agent.lines.join('\n'), new RegExp(`attached PID ${p.pid} \\(match; CPython 3\\.11`));
    assert.match(agent.lines.join('\n'), /stopped: [1-9]\d* windows from 1 processes/);
  } finally {
    killGroup(p);
    rmSync(dir, { recursive: true, force: true });
  }
});
