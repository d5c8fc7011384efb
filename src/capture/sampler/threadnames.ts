/**
 * Thread names of a live CPython 3.8–3.13, read out of process as py-spy does:
 * `interp->modules` (sys.modules) → "threading" → its module `__dict__` → `_active`
 * (dict: ident → Thread) → each Thread's instance attribute `_name` (a str). The ident is
 * `threading.get_ident()` = pthread_self() = the walker's `ThreadStack.pthreadId`.
 *
 * - Dicts are read by scanning their entries (no hashing): 3.8–3.10 keys tables are
 *   `dk_size`-indexed with 24-byte entries; 3.11+ use `dk_log2_index_bytes` and 16-byte
 *   unicode entries unless `dk_kind` is general. Split dicts take values from `ma_values`.
 * - Instance attributes: 3.8–3.10 the dict at `tp_dictoffset`; 3.11 values/dict pointers in
 *   the pre-header (obj−32 / obj−24); 3.12 one tagged word at obj−24 (odd = values − 1);
 *   3.13 inline values after the header while `valid`, else the dict at obj−24. Values are
 *   indexed like the type's shared keys (`ht_cached_keys`).
 * - Every object is type-checked (builtin types by `tp_name`, cached per type address),
 *   every count and length is bounded, and an unreadable or implausible object ends only
 *   the lookup it belongs to: a torn read yields the names read so far, never an exception.
 *   Only ProcessGoneError / PermissionError (the target exited or refused us) and
 *   programmer errors (bad arguments) are thrown.
 *
 * `ThreadNames` caches the map for a sampler: it re-reads every `refreshMs`, less often
 * (up to `maxRefreshMs`) while nothing changes, and sooner (rate-limited) when asked for an
 * ident it has not seen.
 */
import type { Layout } from './layouts/types.ts';
import { BadReadError, readCString, type Address, type ProcessMemory } from './memory.ts';
import { PageCacheMemory } from './walker.ts';

export interface ThreadNameOptions {
  /** entries read from any one dict (sys.modules, a module's namespace, `_active`); default 65536 */
  maxEntries?: number;
  /** threads read from `_active`; default 4096 */
  maxThreads?: number;
  /** longer names are cut to this many characters followed by "…"; default 1024 */
  maxNameChars?: number;
  /** read 4 KiB pages once per call (default true) */
  pageCache?: boolean;
}

/** The layout sections this file needs (optional in `Layout`: absent from older generated layouts). */
type ObjectLayout = Layout & Required<Pick<Layout, 'dict_table' | 'dict_values' | 'long' | 'module' | 'type_ext' | 'instance_dict'>>;

/** Whether `layout` carries the object-reading sections thread names need. */
export function hasObjectLayout(layout: Layout): layout is ObjectLayout {
  return !!(layout.dict_table && layout.dict_values && layout.long && layout.module && layout.type_ext && layout.instance_dict);
}

const DEFAULTS = { maxEntries: 1 << 16, maxThreads: 4096, maxNameChars: 1024 };
/** digits of an int key (thread idents fit in 64 bits = 3 digits of 30 bits) */
const MAX_LONG_DIGITS = 8;
const MAX_TYPE_NAME = 64;

/** Data that is not what it should be (torn read, freed object, wrong type): ends one lookup. */
export class Implausible extends Error {}

function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Torn or implausible data: swallowed (the lookup gives up). Everything else propagates. */
/** a read that met memory changing under it (BadReadError) or data that is not what it should be */
export function isTorn(e: unknown): boolean {
  return e instanceof BadReadError || e instanceof Implausible;
}

export interface TypeInfo {
  /** tp_name for static (non-heap) types; null for heap types (classes) */
  name: string | null;
  flags: number;
  basicsize: number;
  dictoffset: number;
}

/** One key/value of a dict (value 0 = absent / deleted). */
interface Entry {
  index: number;
  key: Address;
  value: Address;
}

/** A keys table: where entries start and what they look like. */
interface KeysTable {
  addr: Address;
  entries: Address;
  count: number;
  /** bytes per entry */
  size: number;
  /** byte offset of the key / value inside an entry */
  keyAt: number;
  valueAt: number;
}

