/**
 * The npm package as users get it: `npm pack` gives a tarball within its size budget that
 * `npm install -g` puts into an empty prefix, and the installed `pylens` — no
 * devDependencies, no compile step, run from another folder with only Node on the PATH —
 * runs every command on real programs. `npx` runs it from the tarball too; an old Node gets
 * a clear error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ROOT } from '../helpers/format-checks.ts';
import { firstLine, installedPythons } from '../sampler/pythons.ts';
import { exclusive } from '../helpers/exclusive.ts';

/** budgets: the tarball and what it unpacks to (measured 0.6 MB / 2.0 MB at 0.1.0) */
const MAX_TARBALL = 1_000_000;
const MAX_UNPACKED = 3_000_000;

const py = installedPythons().find((p) => p.minor === 12) ?? installedPythons().at(-1);
const hasNpm = spawnSync('npm', ['--version']).status === 0;

test('npm pack → npm install -g into an empty prefix → every command runs from the installed package', { skip: (!hasNpm && 'no npm') || (!py && 'no CPython'), timeout: 900_000 }, () => exclusive('timing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-pkg-'));
  try {
    // 1. the tarball, within budget, with the Python helpers, the page code and the demo
    const pack = spawnSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
    assert.equal(pack.status, 0, pack.stderr);
    const info = (JSON.parse(pack.stdout) as Array<{ filename: string; size: number; unpackedSize: number; files: Array<{ path: string }> }>)[0]!;
    console.log(`tarball ${info.filename}: ${(info.size / 1e6).toFixed(2)} MB, unpacked ${(info.unpackedSize / 1e6).toFixed(2)} MB, ${info.files.length} files`);
    assert.ok(info.size <= MAX_TARBALL, `tarball ${info.size} bytes > budget ${MAX_TARBALL}`);
    assert.ok(info.unpackedSize <= MAX_UNPACKED, `unpacked ${info.unpackedSize} bytes > budget ${MAX_UNPACKED}`);
    const files = new Set(info.files.map((f) => f.path));
    for (const f of ['dist/src/cli/main.js', 'dist/src/render/page/flame.js', 'python/pylens_boot.py', 'python/pylens/pytest.py', 'package.json', 'README.md']) assert.ok(files.has(f), `${f} is not in the package`);
    assert.ok([...files].some((f) => f.startsWith('demo/')), 'the demo is not in the package');
    assert.ok(![...files].some((f) => /^(test|bench|fixtures|src)\//.test(f) || f.endsWith('.ts') && !f.endsWith('.d.ts')), 'sources, tests or benches leaked into the package');
    const tgz = join(dir, info.filename);

    // 2. installed into an empty prefix (the dependencies come from npm's cache, filled by npm ci)
    const prefix = join(dir, 'prefix');
    mkdirSync(prefix);
    const inst = spawnSync('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tgz], { cwd: dir, encoding: 'utf8', timeout: 300_000 });
    assert.equal(inst.status, 0, inst.stderr);
    const bin = join(prefix, 'bin', 'pylens');
    assert.ok(existsSync(bin), 'no pylens command after the install');
    const installed = join(prefix, 'lib', 'node_modules', 'pylens');
    const deps = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    for (const d of Object.keys(deps.dependencies)) assert.ok(existsSync(join(installed, 'node_modules', d)), `dependency ${d} missing`);
    assert.ok(!existsSync(join(installed, 'node_modules', 'typescript')), 'a devDependency was installed');

    // only Node (this one, ≥ 22.18) and the system on the PATH; run from a folder of its own
    const work = join(dir, 'work');
    mkdirSync(work);
    const env = { PATH: `${dirname(process.execPath)}:/usr/local/bin:/usr/bin:/bin`, HOME: dir, XDG_DATA_HOME: join(dir, 'data'), LANG: 'C.UTF-8' };
    const run = (...args: string[]): SpawnSyncReturns<string> => spawnSync(bin, args, { cwd: work, env, encoding: 'utf8', timeout: 120_000 });
    const ok = (r: SpawnSyncReturns<string>, what: string) => assert.equal(r.status, 0, `${what}: ${r.stdout}\n${r.stderr}`);

    const v = run('--version');
    ok(v, '--version');
    assert.match(v.stdout, /^pylens \d+\.\d+\.\d+/);
    writeFileSync(join(work, 'app.py'), 'def leaf(n):\n    return sum(i * i for i in range(n))\ndef main():\n    for _ in range(40):\n        leaf(60_000)\nmain()\n');
    // the sampler, launching
    ok(run('record', '-r', '200', '-o', 'app.pylens', '--', py!.exe, 'app.py'), 'record');
    const rep = run('report', 'app.pylens');
    ok(rep, 'report');
    assert.match(rep.stdout, /leaf \(app\.py\)/);
    ok(run('view', 'app.pylens', '-o', 'app.html'), 'view');
    assert.match(readFileSync(join(work, 'app.html'), 'utf8'), /<canvas/);
    ok(run('convert', 'app.pylens', '-o', 'app.pb.gz'), 'convert');
    ok(run('convert', 'app.pylens', '-o', 'app.speedscope.json'), 'convert speedscope');
    const diff = run('diff', 'app.pylens', 'app.pylens');
    ok(diff, 'diff');
    // the sampler, attaching: dump and a short record -p
    const target = spawn(py!.exe, ['-c', 'import time\nprint("ready", flush=True)\ndef wait():\n    time.sleep(30)\nwait()'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await firstLine(target, py!.exe);
      const d = run('dump', '-p', String(target.pid));
      ok(d, 'dump');
      assert.match(d.stdout, /wait/);
      ok(run('record', '-p', String(target.pid), '-d', '1', '-i', '-o', 'att.pylens'), 'record -p');
      const doc = run('doctor', '--json', '-p', String(target.pid));
      ok(doc, 'doctor');
      assert.equal((JSON.parse(doc.stdout) as { target: { status: string } }).target.status, 'ready');
    } finally {
      target.kill('SIGKILL');
    }
    // the interpreter lenses (the Python helpers come from the package)
    ok(run('trace', '-o', 'app.trace.pylens', '--', py!.exe, 'app.py'), 'trace');
    ok(run('count', '-F', '__main__:leaf', '--', py!.exe, 'app.py'), 'count');
    ok(run('mem', '-o', 'app.mem.pylens', '--', py!.exe, 'app.py'), 'mem');
    const pp = run('pythonpath');
    ok(pp, 'pythonpath');
    assert.ok(existsSync(join(pp.stdout.trim(), 'pylens', 'pytest.py')), 'pythonpath points into the package');
    // check reads its TOML with the installed smol-toml
    writeFileSync(join(work, 'pylens.toml'), `[[check]]\nname = "leaf calls"\nrun = "${py!.exe} app.py"\ncalls = { "__main__:leaf" = { max = 40 } }\n`);
    ok(run('check'), 'check');
    // perf and eBPF, where this machine has them
    if (spawnSync('perf', ['--version']).status === 0) ok(run('perf', '-o', 'app.perf.pylens', '--', py!.exe, 'app.py'), 'perf');
    // the store and the workbench
    ok(run('store', 'add', 'app.pylens', 'app.trace.pylens'), 'store add');
    const ls = run('store', 'ls', '--json');
    ok(ls, 'store ls');
    assert.equal((JSON.parse(ls.stdout) as { total: number }).total, 2);
    const serve = spawn(bin, ['serve', '--port', '0'], { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const line = await firstLine(serve, 'pylens serve');
      const url = /(http:\/\/[^\s#]+)/.exec(line)?.[1];
      assert.ok(url, `no URL in ${line}`);
      const res = await fetch(new URL('/api/profiles', url));
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as { total: number }).total, 2);
      const page = await fetch(url);
      assert.match(await page.text(), /<script/);
    } finally {
      serve.kill('SIGTERM');
    }
    ok(run('demo', '-o', 'demo.html'), 'demo');
    assert.ok(existsSync(join(work, 'demo.html')));

    // 3. npx runs it from the tarball
    const npx = spawnSync('npx', ['--yes', '--prefer-offline', '--package', tgz, 'pylens', '--version'], { cwd: work, env: { ...env, npm_config_cache: join(process.env.HOME ?? '/root', '.npm') }, encoding: 'utf8', timeout: 300_000 });
    assert.equal(npx.status, 0, npx.stderr);
    assert.match(npx.stdout, /^pylens \d+\.\d+\.\d+/);

    // 4. an old Node is refused with the fix
    const old = '/usr/bin/node';
    const oldV = existsSync(old) ? spawnSync(old, ['--version'], { encoding: 'utf8' }).stdout.trim() : '';
    const [maj = 0, min = 0] = oldV.replace(/^v/, '').split('.').map(Number);
    if (oldV && (maj < 22 || (maj === 22 && min < 18))) {
      const r = spawnSync(old, [join(installed, 'dist/src/cli/main.js'), '--version'], { encoding: 'utf8' });
      assert.equal(r.status, 1);
      assert.match(r.stderr, new RegExp(`needs Node.js 22.18 or newer; this is ${oldV.replace(/\./g, '\\.')}`));
      assert.match(r.stderr, /fix: install a current Node/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}));
