/**
 * bpftrace map printouts (bpftrace 0.17 as captured in fixtures/bpftrace/; the text output
 * is not a stable API, so the parser is tolerant), text and `-f json` (NDJSON).
 *
 * Text: maps print at exit as `@name[key]: value`, one entry per line, except that a
 * stack key spans lines: `\n` then one frame per line, leaf first, then `\n`:
 *
 *   @[                              @[                        @[,
 *       leaf+12                         fdget_pos+209             0x7f56e9e9c47f
 *       caller+34                       ksys_write+40         , python3.12]: 1
 *   ]: 11430                        ,
 *                                       __GI___write+79
 *                                   , python3.12]: 1
 *
 * Several keys are joined with ", " (an empty stack prints as nothing, hence `@[, `).
 * Frames are `sym+off`, unresolved `0x…`, and with `ustack(perf)` tab-indented
 * `addr sym+off (module)`. JSON: `{"type": "map", "data": {"@": {"<key>": N, …}}}` where
 * <key> is the same text joined with "," (no space).
 *
 * Model: every map whose keys hold a stack is imported, one value column (unit samples)
 * per map, named after the map; other maps (counts by comm, histograms, …) are listed in
 * meta.extra.skippedMaps. Which key position is a kernel stack is decided per map from
 * its frames (kernel entry points and addresses ≥ 0xffff8…); user stacks come first
 * (root side), then kernel frames. User frames are native, or python when the symbol is a
 * CPython perf-map name `py::qualname:/path/file.py`. The first string key (comm) names
 * the thread and a numeric key is taken as the thread id; bpftrace prints no pid, so
 * pid is 0 and, without a numeric key, each comm gets a synthetic thread id (1, 2, …).
 * Remaining scalar keys become marker frames at the root.
 */
import { ProfileBuilder } from '../model/builder.ts';
import type { FrameSpec, Profile } from '../model/profile.ts';
import { NOT_MINE, ParseError, type Importer, type InputFile, type NotMine } from './types.ts';

type Segment = { kind: 'stack'; frames: string[] } | { kind: 'empty' } | { kind: 'scalar'; text: string };

interface Entry {
  segments: Segment[];
  value: number;
  line: number;
}

interface BtMap {
  name: string;
  entries: Entry[];
  /** Not a count map (histogram, stats, non-numeric values). */
  other: boolean;
}

interface Parsed {
  maps: Map<string, BtMap>;
  probes?: number;
}

/** Split a printed key into its parts. `sep` is ", " (text) or "," (JSON). */
function parseKey(raw: string, sep: string): Segment[] {
  const segs: Segment[] = [];
  let i = 0;
  const n = raw.length;
  for (;;) {
    if (raw[i] === '\n') {
      const frames: string[] = [];
      i++;
      while (i < n && (raw[i] === ' ' || raw[i] === '\t')) {
        let j = raw.indexOf('\n', i);
        if (j < 0) j = n;
        frames.push(raw.slice(i, j));
        i = Math.min(n, j + 1);
      }
      segs.push({ kind: 'stack', frames });
    } else {
      let j = raw.indexOf(sep, i);
      if (j < 0) j = n;
      const text = raw.slice(i, j);
      segs.push(text === '' ? { kind: 'empty' } : { kind: 'scalar', text });
      i = j;
    }
    if (i >= n) break;
    if (raw.startsWith(sep, i)) {
      i += sep.length;
      if (i >= n) {
        segs.push({ kind: 'empty' });
        break;
      }
    } else {
      // Something after a stack that is not a separator: keep it as a scalar.
      segs.push({ kind: 'scalar', text: raw.slice(i) });
      break;
    }
  }
  return segs;
}

const ENTRY_START = /^(@[A-Za-z_0-9]*)(\[|:)(.*)$/;
const CLOSE_VALUE = /^(.*)\]: (-?\d+)\s*$/;
const CLOSE_OTHER = /^(.*)\]:\s*(.*)$/;