/** Where an object keeps its instance attributes (see ObjectReader.instanceStorage). */
export type InstanceStorage =
  | { kind: 'values' | 'inline'; type: Address; values: Address; capacity?: number }
  | { kind: 'dict'; dict: Address }
  | { kind: 'none' };

/** Cache of where a key was found: `${keysTable}:${name}` → entry index and key object. */
export type HintCache = Map<string, { index: number; key: Address }>;
const MAX_HINTS = 1024;

/**
 * Reads Python objects by value through `mem`. Static (builtin) type facts may be shared
 * across readers through `staticTypes` (they live as long as the process); heap types are
 * re-read per reader. Methods throw BadReadError or an internal "implausible data" error on
 * torn reads; `readThreadNames` turns those into a partial answer.
 */
export class ObjectReader {
  readonly mem: ProcessMemory;
  readonly L: ObjectLayout;
  private staticTypes: Map<Address, TypeInfo>;
  private heapTypes = new Map<Address, TypeInfo>();
  private hints: HintCache;
  private maxEntries: number;

  constructor(mem: ProcessMemory, layout: ObjectLayout, opts: { maxEntries?: number; staticTypes?: Map<Address, TypeInfo>; hints?: HintCache } = {}) {
    this.mem = mem;
    this.L = layout;
    this.staticTypes = opts.staticTypes ?? new Map();
    this.hints = opts.hints ?? new Map();
    this.maxEntries = opts.maxEntries ?? DEFAULTS.maxEntries;
  }

  private ptr(addr: Address): Address {
    const v = this.mem.readU64(addr);
    if (v >= 1n << 47n || (v & 7n) !== 0n) throw new Implausible(`0x${v.toString(16)} at 0x${addr.toString(16)} is not an object pointer`);
    return Number(v);
  }

  /** A NUL-terminated C string shorter than `max` (memory.ts readCString); Implausible when longer. */
  private cString(addr: Address, max: number): string {
    const s = readCString(this.mem, addr, max);
    if (s.length >= max) throw new Implausible('type name too long');
    return s;
  }

  typeInfo(type: Address): TypeInfo {
    const hit = this.staticTypes.get(type) ?? this.heapTypes.get(type);
    if (hit) return hit;
    const T = this.L.type_ext;
    const end = Math.max(this.L.type.tp_name, this.L.type.tp_flags, T.tp_basicsize, T.tp_dictoffset) + 8;
    const d = dv(this.mem.read(type, end));
    const flags = Number(d.getBigUint64(this.L.type.tp_flags, true) & 0xffffffffn);
    const heap = (flags & T.flag_heaptype) !== 0;
    const info: TypeInfo = {
      name: heap ? null : this.cString(Number(d.getBigUint64(this.L.type.tp_name, true)), MAX_TYPE_NAME),
      flags,
      basicsize: Number(d.getBigInt64(T.tp_basicsize, true)),
      dictoffset: Number(d.getBigInt64(T.tp_dictoffset, true)),
    };
    (heap ? this.heapTypes : this.staticTypes).set(type, info);
    return info;
  }

  /** tp_name of any type, heap types (classes) included */
  typeName(type: Address): string {
    return this.cString(this.mem.readPtr(type + this.L.type.tp_name), MAX_TYPE_NAME);
  }

  typeOf(obj: Address): { addr: Address; info: TypeInfo } {
    const addr = this.ptr(obj + this.L.object.ob_type);
    if (addr === 0) throw new Implausible(`object 0x${obj.toString(16)} has no type`);
    return { addr, info: this.typeInfo(addr) };
  }

  /** true when `obj` is exactly the builtin type `name` ("dict", "str", "int", "module") */
  isBuiltin(obj: Address, name: string): boolean {
    return this.typeOf(obj).info.name === name;
  }

  private expect(obj: Address, name: string): void {
    if (obj === 0 || !this.isBuiltin(obj, name)) throw new Implausible(`0x${obj.toString(16)} is not a ${name}`);
  }

