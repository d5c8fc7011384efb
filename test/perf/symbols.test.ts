/**
 * Interpreter symbols (src/capture/perf/symbols.ts) and what `record --native` does with
 * them: the detector on real files (Debian's stripped /usr/bin/python3.11, pyenv's
 * libpython, a stripped copy of it and its debug file placed where perf looks), the fix
 * text, the unknown-leaf count and its quality words; then real perf on real CPython —
 * Debian's python3.11 (warned, a large unknown share), pyenv's 3.11 (no warning), and
 * pyenv's python on a stripped copy of its libpython, before and after its debug file is
 * added to a temporary perf build-id cache (the frames get their names).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname as libDirOf, join } from 'node:path';
import { ROOT } from '../helpers/format-checks.ts';
import { pyenvRoot } from '../sampler/pythons.ts';
import { decodePylens } from '../../src/formats/pylens.ts';
import { ProfileBuilder } from '../../src/model/builder.ts';
import { frameInfo, type Profile } from '../../src/model/profile.ts';
import { ElfFile } from '../../src/capture/sampler/elf.ts';
import {
  buildIdOf,
  configValue,
  debugFileCandidates,
  debugLinkOf,
  hasSymtab,
  interpreterSymbols,
  interpreterSymbolsOf,
  interpreterSymbolsOfPython,
  perfBuildIdDir,
  readElfHeaders,
  symbolsFix,
  unknownInterpreterLeaves,
} from '../../src/capture/perf/symbols.ts';
import { nativeSymbolsQuality, samplerQuality } from '../../src/render/page/quality.ts';

const MAIN = join(ROOT, 'src', 'cli', 'main.ts');
const WORK = join(ROOT, 'test', 'perf', 'scripts', 'interp_work.py');
const DEBIAN_PY = '/usr/bin/python3.11';
const pyenv = pyenvRoot();
const PY311 = pyenv ? `${pyenv}/versions/3.11.7/bin/python3.11` : '';
const LIBPY311 = pyenv ? `${pyenv}/versions/3.11.7/lib/libpython3.11.so.1.0` : '';
const perfOk = spawnSync('perf', ['--version']).status === 0;
const binutilsOk = spawnSync('objcopy', ['--version']).status === 0 && spawnSync('strip', ['--version']).status === 0;
const debianStripped = existsSync(DEBIAN_PY) && !hasSymtab(readElfHeaders(DEBIAN_PY)!);
const DEBIAN_OS = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-symbols-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** a stripped copy of pyenv 3.11's libpython (same build id, no debuglink) and its debug file, apart */
function strippedLibpython(dir: string): { lib: string; libDir: string; debug: string } {
  const libDir = join(dir, 'lib');
  const dbgDir = join(dir, 'dbg');
  mkdirSync(libDir);
  mkdirSync(dbgDir);
  const lib = join(libDir, 'libpython3.11.so.1.0');
  const debug = join(dbgDir, 'libpython3.11.so.1.0.debug');
  for (const [cmd, args] of [
    ['objcopy', ['--only-keep-debug', LIBPY311, debug]],
    ['strip', ['-o', lib, LIBPY311]],
  ] as const) {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    assert.equal(r.status, 0, `${cmd}: ${r.stderr}`);
  }
  return { lib, libDir, debug };
}

// ---------------------------------------------------------------------------------------
// the detector

test('ELF facts: build id, .gnu_debuglink, .symtab — read from the headers only', { skip: !existsSync(DEBIAN_PY) && !existsSync(LIBPY311) ? 'no python 3.11 here' : false }, () => {
  for (const p of [DEBIAN_PY, LIBPY311].filter((x) => x && existsSync(x))) {
    const full = ElfFile.read(p);
    const sparse = readElfHeaders(p)!;
    assert.equal(buildIdOf(sparse), buildIdOf(full), p);
    assert.match(buildIdOf(sparse)!, /^[0-9a-f]{40}$/, p);
    assert.equal(debugLinkOf(sparse), debugLinkOf(full), p);
    assert.equal(hasSymtab(sparse), full.section('.symtab') !== undefined, p);
    // readelf agrees on the build id
    const r = spawnSync('readelf', ['-n', p], { encoding: 'utf8' });
    if (r.status === 0) assert.ok(r.stdout.includes(`Build ID: ${buildIdOf(sparse)}`), p);
  }
});