function getMap(maps: Map<string, BtMap>, name: string): BtMap {
  let m = maps.get(name);
  if (!m) maps.set(name, (m = { name, entries: [], other: false }));
  return m;
}

function parseText(text: string, file: string): Parsed | NotMine {
  const lines = text.split(/\r?\n/);
  const maps = new Map<string, BtMap>();
  let probes: number | undefined;
  const a = /^Attaching (\d+) probes?/.exec(lines[0] ?? '');
  if (a) probes = Number(a[1]);
  for (let i = 0; i < lines.length; i++) {
    const m = ENTRY_START.exec(lines[i]!);
    if (!m) continue; // printf output, histogram bodies, blank lines, the "Attaching" banner
    const name = m[1]!;
    if (m[2] === ':') {
      // `@x: 5`, `@h:` + histogram, `@s: count 1, average 2, total 3`
      getMap(maps, name).other = true;
      continue;
    }
    const start = i + 1;
    let raw = m[3]!;
    let last = raw; // the current line of the key; frame lines are indented, the closing line is not
    for (;;) {
      if (!/^[ \t]/.test(last)) {
        const closed = CLOSE_VALUE.exec(last);
        if (closed) {
          const key = raw.slice(0, raw.length - last.length) + closed[1]!;
          getMap(maps, name).entries.push({ segments: parseKey(key, ', '), value: Number(closed[2]), line: start });
          break;
        }
        if (CLOSE_OTHER.test(last)) {
          getMap(maps, name).other = true; // `@h[key]:` then a histogram, or a non-integer value
          break;
        }
      }
      i++;
      if (i >= lines.length) throw new ParseError('bpftrace', file, { line: start }, `map entry ${name}[ is not closed by "]: <count>" before the end of the file`);
      last = lines[i]!;
      if (ENTRY_START.test(last)) throw new ParseError('bpftrace', file, { line: i + 1 }, `a new map entry starts inside the key of ${name}[ begun on line ${start}`);
      raw += `\n${last}`;
    }
  }
  if (maps.size === 0 && probes === undefined) return NOT_MINE;
  return { maps, ...(probes !== undefined ? { probes } : {}) };
}

const JSON_TYPES = /^\{\s*"type"\s*:\s*"(attached_probes|map|hist|lhist|stats|printf|time|lost_events|join|syscall|helper_error)"/;

function parseJson(text: string, file: string): Parsed | NotMine {
  const lines = text.split(/\r?\n/);
  const maps = new Map<string, BtMap>();
  let probes: number | undefined;
  let seen = 0;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!.trim();
    if (!l) continue;
    let rec: unknown;
    try {
      rec = JSON.parse(l);
    } catch (e) {
      if (seen === 0) return NOT_MINE;
      throw new ParseError('bpftrace', file, { line: i + 1 }, `not a JSON record (${(e as Error).message})`);
    }
    if (typeof rec !== 'object' || rec === null || typeof (rec as { type?: unknown }).type !== 'string') {
      if (seen === 0) return NOT_MINE;
      throw new ParseError('bpftrace', file, { line: i + 1 }, 'a record without a "type"');
    }
    seen++;
    const { type, data } = rec as { type: string; data?: unknown };
    if (type === 'attached_probes' && typeof data === 'object' && data !== null) {
      const p = (data as { probes?: unknown }).probes;
      if (typeof p === 'number') probes = p;
    } else if ((type === 'map' || type === 'hist' || type === 'lhist' || type === 'stats') && typeof data === 'object' && data !== null) {
      for (const [name, body] of Object.entries(data as Record<string, unknown>)) {
        const m = getMap(maps, name);
        if (type !== 'map' || typeof body !== 'object' || body === null || Array.isArray(body)) {
          m.other = true;
          continue;
        }
        for (const [key, value] of Object.entries(body as Record<string, unknown>)) {
          if (typeof value !== 'number') {
            m.other = true;
            continue;
          }
          m.entries.push({ segments: parseKey(key, ','), value, line: i + 1 });
        }
      }
    }
  }
  if (seen === 0) return NOT_MINE;
  return { maps, ...(probes !== undefined ? { probes } : {}) };
}