  /** The keys table header: where its entries are and how many (capped at maxEntries). */
  keysTable(keys: Address): KeysTable {
    const K = this.L.dict_table;
    const d = dv(this.mem.read(keys, K.dk_indices));
    const nentries = Number(d.getBigInt64(K.dk_nentries, true));
    let entries: Address;
    let unicode = false;
    let size: number;
    if (K.dk_size !== null) {
      // 3.8–3.10: index width from dk_size (Objects/dict-common.h DK_IXSIZE)
      const dkSize = Number(d.getBigInt64(K.dk_size, true));
      if (dkSize < 8 || dkSize > 2 ** 32 || (dkSize & (dkSize - 1)) !== 0) throw new Implausible(`dk_size ${dkSize}`);
      if (nentries < 0 || nentries > dkSize) throw new Implausible(`dk_nentries ${nentries} of ${dkSize}`);
      const ix = dkSize <= 0xff ? 1 : dkSize <= 0xffff ? 2 : dkSize <= 0xffffffff ? 4 : 8;
      entries = keys + K.dk_indices + dkSize * ix;
      size = K.entry_size;
    } else {
      const log2 = d.getUint8(K.dk_log2_size!);
      const log2ix = d.getUint8(K.dk_log2_index_bytes!);
      const kind = d.getUint8(K.dk_kind!);
      if (log2 < 3 || log2 > 32 || log2ix < log2 || log2ix > log2 + 3) throw new Implausible(`dk_log2_size ${log2}, dk_log2_index_bytes ${log2ix}`);
      if (kind !== K.kind_general && kind !== K.kind_unicode && kind !== K.kind_split) throw new Implausible(`dk_kind ${kind}`);
      if (nentries < 0 || nentries > 2 ** log2) throw new Implausible(`dk_nentries ${nentries} of ${2 ** log2}`);
      unicode = kind !== K.kind_general;
      entries = keys + K.dk_indices + 2 ** log2ix;
      size = unicode ? K.unicode_entry_size! : K.entry_size;
    }
    // PyDictKeyEntry: hash, key, value; PyDictUnicodeEntry: key, value
    return { addr: keys, entries, count: Math.min(nentries, this.maxEntries), size, keyAt: unicode ? 0 : 8, valueAt: unicode ? 8 : 16 };
  }

  private entryAt(t: KeysTable, i: number): Entry {
    const d = dv(this.mem.read(t.entries + i * t.size, t.size));
    return { index: i, key: Number(d.getBigUint64(t.keyAt, true)), value: Number(d.getBigUint64(t.valueAt, true)) };
  }

  private allEntries(t: KeysTable): Entry[] {
    if (t.count === 0) return [];
    const d = dv(this.mem.read(t.entries, t.count * t.size));
    const out: Entry[] = [];
    for (let i = 0; i < t.count; i++) {
      const key = Number(d.getBigUint64(i * t.size + t.keyAt, true));
      if (key !== 0) out.push({ index: i, key, value: Number(d.getBigUint64(i * t.size + t.valueAt, true)) });
    }
    return out;
  }

  /** Value i of a split table's values (`PyObject *[]` before 3.11, PyDictValues after). */
  private splitValue(values: Address, i: number): Address {
    return Number(this.mem.readU64(values + this.L.dict_values.values + i * 8));
  }

  /** How many values a PyDictValues holds: its `capacity` (3.13+), else `n` (sized to the keys). */
  private valuesCapacity(values: Address, n: number): number {
    const V = this.L.dict_values;
    return V.capacity === null ? n : Math.min(n, this.mem.read(values + V.capacity, 1)[0]!);
  }

  private splitValues(values: Address, n: number): Address[] {
    n = this.valuesCapacity(values, n);
    if (n === 0) return [];
    const d = dv(this.mem.read(values + this.L.dict_values.values, n * 8));
    return Array.from({ length: n }, (_, i) => Number(d.getBigUint64(i * 8, true)));
  }

  /** ma_keys and ma_values of a dict object (type-checked). */
  private dictParts(dict: Address): { keys: Address; values: Address } {
    this.expect(dict, 'dict');
    const D = this.L.dict;
    const d = dv(this.mem.read(dict, D.size));
    const keys = Number(d.getBigUint64(D.ma_keys, true));
    if (keys === 0) throw new Implausible(`dict 0x${dict.toString(16)} has no keys`);
    return { keys, values: Number(d.getBigUint64(D.ma_values, true)) };
  }

