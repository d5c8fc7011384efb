/**
 * Which processes the agent samples, found again on every scan: given PIDs and their Python
 * descendants (a gunicorn or uvicorn master's workers, celery's pool), and every Python
 * process matching the filters — a command-line regex, a systemd unit, a cgroup path, or
 * every CPython on the host. A process is known by (pid, start time), so a reused PID is a
 * new process. Also: the labels a process carries from where it runs (systemd unit,
 * container id, Kubernetes pod uid, cgroup).
 */
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync, readSync } from 'node:fs';
import { basename } from 'node:path';

export interface TargetSpec {
  /** these processes, and (with `children`) their Python descendants */
  pids?: number[];
  /** Python processes whose command line matches */
  match?: RegExp;
  /** Python processes in this systemd unit (`app` or `app.service`) */
  unit?: string;
  /** Python processes whose cgroup path starts with this */
  cgroup?: string;
  /** every CPython on the host */
  allPython?: boolean;
  /** follow the Python descendants of `pids` (default true) */
  children?: boolean;
}

/** a process found by a scan */
export interface Found {
  pid: number;
  /** /proc/PID/stat's starttime (clock ticks since boot): with the pid, the process's identity */
  start: string;
  cmdline: string[];
  exe: string;
  /** why it is a target: `pid`, `child of PID`, `match`, `unit`, `cgroup`, `all-python` */
  why: string;
  /**
   * a descendant's: the command line of the target it descends from (a uvicorn master's, whose
   * workers run `python -c "from multiprocessing.spawn import spawn_main; …"`), which names
   * the service
   */
  rootCmdline?: string[];
}

const PY_EXE = /^python(\d+(\.\d+)?)?[dmu]*$/;

/** one buffer for every /proc/PID/stat read of a scan (a line is a few hundred bytes) */
const STAT_BUF = Buffer.alloc(1024);

/**
 * State letter, parent pid and start time (clock ticks since boot) of /proc/PID/stat,
 * parsed from its bytes (undefined when gone): a scan reads one per process it has not
 * seen before.
 */
