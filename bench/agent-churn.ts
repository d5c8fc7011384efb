/**
 * `pylens agent` under process churn (issue 17: "200 processes starting and exiting over a
 * minute: no leak, no hang"). The agent runs as users run it (a child process, `--match`,
 * Pyroscope and Parca of test/agent/servers.ts, 2 s windows, 50 Hz); 200 CPythons start
 * evenly over 60 s, each living 0.3–8 s and spinning 10 % of the time, then exiting on its
 * own. Printed: the agent's RSS, targets, fds and windows every 5 s, then the figures.
 *
 *   node_modules/.bin/node bench/agent-churn.ts
 *   PYLENS_CHURN_N=400 PYLENS_CHURN_S=120 node_modules/.bin/node bench/agent-churn.ts
 *
 * Goal: the agent keeps running and exits 0; every process that lived ≥ 2 windows got
 * windows at both backends; the targets gauge back to 0; RSS at the end within 20 MB of the
 * start (after a warm-up) and fds not above it; ≥ 90 % of the ticks kept; the queue empty
 * within 5 s of the last exit. `MISSES` when a goal is missed. Takes ~1.5 min.
 */
import { installedPythons } from '../test/sampler/pythons.ts';
import { churn } from '../test/agent/churn.ts';

const N = Number(process.env.PYLENS_CHURN_N ?? 200);
const S = Number(process.env.PYLENS_CHURN_S ?? 60);
const WINDOW_S = 2;
const py = installedPythons().find((p) => p.minor === 12) ?? installedPythons().at(-1);
if (!py) throw new Error('no CPython 3.8+ under pyenv');

const r = await churn({ python: py.exe, processes: N, overS: S, lifeS: [0.3, 8], windowS: WINDOW_S, rateHz: 50, duty: 0.1, log: (l) => console.log(l) });
const long = r.processes.filter((p) => p.livedMs >= 2 * WINDOW_S * 1000);
const missed = long.filter((p) => p.pyroscopeWindows === 0 || p.parcaWindows === 0);
const withWindows = r.processes.filter((p) => p.pyroscopeWindows > 0).length;
const misses: string[] = [];
if (r.exitCode !== 0) misses.push(`exit ${r.exitCode}`);
if (!/0 left queued/.test(r.stopped)) misses.push('windows left queued at exit');
if (missed.length) misses.push(`${missed.length} processes that lived ≥ 2 windows got none: ${missed.map((p) => `${p.pid} (${p.livedMs} ms)`).join(', ')}`);
if (r.targetsEnd !== 0) misses.push(`targets ${r.targetsEnd} at the end`);
if (r.rssEndMb - r.rssStartMb > 20) misses.push(`RSS grew ${(r.rssEndMb - r.rssStartMb).toFixed(1)} MB`);
if (r.fdEnd > r.fdStart + 2) misses.push(`fds ${r.fdStart} → ${r.fdEnd}`);
if (r.ticks < 0.9 * r.ticksExpected) misses.push(`ticks ${r.ticks} of ${r.ticksExpected.toFixed(0)}`);
if (!(r.queueDrainS < 5)) misses.push(`queue not empty ${r.queueDrainS} s after the targets were gone`);
console.log(
  `processes ${r.processes.length} (${long.length} lived ≥ ${2 * WINDOW_S} s: ${long.length - missed.length} got windows; ${withWindows} of all got some), ` +
    `targets max ${r.targetsMax} → ${r.targetsEnd} (${r.drainS.toFixed(1)} s after the last exit), queue empty ${r.queueDrainS.toFixed(1)} s later; ` +
    `RSS ${r.rssStartMb.toFixed(1)} → ${r.rssEndMb.toFixed(1)} MB (max ${r.rssMaxMb.toFixed(1)}); fds ${r.fdStart} → ${r.fdEnd}; ` +
    `ticks ${r.ticks} of ${r.ticksExpected.toFixed(0)} (${((100 * r.ticks) / r.ticksExpected).toFixed(1)} %); windows ${r.windows}; agent CPU ${r.agentCpuS.toFixed(1)} s; exit ${r.exitCode}`,
);
console.log(JSON.stringify({ bench: 'agent-churn', processes: N, overS: S, lived2Windows: long.length, missedWindows: missed.length, targetsMax: r.targetsMax, targetsEnd: r.targetsEnd, rssStartMb: +r.rssStartMb.toFixed(1), rssEndMb: +r.rssEndMb.toFixed(1), rssMaxMb: +r.rssMaxMb.toFixed(1), fdStart: r.fdStart, fdEnd: r.fdEnd, ticks: r.ticks, ticksExpected: Math.round(r.ticksExpected), queueDrainS: r.queueDrainS, windows: r.windows, agentCpuS: +r.agentCpuS.toFixed(2), exit: r.exitCode, rss: r.rss.filter((_, i) => i % 5 === 0).map((x) => [+x.s.toFixed(0), +x.mb.toFixed(1)]) }));
for (const p of missed) console.log(`PID ${p.pid} (lived ${p.livedMs} ms), the agent's log:\n${r.log.filter((l) => l.includes(`PID ${p.pid} `)).map((l) => `  ${l.slice(0, 160)}`).join('\n') || '  nothing'}`);
if (misses.length) {
  console.log(`MISSES: ${misses.join('; ')}`);
  process.exitCode = 1;
}