  /** Every live (key, value) of a dict, in insertion order, at most maxEntries. */
  dictItems(dict: Address): { key: Address; value: Address }[] {
    const { keys, values } = this.dictParts(dict);
    const t = this.keysTable(keys);
    const entries = this.allEntries(t);
    const vals = values !== 0 ? this.splitValues(values, t.count) : undefined;
    const out: { key: Address; value: Address }[] = [];
    for (const e of entries) {
      const value = vals ? (vals[e.index] ?? 0) : e.value;
      if (value !== 0) out.push({ key: e.key, value });
    }
    return out;
  }

  /** Does str object `obj` equal the ASCII string `s`? (false for anything not an exact str) */
  strEquals(obj: Address, s: string): boolean {
    if (obj === 0 || (obj & 7) !== 0 || !this.isBuiltin(obj, 'str')) return false;
    const U = this.L.unicode;
    const d = dv(this.mem.read(obj, U.state + 4));
    if (Number(d.getBigInt64(U.length, true)) !== s.length) return false;
    const state = d.getUint32(U.state, true);
    const compactAscii = (state & (1 << 5)) !== 0 && (state & (1 << 6)) !== 0;
    if (!compactAscii) return false;
    if (s.length === 0) return true;
    const b = this.mem.read(obj + U.ascii_size, s.length);
    for (let i = 0; i < s.length; i++) if (b[i] !== s.charCodeAt(i)) return false;
    return true;
  }

  /**
   * The entry of `name` in a keys table: found by scanning (every key compared by value),
   * or — when this table held it at a remembered index with the same key object, which the
   * table keeps alive, so it is the same string — straight from the hint.
   */
  private findKey(t: KeysTable, name: string): Entry | undefined {
    const hintKey = `${t.addr}:${name}`;
    const hint = this.hints.get(hintKey);
    if (hint && hint.index < t.count) {
      const e = this.entryAt(t, hint.index);
      if (e.key === hint.key) return e;
    }
    for (const e of this.allEntries(t)) {
      let equal: boolean;
      try {
        equal = this.strEquals(e.key, name);
      } catch (err) {
        if (!isTorn(err)) throw err;
        continue; // one unreadable key (freed, torn) does not hide the others
      }
      if (!equal) continue;
      if (this.hints.size >= MAX_HINTS) this.hints.clear();
      this.hints.set(hintKey, { index: e.index, key: e.key });
      return e;
    }
    return undefined;
  }

  /** dict[name] for a str key, or 0 when absent. */
  dictGetStr(dict: Address, name: string): Address {
    const { keys, values } = this.dictParts(dict);
    const t = this.keysTable(keys);
    const e = this.findKey(t, name);
    if (!e) return 0;
    if (values === 0) return e.value;
    return e.index < this.valuesCapacity(values, t.count) ? this.splitValue(values, e.index) : 0;
  }

  /** Attribute `name` held in values shared-keyed by the type's `ht_cached_keys`, or 0. */
  private valuesGet(type: Address, values: Address, name: string, capacity?: number): Address {
    const keys = this.ptr(type + this.L.type_ext.ht_cached_keys);
    if (keys === 0) return 0;
    const t = this.keysTable(keys);
    const e = this.findKey(t, name);
    if (!e || e.index >= (capacity ?? this.valuesCapacity(values, t.count))) return 0;
    return this.splitValue(values, e.index);
  }