// ---------------------------------------------------------------------------------------
// Frames

interface RawFrame {
  sym: string;
  lib?: string;
}

function parseFrame(s: string): RawFrame {
  let t = s.trim();
  let lib: string | undefined;
  if (s.startsWith('\t')) {
    // ustack(perf): "7f931d3cfe10 _PyObject_Malloc+96 (/path/libpython3.12.so.1.0)"
    const m = /^[0-9a-f]+ (.*)$/i.exec(t);
    if (m) t = m[1]!;
  }
  const mod = /^(.*\S) \(([^()]*)\)$/.exec(t);
  if (mod && (/\+\d+$|\+0x[0-9a-f]+$|^0x[0-9a-f]+$/i.test(mod[1]!) || s.startsWith('\t'))) {
    t = mod[1]!;
    if (mod[2] && mod[2] !== '[unknown]') lib = mod[2];
  }
  const off = /^(.+)\+(?:\d+|0x[0-9a-f]+)$/i.exec(t);
  if (off) t = off[1]!;
  return lib !== undefined ? { sym: t, lib } : { sym: t };
}

const KERNEL_SYM =
  /^(entry_SYSCALL|do_syscall_64|x64_sys_call|__x64_sys_|__ia32_sys_|__arm64_sys_|__do_sys_|__se_sys_|__sys_|ksys_|vfs_|asm_exc_|asm_sysvec_|asm_common_interrupt|sysvec_|common_interrupt|ret_from_fork|secondary_startup|start_kernel|cpu_startup_entry|do_idle|default_idle|native_safe_halt|__softirqentry|irq_exit|el0_|el1_|invoke_syscall|__schedule|schedule$|exc_page_fault|do_user_addr_fault|handle_mm_fault|__handle_mm_fault|syscall_exit_to_user_mode|exit_to_user_mode|do_group_exit|do_exit$|arch_do_signal)/;
const USER_SYM = /^(_?Py|py::|__libc_|__GI_|_start$|pthread_|start_thread$|clone3?$|main$|_dl_|__tls_get_addr)/;

function isKernelAddr(sym: string): boolean {
  return /^(0x)?ffff[89a-f][0-9a-f]{11}$/i.test(sym);
}
function isUserAddr(sym: string): boolean {
  return /^(0x)?(7f|55|56)[0-9a-f]{10}$/i.test(sym);
}

function pythonFrame(sym: string): FrameSpec | null {
  if (!sym.startsWith('py::')) return null;
  const rest = sym.slice(4);
  const c = rest.indexOf(':');
  const qual = c >= 0 ? rest.slice(0, c) : rest;
  const file = c >= 0 ? rest.slice(c + 1) : undefined;
  const dot = qual.lastIndexOf('.');
  return { name: dot >= 0 ? qual.slice(dot + 1) : qual, qualname: qual, ...(file ? { file } : {}), kind: 'python' };
}

// ---------------------------------------------------------------------------------------
// Parsed maps → model