test('Debian python3.11: stripped, its debug link named, the apt fix', { skip: debianStripped ? false : `${DEBIAN_PY} is not a stripped Debian build here` }, () => {
  const s = interpreterSymbols(DEBIAN_PY, { env: {}, buildIdDir: '/nonexistent' });
  assert.equal(s.verdict, 'stripped');
  assert.equal(s.symtab, false);
  assert.equal(s.debugFile, undefined);
  assert.equal(s.debuginfod, false);
  assert.ok(s.debugLink?.endsWith('.debug'));
  const fix = symbolsFix(s, { osRelease: DEBIAN_OS });
  assert.match(fix, /^apt-get install python3\.11-dbg \(or python3\.11-dbgsym from the distribution's debug archive\)/);
  assert.match(fix, /pyenv builds keep them/);
  assert.match(symbolsFix({ ...s, debuginfod: true }, { osRelease: DEBIAN_OS }), /debuginfod-find debuginfo \/usr\/bin\/python3\.11/);
  assert.match(symbolsFix(s, { osRelease: 'ID=fedora\n' }), /^dnf debuginfo-install python3/);
  assert.match(symbolsFix(s, { osRelease: 'ID=ubuntu\nID_LIKE=debian\n' }), /^apt-get install python3\.11-dbg/);
  assert.match(symbolsFix(s, { osRelease: 'ID=arch\n' }), /^install your distribution's debug symbols/);
  assert.equal(interpreterSymbols(DEBIAN_PY, { env: { DEBUGINFOD_URLS: 'https://debuginfod.example' }, buildIdDir: '/nonexistent' }).debuginfod, true);
});

test('pyenv 3.11: libpython has its symbols', { skip: existsSync(LIBPY311) ? false : `${LIBPY311} is not installed` }, () => {
  const s = interpreterSymbols(LIBPY311, { env: {} });
  assert.equal(s.verdict, 'symbols');
  assert.equal(s.symtab, true);
});

test('a stripped copy: stripped; its debug file found in a debug root and in perf\u2019s build-id cache, not with another build id', { skip: !existsSync(LIBPY311) ? `${LIBPY311} is not installed` : !binutilsOk ? 'objcopy/strip (binutils) missing' : false }, (t) => {
  const dir = tempDir(t);
  const { lib, debug } = strippedLibpython(dir);
  const id = buildIdOf(readElfHeaders(LIBPY311)!)!;
  const none = { env: {}, debugRoot: join(dir, 'no-debug'), buildIdDir: join(dir, 'no-cache') };
  const s = interpreterSymbols(lib, none);
  assert.deepEqual({ verdict: s.verdict, symtab: s.symtab, buildId: s.buildId }, { verdict: 'stripped', symtab: false, buildId: id });
  assert.match(symbolsFix(s), new RegExp(`perf buildid-cache -a FILE\\.debug\` or put it at /usr/lib/debug/\\.build-id/${id.slice(0, 2)}/${id.slice(2)}\\.debug`));
  // a debug root's .build-id/xx/rest.debug
  const root = join(dir, 'debugroot');
  mkdirSync(join(root, '.build-id', id.slice(0, 2)), { recursive: true });
  copyFileSync(debug, join(root, '.build-id', id.slice(0, 2), `${id.slice(2)}.debug`));
  assert.deepEqual(interpreterSymbols(lib, { ...none, debugRoot: root }), { path: lib, buildId: id, symtab: false, debuginfod: false, verdict: 'debug-file', debugFile: join(root, '.build-id', id.slice(0, 2), `${id.slice(2)}.debug`) });
  // perf's build-id cache, as `perf buildid-cache -a` lays it out, found through perf's config
  const cache = join(dir, 'cache');
  const dst = join(cache, 'some', 'path', 'libpython3.11.so.1.0.debug', id);
  mkdirSync(dst, { recursive: true });
  copyFileSync(debug, join(dst, 'elf'));
  mkdirSync(join(cache, '.build-id', id.slice(0, 2)), { recursive: true });
  spawnSync('ln', ['-s', `../../some/path/libpython3.11.so.1.0.debug/${id}`, join(cache, '.build-id', id.slice(0, 2), id.slice(2))]);
  writeFileSync(join(dir, 'perfconfig'), `[buildid]\n\tdir = ${cache}\n`);
  const viaConfig = interpreterSymbols(lib, { env: { PERF_CONFIG: join(dir, 'perfconfig') }, debugRoot: none.debugRoot });
  assert.equal(viaConfig.verdict, 'debug-file');
  assert.equal(viaConfig.debugFile, join(cache, '.build-id', id.slice(0, 2), id.slice(2), 'elf'));
  // a file with symbols but of another build (3.12's libpython) where the debug file would be: perf would refuse it, so does this
  const otherLib = `${pyenv}/versions/3.12.1/lib/libpython3.12.so.1.0`;
  if (existsSync(otherLib)) {
    const other = join(dir, 'otherroot');
    mkdirSync(join(other, libDirOf(lib)), { recursive: true });
    copyFileSync(otherLib, join(other, `${lib}.debug`));
    assert.equal(interpreterSymbols(lib, { ...none, debugRoot: other }).verdict, 'stripped');
    copyFileSync(debug, join(other, `${lib}.debug`));
    assert.equal(interpreterSymbols(lib, { ...none, debugRoot: other }).debugFile, join(other, `${lib}.debug`), 'the right one at the same place is taken');
  }
});

test('interpreterSymbolsOfPython: the image a python executable runs with, before any process is recorded', { skip: !existsSync(PY311) ? `${PY311} is not installed` : false }, async () => {
  const s = await interpreterSymbolsOfPython(PY311, { env: {} });
  assert.equal(s?.path, LIBPY311);
  assert.equal(s?.verdict, 'symbols');
  if (debianStripped) {
    const d = await interpreterSymbolsOfPython(DEBIAN_PY, { env: {}, buildIdDir: '/nonexistent' });
    assert.deepEqual([d?.path, d?.verdict], [DEBIAN_PY, 'stripped']);
  }
  assert.equal(await interpreterSymbolsOfPython('/bin/true', { env: {} }), undefined, 'not a python: it never says ready');
  assert.equal(await interpreterSymbolsOfPython('/nonexistent/python3', { env: {} }), undefined);
});

test('perf\u2019s build-id dir: buildid.dir of its config ($PERF_CONFIG alone, else /etc then ~), else ~/.debug', () => {
  const files: Record<string, string> = {
    '/etc/perfconfig': '[buildid]\n  dir = /etc-cache\n',
    '/home/u/.perfconfig': '# mine\n[record]\n  build-id = no-cache\n[buildid]\n  dir = "/home/u/cache" ; quoted\n',
    '/x.conf': '[BuildId]\ndir=/x-cache\n',
  };
  const read = (p: string) => files[p];
  assert.equal(perfBuildIdDir({ HOME: '/home/u' }, read), '/home/u/cache');
  assert.equal(perfBuildIdDir({ HOME: '/home/v' }, read), '/etc-cache');
  assert.equal(perfBuildIdDir({ HOME: '/home/u', PERF_CONFIG: '/x.conf' }, read), '/x-cache');
  assert.equal(perfBuildIdDir({ HOME: '/home/u', PERF_CONFIG: '/none' }, read), '/home/u/.debug');
  assert.equal(perfBuildIdDir({ HOME: '/home/w' }, () => undefined), '/home/w/.debug');
  assert.equal(configValue('[a]\nk = 1\n[b]\nk = 2\n[a]\nk = 3\n', 'a', 'k'), '3');
});

test('debug file candidates in perf\u2019s order', () => {
  assert.deepEqual(debugFileCandidates('/usr/bin/python3.11', 'abcdef', 'cdef.debug', { buildIdDir: '/root/.debug' }), [
    '/usr/bin/cdef.debug',
    '/usr/bin/.debug/cdef.debug',
    '/usr/lib/debug/usr/bin/cdef.debug',
    '/root/.debug/.build-id/ab/cdef/debug',
    '/root/.debug/.build-id/ab/cdef/elf',
    '/root/.debug/.build-id/ab/cdef',
    '/usr/lib/debug/usr/bin/python3.11.debug',
    '/usr/lib/debug/usr/bin/python3.11',
    '/usr/lib/debug/.build-id/ab/cdef.debug',
  ]);
});

// ---------------------------------------------------------------------------------------
// counting and words

function profileOf(leaves: Array<[string, string | undefined]>): Profile {
  const b = new ProfileBuilder({ meta: { lens: 'sampling', backend: 'pylens-sampler+perf', mode: 'cpu' } });
  const main = b.frame({ name: 'main', file: 'app.py', line: 1 });
  const th = b.thread(1, 1, 'main');
  for (const [name, lib] of leaves) {
    const leaf = lib === 'py' ? b.frame({ name, file: 'app.py', line: 2 }) : b.frame({ name, kind: 'native', ...(lib ? { lib } : {}) });
    b.sample(b.stackOf([main, leaf]), 1, th, 'on-cpu', 0);
  }
  return b.build();
}

test('unknownInterpreterLeaves: [unknown] leaves in the interpreter image only', () => {
  const p = profileOf([
    ['[unknown]', 'python3.11'],
    ['[unknown]', 'python3.11'],
    ['PyList_Append', 'python3.11'],
    ['[unknown]', '_json.cpython-311-x86_64-linux-gnu.so'],
    ['[unknown]', undefined],
    ['work', 'py'],
  ]);
  assert.deepEqual(unknownInterpreterLeaves(p, '/usr/bin/python3.11'), { samples: 2, of: 6, share: 2 / 6 });
  assert.equal(unknownInterpreterLeaves(p, '/x/libpython3.11.so.1.0').samples, 0);
});

test('quality words: stripped with its share and fix, debug file, silent with symbols', () => {
  const base = { truncatedSamples: 0, interpreterImage: '/usr/bin/python3.11', nativeUnknownInterpreter: 0.4234 };
  const fix = "apt-get install python3.11-dbg (or python3.11-dbgsym from the distribution's debug archive); or use a CPython built with its symbols (pyenv builds keep them)";
  assert.equal(
    nativeSymbolsQuality({ ...base, interpreterSymbols: 'stripped', interpreterSymbolsFix: fix }),
    "interpreter stripped: 42 % of samples end at an unknown address in python3.11, to name them: apt-get install python3.11-dbg (or python3.11-dbgsym from the distribution's debug archive)",
  );
  assert.equal(nativeSymbolsQuality({ ...base, interpreterSymbols: 'debug-file', interpreterDebugFile: '/d.debug', nativeUnknownInterpreter: 0.002 }), 'interpreter symbols from /d.debug');
  assert.equal(nativeSymbolsQuality({ ...base, interpreterSymbols: 'symbols', nativeUnknownInterpreter: 0.01 }), undefined);
  assert.equal(nativeSymbolsQuality({ ...base, interpreterSymbols: 'symbols', nativeUnknownInterpreter: 0.08 }), '8.0 % of samples end at an unknown address in python3.11');
  assert.equal(nativeSymbolsQuality({ truncatedSamples: 0 }), undefined);
  assert.match(samplerQuality({ sampleCount: 10, extra: { ...base, interpreterSymbols: 'stripped' } })!, /^every stack whole \(10 samples\); interpreter stripped: 42 %/);
  // pylens perf's profiles: no sampler counts, the interpreter's words alone
  const { truncatedSamples: _, ...perfOnly } = base;
  assert.equal(samplerQuality({ sampleCount: 10, extra: { ...perfOnly, interpreterSymbols: 'stripped' } }), 'interpreter stripped: 42 % of samples end at an unknown address in python3.11');
  assert.equal(samplerQuality({ sampleCount: 10, extra: { event: 'cycles' } }), undefined);
});

// ---------------------------------------------------------------------------------------
// real perf, real CPython

interface Recorded {
  code: number;
  stderr: string;
  profile: Profile;
  extra: Record<string, string | number>;
}

async function recordNative(exe: string, out: string, env: NodeJS.ProcessEnv = process.env, secs = 2): Promise<Recorded> {
  const child: ChildProcess = spawn(process.execPath, [MAIN, 'record', '--native', '-o', out, '--', exe, WORK, String(secs)], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout!.resume();
  const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
  const code = await new Promise<number>((r) => child.on('close', (c) => r(c ?? 1)));
  clearTimeout(timer);
  assert.equal(code, 0, err);
  const profile = decodePylens(readFileSync(out), out);
  return { code, stderr: err, profile, extra: profile.meta.extra ?? {} };
}

const stripWarnings = (stderr: string) => stderr.split('\n').filter((l) => / is stripped \(no \.symtab/.test(l));

test('record --native on Debian\u2019s stripped python3.11: one warning naming the file and the fix, a large unknown share in the quality', { skip: !perfOk ? 'perf is not installed' : !debianStripped ? `${DEBIAN_PY} is not a stripped build here` : false, timeout: 240_000 }, async (t) => {
  const dir = tempDir(t);
  const r = await recordNative(DEBIAN_PY, join(dir, 'deb.pylens'));
  const warned = stripWarnings(r.stderr);
  assert.equal(warned.length, 1, r.stderr);
  assert.match(warned[0]!, /^pylens record: warning: \/usr\/bin\/python3\.11 is stripped .*build id [0-9a-f]{40}.*to name them: .*python3\.11-dbg/);
  assert.ok(r.stderr.indexOf(warned[0]!) < r.stderr.search(/perf records native stacks of PID/), 'the warning comes before recording starts');
  assert.equal(r.extra.interpreterSymbols, 'stripped');
  assert.equal(r.extra.interpreterImage, DEBIAN_PY);
  const share = Number(r.extra.nativeUnknownInterpreter);
  console.log(`Debian python3.11: ${(100 * share).toFixed(1)} % of ${r.profile.samples.length} samples end at an unknown address in python3.11`);
  assert.ok(share >= 0.15, `unknown share ${share}`);
  assert.match(r.stderr, /pylens record: quality: .*interpreter stripped: \d+ % of samples end at an unknown address in python3\.11, to name them: /);
  // report's header says it too
  const rep = spawnSync(process.execPath, [MAIN, 'report', join(dir, 'deb.pylens')], { encoding: 'utf8' });
  assert.match(rep.stdout, /^Quality: .*interpreter stripped: \d+ % of samples end at an unknown address in python3\.11/m);
});

test('record --native on pyenv 3.11: symbols, no warning, few unknown leaves', { skip: !perfOk ? 'perf is not installed' : !existsSync(PY311) ? `${PY311} is not installed` : false, timeout: 240_000 }, async (t) => {
  const dir = tempDir(t);
  const r = await recordNative(PY311, join(dir, 'pyenv.pylens'));
  assert.deepEqual(stripWarnings(r.stderr), []);
  assert.equal(r.extra.interpreterSymbols, 'symbols');
  assert.equal(r.extra.interpreterImage, LIBPY311);
  console.log(`pyenv 3.11: ${(100 * Number(r.extra.nativeUnknownInterpreter)).toFixed(1)} % of ${r.profile.samples.length} samples end at an unknown address in libpython3.11.so.1.0`);
  assert.ok(Number(r.extra.nativeUnknownInterpreter) < 0.05, `unknown share ${r.extra.nativeUnknownInterpreter}`);
  assert.doesNotMatch(r.stderr, /interpreter stripped/);
});

/** samples whose leaf is a named frame of `lib`, and the set of those names */
function namedLeaves(p: Profile, lib: string): { n: number; names: Set<string> } {
  const names = new Set<string>();
  let n = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const fi = frameInfo(p, p.stacks.frame[p.samples.stack[i]!]!);
    if (fi.kind === 'native' && fi.lib === lib && fi.name !== '[unknown]') {
      n++;
      names.add(fi.name);
    }
  }
  return { n, names };
}

test('a stripped libpython: warned with the build-id fix; its debug file in a perf build-id cache → debug-file, frames named', { skip: !perfOk ? 'perf is not installed' : !existsSync(PY311) ? `${PY311} is not installed` : !binutilsOk ? 'objcopy/strip (binutils) missing' : false, timeout: 480_000 }, async (t) => {
  const dir = tempDir(t);
  const { lib, libDir, debug } = strippedLibpython(dir);
  const cache = join(dir, 'buildid-cache');
  const perfConfig = join(dir, 'perfconfig');
  writeFileSync(perfConfig, `[buildid]\n\tdir = ${cache}\n`);
  // perf reads only $PERF_CONFIG: ~/.debug and ~/.perfconfig stay out of it
  const env = { ...process.env, LD_LIBRARY_PATH: libDir, PERF_CONFIG: perfConfig };

  // the running interpreter maps the stripped copy
  const py = spawn(PY311, ['-c', 'import sys; print("ready", flush=True); sys.stdin.read()'], { env, stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(() => py.kill('SIGKILL'));
  await new Promise<void>((r) => py.stdout!.once('data', () => r()));
  const live = interpreterSymbolsOf(py.pid!, { env });
  assert.equal(live?.path, lib);
  assert.equal(live?.verdict, 'stripped');
  py.kill('SIGKILL');

  const before = await recordNative(PY311, join(dir, 'before.pylens'), env);
  const warned = stripWarnings(before.stderr);
  assert.equal(warned.length, 1, before.stderr);
  assert.ok(warned[0]!.includes(`${lib} is stripped`), warned[0]);
  assert.match(warned[0]!, /perf buildid-cache -a FILE\.debug/);
  assert.equal(before.extra.interpreterSymbols, 'stripped');
  const shareBefore = Number(before.extra.nativeUnknownInterpreter);
  assert.ok(shareBefore >= 0.15, `unknown share before ${shareBefore}`);

  // add the debug file the way a user would: perf's own command, into the configured cache
  const add = spawnSync('perf', ['--buildid-dir', cache, 'buildid-cache', '-a', debug], { encoding: 'utf8' });
  assert.equal(add.status, 0, add.stderr);
  const s = interpreterSymbols(lib, { env });
  assert.equal(s.verdict, 'debug-file');
  assert.ok(s.debugFile?.startsWith(join(cache, '.build-id')), s.debugFile);

  const after = await recordNative(PY311, join(dir, 'after.pylens'), env);
  assert.deepEqual(stripWarnings(after.stderr), []);
  assert.equal(after.extra.interpreterSymbols, 'debug-file');
  assert.equal(after.extra.interpreterDebugFile, s.debugFile);
  const shareAfter = Number(after.extra.nativeUnknownInterpreter);
  const named = namedLeaves(after.profile, 'libpython3.11.so.1.0');
  // names only the debug file has: static functions, absent from the stripped copy's .dynsym
  const dynsym = ElfFile.read(lib).symbols('.dynsym');
  const staticNames = [...named.names].filter((n) => !dynsym.has(n));
  console.log(
    `stripped libpython: ${(100 * shareBefore).toFixed(1)} % unknown leaves before, ${(100 * shareAfter).toFixed(1)} % with the debug file; ` +
      `${named.n} of ${after.profile.samples.length} samples end in a named libpython frame, ${staticNames.length} static names (${staticNames.slice(0, 5).join(', ')})`,
  );
  assert.ok(shareAfter < 0.05, `unknown share after ${shareAfter}`);
  assert.ok(named.n >= 0.15 * after.profile.samples.length, `named libpython leaves: ${named.n}`);
  assert.ok(staticNames.length >= 3, `static names: ${staticNames.join(', ')}`);
  assert.match(after.stderr, /pylens record: quality: .*interpreter symbols from /);
});

test('pylens perf on Debian\u2019s stripped python3.11: the same warning and quality words', { skip: !perfOk ? 'perf is not installed' : !debianStripped ? `${DEBIAN_PY} is not a stripped build here` : false, timeout: 240_000 }, (t) => {
  const dir = tempDir(t);
  const out = join(dir, 'perf.pylens');
  const r = spawnSync(process.execPath, [MAIN, 'perf', '-F', '499', '-o', out, '--', DEBIAN_PY, WORK, '1'], { encoding: 'utf8', timeout: 200_000 });
  assert.equal(r.status, 0, r.stderr);
  const warned = r.stderr.split('\n').filter((l) => / is stripped \(no \.symtab/.test(l));
  assert.equal(warned.length, 1, r.stderr);
  assert.match(warned[0]!, /^pylens perf: warning: \/usr\/bin\/python3\.11 is stripped .*python3\.11-dbg/);
  const extra = decodePylens(readFileSync(out), out).meta.extra!;
  assert.equal(extra.interpreterSymbols, 'stripped');
  console.log(`pylens perf, Debian python3.11: ${(100 * Number(extra.nativeUnknownInterpreter)).toFixed(1)} % of samples end at an unknown address in python3.11`);
  assert.ok(Number(extra.nativeUnknownInterpreter) >= 0.15, `unknown share ${extra.nativeUnknownInterpreter}`);
  assert.match(r.stderr, /pylens perf: quality: interpreter stripped: \d+ % of samples/);
});