  /**
   * Where an instance keeps its attributes: shared-key `values` (3.11 pre-header pointer,
   * 3.12 tagged word), `inline` values (3.13, while valid), a `dict`, or `none`.
   */
  instanceStorage(obj: Address): InstanceStorage {
    const { addr: type, info } = this.typeOf(obj);
    const T = this.L.type_ext;
    const I = this.L.instance_dict;
    if (T.flag_managed_dict !== null && (info.flags & T.flag_managed_dict) !== 0 && I.managed_dict !== null) {
      if (I.inline_values !== null && T.flag_inline_values !== null && (info.flags & T.flag_inline_values) !== 0) {
        // 3.13: inline values right after the header, while still valid
        const values = obj + I.inline_values;
        const V = this.L.dict_values;
        if (V.valid === null || this.mem.read(values + V.valid, 1)[0] !== 0) {
          const capacity = V.capacity !== null ? this.mem.read(values + V.capacity, 1)[0] : undefined;
          return { kind: 'inline', type, values, ...(capacity !== undefined ? { capacity } : {}) };
        }
      }
      if (I.managed_values !== null) {
        // 3.11: values pointer before the dict pointer in the pre-header
        const values = this.ptr(obj + I.managed_values);
        if (values !== 0) return { kind: 'values', type, values };
      }
      const word = this.mem.readU64(obj + I.managed_dict);
      // 3.12: an odd word is values − 1
      if (I.tagged_values && (word & 1n) === 1n) return { kind: 'values', type, values: Number(word + 1n) };
      if (word >= 1n << 47n || (word & 7n) !== 0n) throw new Implausible(`managed dict word 0x${word.toString(16)}`);
      return word === 0n ? { kind: 'none' } : { kind: 'dict', dict: Number(word) };
    }
    if (info.dictoffset > 0) {
      if (info.dictoffset > 1 << 20) throw new Implausible(`tp_dictoffset ${info.dictoffset}`);
      const dict = this.ptr(obj + info.dictoffset);
      return dict === 0 ? { kind: 'none' } : { kind: 'dict', dict };
    }
    return { kind: 'none' }; // no instance dict, or a variable-size object's negative offset: not a Thread
  }

  /** Instance attribute `name` from the object's own attributes (not the class), or 0. */
  instanceAttr(obj: Address, name: string): Address {
    const st = this.instanceStorage(obj);
    if (st.kind === 'none') return 0;
    if (st.kind === 'dict') return this.dictGetStr(st.dict, name);
    return this.valuesGet(st.type, st.values, name, st.kind === 'inline' ? st.capacity : undefined);
  }

  /** An exact int as a bigint, or null when `obj` is not one (or has more than 8 digits). */
  readInt(obj: Address): bigint | null {
    return this.isBuiltin(obj, 'int') ? readLong(this.mem, this.L.long, obj) : null;
  }

  /** An exact str as a JS string (at most `maxChars` characters, then "…"), or null if not a str. */
  readStr(obj: Address, maxChars: number): string | null {
    if (!this.isBuiltin(obj, 'str')) return null;
    const U = this.L.unicode;
    const d = dv(this.mem.read(obj, U.state + 4));
    const length = Number(d.getBigInt64(U.length, true));
    const state = d.getUint32(U.state, true);
    const kind = (state >> 2) & 7;
    const compact = (state >> 5) & 1;
    const ascii = (state >> 6) & 1;
    if (length < 0 || length > 1 << 30) throw new Implausible(`str length ${length}`);
    if ((kind !== 1 && kind !== 2 && kind !== 4) || (ascii && kind !== 1)) throw new Implausible(`str kind ${kind}`);
    const data = compact ? obj + (ascii ? U.ascii_size : U.compact_size) : this.ptr(obj + U.data);
    if (data === 0) throw new Implausible('str without data');
    const n = Math.min(length, maxChars);
    const suffix = n < length ? '…' : '';
    if (n === 0) return suffix;
    const bytes = this.mem.read(data, n * kind);
    if (kind === 1) return Buffer.from(bytes).toString('latin1') + suffix;
    if (kind === 2) return Buffer.from(bytes).toString('utf16le') + suffix;
    const v = dv(bytes);
    let s = '';
    for (let i = 0; i < n; i++) {
      const c = v.getUint32(i * 4, true);
      s += c <= 0x10ffff ? String.fromCodePoint(c) : '\ufffd';
    }
    return s + suffix;
  }
}

/** The main interpreter (`_PyRuntime.interpreters.head`), 0 when there is none yet. */
export function mainInterpreter(mem: ProcessMemory, layout: Layout, runtimeAddress: Address): Address {
  return mem.readPtr(runtimeAddress + layout.runtime.interpreters_head);
}

/** Internal: state kept across reads by ThreadNames. */
interface ReadState {
  staticTypes: Map<Address, TypeInfo>;
  hints: HintCache;
}

function checkArgs(layout: Layout, interpAddress: Address, minor: number): void {
  if (!Number.isSafeInteger(interpAddress) || interpAddress < 0) throw new TypeError(`interpAddress must be an address, got ${interpAddress}`);
  if (!Number.isInteger(minor) || minor < 8) throw new RangeError(`thread names need CPython 3.8+, got minor ${minor}`);
  if (!layout || typeof layout.hexversion !== 'number') throw new TypeError('layout must be a generated Layout');
  if (((layout.hexversion >> 16) & 0xff) !== minor) throw new RangeError(`layout is for ${layout.version}, not 3.${minor}`);
}

