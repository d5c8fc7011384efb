/**
 * `pylens top` end to end with a real CPython (test/cli/scripts/top-hot.py: hot() burns the
 * main thread while a second thread waits):
 * - not a terminal: plain tables, hot() on top with %Own > 50, thread count, idle thread
 *   hidden (shown with --idle), -d / --once end it, exit codes, attach mode leaves the
 *   target running;
 * - a real terminal: inside tmux (skipped, saying why, when tmux is not installed) — keys
 *   l, 2, p, q, a resize, the alternate screen and cursor restored after q, Ctrl-C (attach
 *   mode, target left running) and the target's own exit (last table on the normal screen,
 *   its exit code), the launched target stopped on quit. Each tmux test uses its own server
 *   socket (-L) and no config file (-f /dev/null), and kills that server at the end.
 * Runs through src/cli/main.ts once it lists `top`, else through a tiny wrapper around runTop.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from '../helpers/format-checks.ts';
import { firstLine, installedPythons } from '../sampler/pythons.ts';
import { exclusive } from '../helpers/exclusive.ts';

const MAIN = join(ROOT, 'src', 'cli', 'main.ts');
const SCRIPT = join(ROOT, 'test', 'cli', 'scripts', 'top-hot.py');
const NODE = join(ROOT, 'node_modules', '.bin', 'node');
const pythons = installedPythons();
const py = pythons.find((p) => p.minor === 12);
const skip = !py && 'no CPython 3.12 installed (see test/sampler/pythons.ts)';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'pylens-top-'));
}

/** argv prefix that runs `pylens top`: main.ts when it registers top, else a wrapper calling runTop */
let wrapperPath: string | undefined;
function topPrefix(): string[] {
  if (/from '\.\/top\.ts'/.test(readFileSync(MAIN, 'utf8'))) return [MAIN, 'top'];
  if (wrapperPath) return [wrapperPath];
  const wrapper = (wrapperPath = join(tmp(), 'top-wrapper.ts'));
  const u = (p: string) => pathToFileURL(join(ROOT, p)).href;
  writeFileSync(
    wrapper,
    `import { parseArgs } from '${u('src/cli/args.ts')}';
import { explain } from '${u('src/cli/errors.ts')}';
import { runTop, topSpec } from '${u('src/cli/top.ts')}';
try {
  process.exitCode = await runTop(parseArgs(topSpec, process.argv.slice(2)));
} catch (e) {
  const { message, fix, code } = explain(e);
  process.stderr.write(\`pylens: error: \${message}\\n\${fix ? \`  fix: \${fix}\\n\` : ''}\`);
  process.exitCode = code;
}
`,
  );
  return [wrapper];
}

const nodeExe = existsSync(NODE) ? NODE : process.execPath;

function runTopSync(args: string[], opts: { timeout?: number; env?: NodeJS.ProcessEnv } = {}) {
  return spawnSync(nodeExe, [...topPrefix(), ...args], { encoding: 'utf8', cwd: ROOT, timeout: opts.timeout ?? 30_000, env: { ...process.env, ...opts.env } });
}

interface Table {
  header: string[];
  rows: { own: number; total: number; label: string }[];
  text: string;
}

/** the plain tables of non-terminal output (separated by blank lines) */
function tables(stdout: string): Table[] {
  const out: Table[] = [];
  for (const chunk of stdout.split(/\n\n(?=pylens top - )/)) {
    const lines = chunk.split('\n').filter((l) => l !== '');
    const h = lines.findIndex((l) => /^\s+%Own\s+%Total\s+OwnTime\s+TotalTime\s+Function/.test(l));
    if (h < 0) continue;
    const rows = lines.slice(h + 1).flatMap((l) => {
      const m = /^\s+([\d.]+)%\s+([\d.]+)%\s+\S+\s+\S+\s{2}(.*)$/.exec(l);
      return m ? [{ own: Number(m[1]), total: Number(m[2]), label: m[3]! }] : [];
    });
    out.push({ header: lines.slice(0, h), rows, text: chunk });
  }
  return out;
}