function toModel(parsed: Parsed, file: string): Profile {
  const all = [...parsed.maps.values()];
  const stackMaps = all.filter((m) => !m.other && m.entries.some((e) => e.segments.some((s) => s.kind === 'stack')));
  const skipped = all.filter((m) => !stackMaps.includes(m)).map((m) => m.name);
  if (stackMaps.length === 0) {
    const what = all.length ? `maps ${all.map((m) => m.name).join(', ')} hold no stacks` : 'no maps were printed';
    throw new ParseError('bpftrace', file, { line: 1 }, `no stack-count map to import (${what})`);
  }

  const b = new ProfileBuilder({
    meta: {
      lens: 'ebpf',
      backend: 'bpftrace',
      mode: 'unknown',
      extra: {
        map: stackMaps[0]!.name,
        ...(stackMaps.length > 1 ? { maps: stackMaps.map((m) => m.name).join(', ') } : {}),
        ...(skipped.length ? { skippedMaps: skipped.join(', ') } : {}),
        ...(parsed.probes !== undefined ? { probes: parsed.probes } : {}),
      },
    },
    valueTypes: stackMaps.map((m) => ({ name: m.name, unit: 'samples' as const })),
    defaultValue: 0,
    timed: false,
  });

  const synthetic = new Map<string, number>();
  let usedSynthetic = false;
  const vals = new Array<number>(stackMaps.length).fill(0);
  stackMaps.forEach((m, col) => {
    // Which key positions are kernel stacks: vote over all frames at that position.
    const score = new Map<number, number>();
    for (const e of m.entries) {
      e.segments.forEach((s, pos) => {
        if (s.kind !== 'stack') return;
        let k = 0;
        for (const f of s.frames) {
          const { sym } = parseFrame(f);
          if (KERNEL_SYM.test(sym) || isKernelAddr(sym)) k++;
          else if (USER_SYM.test(sym) || isUserAddr(sym)) k--;
        }
        score.set(pos, (score.get(pos) ?? 0) + k);
      });
    }
    const kernelPos = new Set([...score].filter(([, s]) => s > 0).map(([p]) => p));

    for (const e of m.entries) {
      const user: number[] = [];
      const kernel: number[] = [];
      const markers: number[] = [];
      let comm: string | undefined;
      let tid: number | undefined;
      e.segments.forEach((s, pos) => {
        if (s.kind === 'stack') {
          const isK = kernelPos.has(pos);
          const out = isK ? kernel : user;
          for (let i = s.frames.length - 1; i >= 0; i--) {
            const { sym, lib } = parseFrame(s.frames[i]!);
            if (!sym) continue;
            let spec: FrameSpec;
            if (isK) spec = { name: sym, kind: 'kernel', ...(lib ? { lib } : {}) };
            else spec = pythonFrame(sym) ?? { name: sym, kind: 'native', ...(lib ? { lib } : {}) };
            out.push(b.frame(spec));
          }
        } else if (s.kind === 'scalar') {
          const t = s.text.trim();
          if (tid === undefined && /^\d+$/.test(t)) tid = Number(t);
          else if (comm === undefined && !/^-?\d+$/.test(t)) comm = t;
          else markers.push(b.frame({ name: t, kind: 'marker' }));
        }
      });
      let thread: number;
      if (tid !== undefined) thread = b.thread(0, tid, comm);
      else if (comm !== undefined) {
        let id = synthetic.get(comm);
        if (id === undefined) synthetic.set(comm, (id = synthetic.size + 1));
        usedSynthetic = true;
        thread = b.thread(0, id, comm);
      } else thread = b.thread(0, 0);
      vals.fill(0);
      vals[col] = e.value;
      b.sample(b.stackOf([...markers, ...user, ...kernel]), vals, thread);
    }
  });
  if (usedSynthetic) b.meta.extra = { ...b.meta.extra, threadIds: 'synthetic, one per comm' };
  return b.build();
}

// ---------------------------------------------------------------------------------------
// Importer

const TEXT_STACK_ENTRY = /^@[A-Za-z_0-9]*\[(?:, ?)*\r?\n(?: {4}|\t)\S/m;

function detect(input: InputFile): boolean {
  const head = input.head();
  if (JSON_TYPES.test(head.trimStart())) return true;
  return TEXT_STACK_ENTRY.test(head);
}

const BANNER = /^Attaching \d+ probes?\.\.\./;

function parse(input: InputFile): Profile | NotMine {
  const head = input.head();
  const isJson = JSON_TYPES.test(head.trimStart());
  const text = input.text();
  // Text: ours only with a stack entry somewhere or bpftrace's banner on the first line.
  if (!isJson && !BANNER.test(text) && !TEXT_STACK_ENTRY.test(text)) return NOT_MINE;
  const parsed = isJson ? parseJson(text, input.label) : parseText(text, input.label);
  if (parsed === NOT_MINE) return NOT_MINE;
  return toModel(parsed, input.label);
}

export const bpftraceImporter: Importer = {
  id: 'bpftrace',
  extensions: ['.bt.txt', '.bpftrace', '.bt.json'],
  detect,
  parse,
};