function readNames(mem: ProcessMemory, layout: Layout, interpAddress: Address, minor: number, opts: ThreadNameOptions, state?: ReadState): Map<bigint, string> {
  checkArgs(layout, interpAddress, minor);
  const names = new Map<bigint, string>();
  if (!hasObjectLayout(layout) || interpAddress === 0) return names;
  if (opts.pageCache !== false) mem = new PageCacheMemory(mem);
  const maxThreads = opts.maxThreads ?? DEFAULTS.maxThreads;
  const maxChars = opts.maxNameChars ?? DEFAULTS.maxNameChars;
  const r = new ObjectReader(mem, layout, { maxEntries: opts.maxEntries, staticTypes: state?.staticTypes, hints: state?.hints });
  let threads: { key: Address; value: Address }[];
  try {
    const modules = mem.readPtr(interpAddress + layout.interp.modules);
    if (modules === 0) return names;
    const threading = r.dictGetStr(modules, 'threading');
    if (threading === 0 || !r.isBuiltin(threading, 'module')) return names;
    const md = mem.readPtr(threading + layout.module.md_dict);
    if (md === 0) return names;
    const active = r.dictGetStr(md, '_active');
    if (active === 0) return names;
    threads = r.dictItems(active).slice(0, maxThreads);
  } catch (e) {
    if (isTorn(e)) return names;
    throw e;
  }
  for (const { key, value } of threads) {
    try {
      const ident = r.readInt(key);
      if (ident === null) continue;
      const name = r.instanceAttr(value, '_name');
      if (name === 0) continue;
      const text = r.readStr(name, maxChars);
      if (text !== null) names.set(ident, text);
    } catch (e) {
      if (!isTorn(e)) throw e; // one unreadable thread: skip it
    }
  }
  return names;
}

/**
 * ident (pthread_self(), as `threading.get_ident()` and the walker's `pthreadId`) → name of
 * every thread in `threading._active` of the interpreter at `interpAddress`. Empty when the
 * process has not imported `threading`, or the layout lacks the object sections. Never
 * throws for unreadable or inconsistent memory (returns the names read so far).
 */
export function readThreadNames(mem: ProcessMemory, layout: Layout, interpAddress: Address, minor: number, opts: ThreadNameOptions = {}): Map<bigint, string> {
  return readNames(mem, layout, interpAddress, minor, opts);
}

export interface ThreadNamesOptions extends ThreadNameOptions {
  /** re-read this often at first, and again after a re-read found a change; default 1000 ms */
  refreshMs?: number;
  /**
   * each re-read that finds the names unchanged doubles the wait before the next, up to
   * this; default 16,000 ms (a renamed thread shows its new name within it; a new thread's
   * ident asks at once, `minRefreshMs`)
   */
  maxRefreshMs?: number;
  /** an unknown ident triggers a re-read, but not sooner than this after the last one; default 100 ms */
  minRefreshMs?: number;
  /** milliseconds clock (default performance.now); injectable for tests */
  now?: () => number;
}

/**
 * Cached thread names for a sampler: `get(ident)` costs a Map lookup except when a re-read
 * is due (periodic: `refreshMs` after the first read and after one that found a change, the
 * wait doubled by each re-read that found none, up to `maxRefreshMs`; or when `ident` is
 * unknown and `minRefreshMs` has passed since the last read; an ident still unknown after
 * that re-read is not retried until the next periodic one). Measured on a one-thread target
 * at 100 Hz, re-reading once a second took an eighth of the sampler's own CPU time.
 */
export class ThreadNames {
  private mem: ProcessMemory;
  private layout: Layout;
  private interp: Address | (() => Address);
  private minor: number;
  private opts: ThreadNamesOptions;
  private now: () => number;
  private names = new Map<bigint, string>();
  private missing = new Set<bigint>();
  private last: number | undefined;
  /** the wait before the next periodic re-read: refreshMs, doubled by each unchanged one */
  private period: number | undefined;
  private state: ReadState = { staticTypes: new Map(), hints: new Map() };
  /** number of times the names were read from the process */
  reads = 0;