test('top -d 3 -- python: plain tables, hot() is the top row, thread count, idle thread hidden, exit 0', { skip, timeout: 900_000 }, () => exclusive('timing', async () => {
  const t0 = Date.now();
  const r = runTopSync(['-d', '3', '--', py!.exe, SCRIPT, '60'], { timeout: 60_000 });
  const took = Date.now() - t0;
  assert.equal(r.status, 0, `exit ${r.status}\n${r.stderr}`);
  assert.doesNotMatch(r.stdout, /\x1b/, 'no escape codes when stdout is not a terminal');
  const ts = tables(r.stdout);
  assert.ok(ts.length >= 2 && ts.length <= 4, `one table per second plus the last; got ${ts.length}:\n${r.stdout}`);
  const last = ts.at(-1)!;
  assert.match(last.header[0]!, new RegExp(`^pylens top - pid \\d+: python3\\.12 \\S*top-hot\\.py 60 \\(Python 3\\.12\\.\\d+\\)$`));
  assert.match(last.header[1]!, /Threads 2\b/, last.text);
  assert.match(last.header[1]!, /Errors \d+/);
  const top = last.rows[0]!;
  assert.match(top.label, /^hot \(\S*top-hot\.py:\d+\)$/, last.text);
  // the top row by far: ~3/4 of the thread's CPU samples. Its %Own is a share of ticks, and
  // a loaded machine keeps the thread runnable but off the CPU in some (42.7, 45.9, 30.6 %
  // seen in full runs, warm() then 13.4 %): so a share of the samples shown, not of ticks
  const shown = last.rows.reduce((a, x) => a + x.own, 0);
  assert.ok(top.own > 15 && top.own >= 0.6 * shown && top.own > 2 * (last.rows[1]?.own ?? 0), `hot %Own ${top.own} of ${shown.toFixed(2)}\n${last.text}`);
  // main() on every stack of the main thread: its %Total is what every shown sample adds up
  // to (per tick, py-spy's way: below 100 % when a loaded machine keeps the thread runnable
  // but off the CPU, which the CPU rule counts as waiting), less the idler's start-up samples
  const ownSum = last.rows.reduce((a, x) => a + x.own, 0);
  assert.ok(last.rows.some((x) => /^main \(/.test(x.label) && x.total > 15 && x.total >= ownSum - 2), `main() on every stack\n${last.text}`);
  assert.equal(last.rows.some((x) => /idle_wait|wait \(/.test(x.label)), false, `the waiting thread is idle and hidden\n${last.text}`);
  assert.ok(took < 30_000, `took ${took} ms`);
  assert.equal(r.stderr.includes('exited'), false, 'the target did not exit on its own');
}));

test('top --once -p PID --idle --nolineno: one table, idle thread shown, target keeps running', { skip }, async () => {
  const child = spawn(py!.exe, [SCRIPT, '60'], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, TOP_HOT_READY: '1' } });
  try {
    assert.equal(await firstLine(child, 'top-hot.py'), 'top-hot ready');
    const r = runTopSync(['-p', String(child.pid), '--once', '--interval', '0.5', '--idle', '--nolineno']);
    assert.equal(r.status, 0, r.stderr);
    const ts = tables(r.stdout);
    assert.equal(ts.length, 1, r.stdout);
    const t = ts[0]!;
    assert.match(t.header[0]!, new RegExp(`pid ${child.pid}:`));
    assert.match(t.header[2]!, /Lines off {2}Idle shown/);
    assert.match(t.text, /Function \(file\)$/m);
    assert.ok(t.rows.some((x) => /^hot \(\S*top-hot\.py\)$/.test(x.label)), t.text);
    assert.ok(t.rows.some((x) => /^(wait|idle_wait) \(/.test(x.label)), `idle thread shown with --idle\n${t.text}`);
    assert.equal(child.exitCode, null, 'attach mode leaves the target running');
    assert.doesNotThrow(() => process.kill(child.pid!, 0));
  } finally {
    child.kill('SIGKILL');
  }
});

test('the target exiting on its own ends top with a last table, a note on stderr and its exit code', { skip }, () => {
  const r = runTopSync(['--interval', '0.5', '--', py!.exe, SCRIPT, '2.5', '3']);
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stderr, /^pylens top: process \d+ exited \(exit code 3\)$/m);
  const ts = tables(r.stdout);
  assert.ok(ts.length >= 1, r.stdout);
  const last = ts.at(-1)!;
  assert.ok(last.rows.some((x) => /^hot \(/.test(x.label)), last.text);
});

test('usage errors: -p with a command, neither, bad numbers', () => {
  const both = runTopSync(['-p', '1', '--', 'python3']);
  assert.equal(both.status, 2);
  assert.match(both.stderr, /either -p PID or a command/);
  const neither = runTopSync([]);
  assert.equal(neither.status, 2);
  assert.match(neither.stderr, /missing -p PID/);
  assert.equal(runTopSync(['-p', '1', '--rate', '0']).status, 2);
  assert.equal(runTopSync(['-p', '1', '--once', '-d', '3']).status, 2);
  const gone = runTopSync(['-p', '999999999']);
  assert.equal(gone.status, 1);
  assert.match(gone.stderr, /does not exist/);
});

// ---------------------------------------------------------------------------------------
// a real terminal: tmux

function hasTmux(): boolean {
  try {
    execFileSync('tmux', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const tmuxSkip = skip || (!hasTmux() && 'tmux is not installed: the terminal test needs it (apt-get install tmux)');

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

async function until<T>(what: string, fn: () => T | undefined | false, timeoutMs = 15_000, lastSeen?: () => string): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${lastSeen ? `; screen:\n${lastSeen()}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('in tmux: full-screen table, keys l / 2 / q, terminal restored, pane process and target gone', { skip: tmuxSkip, timeout: 60_000 }, async () => {
  const sock = `pylens-top-test-${process.pid}`;
  const tmux = (...a: string[]) => execFileSync('tmux', ['-L', sock, '-f', '/dev/null', ...a], { encoding: 'utf8' });
  const cmd = [nodeExe, ...topPrefix(), '--', py!.exe, SCRIPT, '60'].map(shellQuote).join(' ');
  try {
    // the shell stays after top so the pane (and its cursor state) can be inspected; a dead
    // tmux pane always reports its cursor hidden
    tmux('new-session', '-d', '-x', '120', '-y', '40', '-s', 'top', '-c', ROOT, `${cmd}; echo "pylens-top-exit=$?"; exec sleep 60`);
    const screen = () => tmux('capture-pane', '-p', '-t', 'top');
    const fmt = (f: string) => tmux('display-message', '-p', '-t', 'top', f).trim();

    // the table, full screen
    let s = await until('the table with hot()', () => {
      const t = screen();
      return /%Own +%Total +OwnTime +TotalTime +Function \(file:line\)/.test(t) && /\bhot \(\S*top-hot\.py:\d+\)/.test(t) && t;
    }, 20_000, screen);
    assert.equal(fmt('#{alternate_on}'), '1', 'on the alternate screen');
    assert.equal(fmt('#{cursor_flag}'), '0', 'cursor hidden');
    const lines = s.split('\n');
    assert.match(lines[0]!, /^pylens top - pid \d+: python3\.12 /);
    assert.match(lines[1]!, /Threads 2\b/);
    assert.match(lines[39] ?? '', /^Keys: 1-5\/arrows sort/, 'footer on the last row');
    for (const l of lines) assert.ok(l.length <= 120, `line wider than the pane: ${l}`);
    const targetPid = Number(/pid (\d+)/.exec(lines[0]!)![1]);
    assert.ok(existsSync(`/proc/${targetPid}`));

    // l: line numbers off
    tmux('send-keys', '-t', 'top', 'l');
    const own = (t: string, name: string) => t.split('\n').findIndex((l) => new RegExp(`  ${name} \\(`).test(l));
    s = await until('lines off', () => {
      const t = screen();
      return /Function \(file\) *$/m.test(t) && /\bhot \(\S*top-hot\.py\) *$/m.test(t) && t;
    }, 10_000, screen);
    assert.match(s, /Lines off/);
    assert.doesNotMatch(s, /\bhot \(\S*top-hot\.py:\d+\)/);
    assert.ok(own(s, 'warm') >= 0 && own(s, 'warm') < own(s, 'main'), `sorted by %Own: warm above main\n${s}`);

    // 2: sort by %Total — main() (100 % total, ~0 own) moves above warm() (~25 % own and total)
    tmux('send-keys', '-t', 'top', '2');
    s = await until('sorted by %Total', () => {
      const t = screen();
      return /Sort %Total descending/.test(t) && t;
    }, 10_000, screen);
    const rows = s.split('\n').filter((l) => /^\s+[\d.]+%\s+[\d.]+%/.test(l));
    const totals = rows.map((l) => Number(/^\s+[\d.]+%\s+([\d.]+)%/.exec(l)![1]));
    assert.deepEqual(totals, [...totals].sort((a, b) => b - a), `rows in %Total order:\n${s}`);
    const at = (name: string) => rows.findIndex((l) => new RegExp(`  ${name} \\(`).test(l));
    assert.ok(at('main') >= 0 && at('warm') >= 0, s);
    assert.ok(at('main') < at('warm'), `main above warm when sorted by %Total:\n${s}`);

    // a smaller window: redrawn to fit (SIGWINCH / 'resize')
    tmux('resize-window', '-t', 'top', '-x', '90', '-y', '30');
    s = await until('a redraw at 90x30', () => {
      const t = screen().split('\n');
      return /^Keys: 1-5/.test(t[29] ?? '') && t.length <= 31 && t;
    }, 10_000, screen).then((t) => t.join('\n'));
    for (const l of s.split('\n')) assert.ok(l.length <= 90, `line wider than the resized pane: ${l}`);

    // p: paused (sampling goes on), p again: live
    tmux('send-keys', '-t', 'top', 'p');
    await until('[PAUSED]', () => /\[PAUSED\]/.test(screen()), 10_000, screen);
    tmux('send-keys', '-t', 'top', 'p');
    await until('unpaused', () => !/\[PAUSED\]/.test(screen()), 10_000, screen);

    // q: quit — the process ends, the normal screen and cursor are back, the target is stopped
    tmux('send-keys', '-t', 'top', 'q');
    s = await until('top to exit', () => /^pylens-top-exit=\d+$/m.exec(screen())?.[0], 10_000, screen);
    assert.equal(s, 'pylens-top-exit=0', 'exit code 0 on quit');
    await until('the shell to be back', () => fmt('#{pane_current_command}') === 'sleep', 5000);
    assert.equal(fmt('#{alternate_on}'), '0', 'alternate screen left');
    assert.equal(fmt('#{cursor_flag}'), '1', 'cursor shown again');
    assert.doesNotMatch(screen(), /%Own|Keys: 1-5/, 'the table is gone with the alternate screen');
    await until('the launched target to be stopped', () => !existsSync(`/proc/${targetPid}`) || /\) Z/.test(readFileSync(`/proc/${targetPid}/stat`, 'utf8')), 5000);
  } finally {
    try {
      tmux('kill-server');
    } catch {
      /* already gone */
    }
  }
});

test('in tmux: the target exiting ends top, restores the terminal, leaves the last table and exits with its code', { skip: tmuxSkip, timeout: 60_000 }, async () => {
  const sock = `pylens-top-test-exit-${process.pid}`;
  const tmux = (...a: string[]) => execFileSync('tmux', ['-L', sock, '-f', '/dev/null', ...a], { encoding: 'utf8' });
  const cmd = [nodeExe, ...topPrefix(), '--interval', '0.5', '--', py!.exe, SCRIPT, '2', '3'].map(shellQuote).join(' ');
  try {
    tmux('new-session', '-d', '-x', '100', '-y', '40', '-s', 'top', '-c', ROOT, `${cmd}; echo "pylens-top-exit=$?"; exec sleep 60`);
    const screen = () => tmux('capture-pane', '-p', '-t', 'top');
    const fmt = (f: string) => tmux('display-message', '-p', '-t', 'top', f).trim();
    await until('the live table', () => /Keys: 1-5/.test(screen()) && fmt('#{alternate_on}') === '1', 20_000, screen);
    const s = await until('top to exit', () => /^pylens-top-exit=\d+$/m.test(screen()) && screen(), 20_000, screen);
    assert.match(s, /^pylens-top-exit=3$/m, s);
    assert.match(s, /^pylens top: process \d+ exited \(exit code 3\)$/m);
    assert.match(s, /%Own +%Total +OwnTime +TotalTime +Function \(file:line\)/, 'the last table stays on the normal screen');
    assert.match(s, /\bhot \(/);
    assert.doesNotMatch(s, /Keys: 1-5/, 'no footer in the last table');
    await until('the shell to be back', () => fmt('#{pane_current_command}') === 'sleep', 5000);
    assert.equal(fmt('#{alternate_on}'), '0');
    assert.equal(fmt('#{cursor_flag}'), '1');
  } finally {
    try {
      tmux('kill-server');
    } catch {
      /* already gone */
    }
  }
});

test('in tmux: attach mode, Ctrl-C quits with the terminal restored and the target still running', { skip: tmuxSkip, timeout: 60_000 }, async () => {
  const child = spawn(py!.exe, [SCRIPT, '60'], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, TOP_HOT_READY: '1' } });
  const sock = `pylens-top-test-attach-${process.pid}`;
  const tmux = (...a: string[]) => execFileSync('tmux', ['-L', sock, '-f', '/dev/null', ...a], { encoding: 'utf8' });
  try {
    assert.equal(await firstLine(child, 'top-hot.py'), 'top-hot ready');
    const cmd = [nodeExe, ...topPrefix(), '-p', String(child.pid)].map(shellQuote).join(' ');
    tmux('new-session', '-d', '-x', '80', '-y', '24', '-s', 'top', '-c', ROOT, `${cmd}; echo "pylens-top-exit=$?"; exec sleep 60`);
    const screen = () => tmux('capture-pane', '-p', '-t', 'top');
    const fmt = (f: string) => tmux('display-message', '-p', '-t', 'top', f).trim();
    const s = await until('the live table', () => /\bhot \(/.test(screen()) && screen(), 20_000, screen);
    assert.match(s.split('\n')[0]!, new RegExp(`^pylens top - pid ${child.pid}: `));
    assert.match(s.split('\n')[23] ?? '', /^Keys: 1-5/);
    tmux('send-keys', '-t', 'top', 'C-c');
    const after = await until('top to exit', () => /^pylens-top-exit=\d+$/m.test(screen()) && screen(), 10_000, screen);
    assert.match(after, /^pylens-top-exit=0$/m);
    assert.doesNotMatch(after, /%Own/);
    await until('the shell to be back', () => fmt('#{pane_current_command}') === 'sleep', 5000);
    assert.equal(fmt('#{alternate_on}'), '0');
    assert.equal(fmt('#{cursor_flag}'), '1');
    assert.equal(child.exitCode, null, 'the attached target keeps running');
    assert.equal(child.signalCode, null);
  } finally {
    child.kill('SIGKILL');
    try {
      tmux('kill-server');
    } catch {
      /* already gone */
    }
  }
});