function statFields(procRoot: string, pid: number): { state: string; ppid: number; start: string } | undefined {
  let n: number;
  try {
    const fd = openSync(`${procRoot}/${pid}/stat`, 'r');
    try {
      n = readSync(fd, STAT_BUF, 0, STAT_BUF.length, 0);
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
  if (n <= 0) return undefined;
  const b = STAT_BUF;
  const close = b.lastIndexOf(0x29, n - 1); // the last ')': comm may hold one
  if (close < 0 || close + 2 >= n) return undefined;
  // fields after comm, numbered from 0 (state): ppid is 1, starttime 19
  let field = 0;
  let from = close + 2;
  let state = '';
  let ppid = NaN;
  for (let i = from; i <= n; i++) {
    if (i < n && b[i] !== 0x20 && b[i] !== 0x0a) continue;
    if (field === 0) state = b.toString('latin1', from, i);
    else if (field === 1) ppid = Number(b.toString('latin1', from, i));
    else if (field === 19) return { state, ppid, start: b.toString('latin1', from, i) };
    field++;
    from = i + 1;
  }
  return { state, ppid, start: '' };
}

/** a /proc file's text; undefined when it cannot be read (gone, not allowed) */
export function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Where a process runs, as labels: systemd_unit, container_id, pod_uid, cgroup (cgroup v2 path, or v1's pids/cpu one). */
export function cgroupLabels(cgroupText: string | undefined): Record<string, string> {
  if (!cgroupText) return {};
  const lines = cgroupText.split('\n').filter(Boolean);
  const v2 = lines.find((l) => l.startsWith('0::'));
  const pick = v2 ?? lines.find((l) => /:(pids|cpu,cpuacct|cpu|memory):/.test(l)) ?? lines[0];
  const path = pick ? pick.slice(pick.indexOf(':', pick.indexOf(':') + 1) + 1) : '';
  const out: Record<string, string> = {};
  if (path && path !== '/') out.cgroup = path;
  const unit = /([^/]+)\.service(?:\/|$)/.exec(path)?.[1];
  if (unit) out.systemd_unit = `${unit}.service`;
  const container = /(?:docker|cri-containerd|crio|libpod)[-/]([0-9a-f]{64})/.exec(path)?.[1] ?? /\/([0-9a-f]{64})(?:\.scope)?$/.exec(path)?.[1];
  if (container) out.container_id = container;
  const pod = /pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})/.exec(path)?.[1];
  if (pod) out.pod_uid = pod.replace(/_/g, '-');
  return out;
}

export class TargetFinder {
  readonly spec: TargetSpec;
  private procRoot: string;
  /** pid → start and whether it runs CPython (exe name, else a mapped libpython), so each process is looked at once */
  private pythonness = new Map<number, { start: string; exe: string; python: boolean; cmdline?: string[] }>();
  /** every process of the last scan: parent and start time (read once, when it first showed) */
  private seen = new Map<number, { ppid: number; start: string }>();
  /** the agent itself is never a target */
  private self = new Set<number>([process.pid]);

  constructor(spec: TargetSpec, procRoot = '/proc') {
    this.spec = spec;
    this.procRoot = procRoot;
  }

  /** does this process run CPython (its executable is pythonX.Y, or it maps libpython) */
  private isPython(pid: number, start: string): boolean {
    let exe = '';
    let hidden = false;
    try {
      exe = readlinkSync(`${this.procRoot}/${pid}/exe`).replace(/ \(deleted\)$/, '');
    } catch (e) {
      // another user's process, or one with capabilities the agent lacks: its exe and maps
      // need ptrace access, its command line does not. Judged by argv[0], so that the agent
      // says it cannot sample it (once) instead of passing over it in silence.
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EACCES' && code !== 'EPERM') return false;
      hidden = true;
      exe = (readText(`${this.procRoot}/${pid}/cmdline`) ?? '').split('\0')[0] ?? '';
    }
    const known = this.pythonness.get(pid);
    if (known && known.start === start && known.exe === exe) return known.python;
    let python = PY_EXE.test(basename(exe));
    if (hidden) {
      this.pythonness.set(pid, { start, exe, python });
      return python;
    }
    if (!python) {
      const maps = readText(`${this.procRoot}/${pid}/maps`);
      python = maps !== undefined && /\/libpython\d+\.\d+[dmu]*\.so/.test(maps);
    }
    this.pythonness.set(pid, { start, exe, python });
    return python;
  }

  /** The targets now, by pid. The agent's own process is never one. */
  scan(): Map<number, Found> {
    const out = new Map<number, Found>();
    let entries: string[];
    try {
      entries = readdirSync(this.procRoot);
    } catch {
      return out;
    }
    const spec = this.spec;
    const filtered = spec.match !== undefined || spec.unit !== undefined || spec.cgroup !== undefined || spec.allPython === true;
    const given = new Set(spec.pids ?? []);
    const ppid = new Map<number, number>();
    const starts = new Map<number, string>();
    const live = new Set<number>();
    const seen = this.seen;
    this.seen = new Map();
    for (const e of entries) {
      const c = e.charCodeAt(0);
      if (c < 48 || c > 57) continue;
      const pid = Number(e);
      // a process listed at the last scan too is the same one (a PID freed and taken again
      // between two listings a few seconds apart aside): its parent and start time as read
      // then, so a scan reads the stat of new processes only — on a host of hundreds of
      // processes that was hundreds of reads every scan. A target that ends is the sampler's
      // to see (its thread count), not the scan's.
      let f = seen.get(pid);
      if (f === undefined) {
        const st = statFields(this.procRoot, pid);
        if (!st || st.state === 'Z' || st.state === 'X') continue;
        f = { ppid: st.ppid, start: st.start };
      }
      this.seen.set(pid, f);
      live.add(pid);
      ppid.set(pid, f.ppid);
      starts.set(pid, f.start);
    }
    for (const pid of this.pythonness.keys()) if (!live.has(pid)) this.pythonness.delete(pid);
    // a Python process's command line is read once (kept with its pythonness: the same
    // pid, start time and executable), not at every scan
    const cmdline = (pid: number): string[] => {
      const known = this.pythonness.get(pid);
      if (known?.cmdline !== undefined) return known.cmdline;
      const line = (readText(`${this.procRoot}/${pid}/cmdline`) ?? '').split('\0').filter((x, i, a) => x !== '' || i < a.length - 1);
      if (known !== undefined && line.length > 0) known.cmdline = line;
      return line;
    };
    const add = (pid: number, why: string, rootCmdline?: string[]) => {
      if (out.has(pid) || this.self.has(pid)) return;
      const start = starts.get(pid)!;
      if (!this.isPython(pid, start)) return;
      const f: Found = { pid, start, cmdline: cmdline(pid), exe: this.pythonness.get(pid)!.exe, why };
      if (rootCmdline !== undefined) f.rootCmdline = rootCmdline;
      out.set(pid, f);
    };
    let children: Map<number, number[]> | undefined;
    /** the Python descendants of a target: a gunicorn or uvicorn master's workers, a pool's processes */
    const descendants = (root: number) => {
      if (spec.children === false) return;
      if (children === undefined) {
        children = new Map();
        for (const [pid, pp] of ppid) {
          let l = children.get(pp);
          if (!l) children.set(pp, (l = []));
          l.push(pid);
        }
      }
      // read once for all of them (a given root that is not Python has no cached command line)
      let rootLine: string[] | undefined;
      const queue = [root];
      const seen = new Set([root]);
      while (queue.length) {
        for (const ch of children.get(queue.shift()!) ?? []) {
          if (seen.has(ch)) continue;
          seen.add(ch);
          queue.push(ch);
          add(ch, `child of ${root}`, (rootLine ??= cmdline(root)));
        }
      }
    };
    // given pids and their descendants
    for (const root of given) {
      if (!live.has(root)) continue;
      add(root, 'pid');
      descendants(root);
    }
    if (filtered) {
      const unit = spec.unit === undefined ? undefined : spec.unit.endsWith('.service') || spec.unit.includes('.') ? spec.unit : `${spec.unit}.service`;
      const matched: number[] = [];
      for (const pid of live) {
        if (out.has(pid) || this.self.has(pid)) continue;
        if (!this.isPython(pid, starts.get(pid)!)) continue;
        if (spec.match !== undefined && !spec.match.test(cmdline(pid).join(' '))) continue;
        if (unit !== undefined || spec.cgroup !== undefined) {
          const labels = cgroupLabels(readText(`${this.procRoot}/${pid}/cgroup`));
          if (unit !== undefined && labels.systemd_unit !== unit) continue;
          if (spec.cgroup !== undefined && !(labels.cgroup ?? '/').startsWith(spec.cgroup)) continue;
        }
        add(pid, spec.match !== undefined ? 'match' : unit !== undefined ? 'unit' : spec.cgroup !== undefined ? 'cgroup' : 'all-python');
        matched.push(pid);
      }
      // a matched master's workers, whatever their own command line (uvicorn's spawned ones;
      // a unit's or cgroup's are in it already)
      if (spec.match !== undefined) for (const pid of matched) descendants(pid);
    }
    return out;
  }
}