  /**
   * `interpAddress`: the interpreter, or a function returning it at each re-read (e.g.
   * `() => mainInterpreter(mem, layout, rt.runtimeAddress)` for a process attached before
   * its interpreter existed; an unreadable one counts as none).
   */
  constructor(mem: ProcessMemory, layout: Layout, interpAddress: Address | (() => Address), minor: number, opts: ThreadNamesOptions = {}) {
    checkArgs(layout, typeof interpAddress === 'function' ? 0 : interpAddress, minor);
    this.mem = mem;
    this.layout = layout;
    this.interp = interpAddress;
    this.minor = minor;
    this.opts = opts;
    this.now = opts.now ?? (() => performance.now());
  }

  /** false when the layout cannot read names (get always answers undefined) */
  get supported(): boolean {
    return hasObjectLayout(this.layout);
  }

  /** Read the names now. Throws only ProcessGoneError / PermissionError. */
  refresh(): ReadonlyMap<bigint, string> {
    let interp: Address;
    if (typeof this.interp === 'function') {
      try {
        interp = this.interp();
      } catch (e) {
        if (!(e instanceof BadReadError)) throw e;
        interp = 0;
      }
    } else interp = this.interp;
    const names = readNames(this.mem, this.layout, interp, this.minor, this.opts, this.state);
    const base = this.opts.refreshMs ?? 1000;
    this.period = sameNames(names, this.names) && this.period !== undefined ? Math.min(2 * this.period, Math.max(base, this.opts.maxRefreshMs ?? 16000)) : base;
    this.names = names;
    // an ident this read found is no longer missing; one it did not is retried at the next
    // periodic read, not by the next get (each periodic read was followed by a second one)
    for (const ident of this.missing) if (names.has(ident)) this.missing.delete(ident);
    this.last = this.now();
    this.reads++;
    return this.names;
  }

  /** The name of thread `ident` (pthread_self(), the walker's `pthreadId`), re-reading when due. */
  get(ident: bigint): string | undefined {
    if (!this.supported) return undefined;
    const now = this.now();
    if (this.last === undefined || now - this.last >= this.period!) this.refresh();
    else if (!this.names.has(ident) && !this.missing.has(ident) && now - this.last >= (this.opts.minRefreshMs ?? 100)) {
      this.refresh();
      if (!this.names.has(ident)) this.missing.add(ident);
    }
    return this.names.get(ident);
  }

  /** The names as last read (no re-read). */
  snapshot(): ReadonlyMap<bigint, string> {
    return this.names;
  }
}

function sameNames(a: ReadonlyMap<bigint, string>, b: ReadonlyMap<bigint, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

/**
 * The value of the int object at `obj` (its type already checked): its sign and digits as
 * the layout says (3.12+ `lv_tag`, else `ob_size`), or null past MAX_LONG_DIGITS digits.
 */
export function readLong(mem: ProcessMemory, G: NonNullable<Layout['long']>, obj: Address): bigint | null {
  let ndigits: number;
  let negative: boolean;
  if (G.lv_tag !== null) {
    const tag = mem.readU64(obj + G.lv_tag);
    ndigits = Number(tag >> BigInt(G.non_size_bits!));
    const sign = 1 - Number(tag & BigInt(G.sign_mask!));
    if (sign === 0) return 0n;
    negative = sign < 0;
  } else {
    const size = Number(dv(mem.read(obj + G.ob_size!, 8)).getBigInt64(0, true));
    if (size === 0) return 0n;
    ndigits = Math.abs(size);
    negative = size < 0;
  }
  if (ndigits > MAX_LONG_DIGITS || ndigits < 1) return null;
  const d = dv(mem.read(obj + G.ob_digit, ndigits * G.digit_size));
  let v = 0n;
  for (let i = ndigits - 1; i >= 0; i--) {
    const digit = G.digit_size === 4 ? d.getUint32(i * 4, true) : d.getUint16(i * 2, true);
    if (digit >= 2 ** G.shift) throw new Implausible(`int digit ${digit}`);
    v = (v << BigInt(G.shift)) | BigInt(digit);
  }
  return negative ? -v : v;
}
