/**
 * The profile store: one SQLite database file (node:sqlite, WAL) holding profiles losslessly
 * (their `.pylens` bytes) with indexed metadata, labels and a per-function summary, so lists
 * and cross-profile queries never decode a profile.
 *
 * Durability: every add is one transaction (BEGIN IMMEDIATE … COMMIT) writing the profile row,
 * its bytes, labels and functions together, so a process killed at any moment leaves either
 * all of it or none; WAL with synchronous=NORMAL keeps the database consistent after a crash
 * of the process (a power loss may drop the last commits, never corrupt). Writers from many
 * processes wait for each other (busy timeout), they do not fail.
 *
 * Schema: versioned with PRAGMA user_version; MIGRATIONS[i] takes version i to i + 1, each in
 * its own transaction. A database newer than this pylens is refused with a message.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { createRequire } from 'node:module';
import { decodePylens, encodePylens } from '../formats/pylens.ts';
import type { Profile, ProfileMeta } from '../model/profile.ts';
import { aggregate } from '../model/query.ts';

// node:sqlite through require: it is loaded only by commands that use the store, and Node
// prints its "experimental" warning only then
const require = createRequire(import.meta.url);

export class StoreError extends Error {
  readonly fix: string;
  constructor(message: string, fix: string) {
    super(message);
    this.name = 'StoreError';
    this.fix = fix;
  }
}

/** Where the store lives by default: $XDG_DATA_HOME/pylens/profiles.db (~/.local/share/…). */
export function defaultStorePath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_DATA_HOME && env.XDG_DATA_HOME.startsWith('/') ? env.XDG_DATA_HOME : join(env.HOME || homedir(), '.local/share');
  return join(base, 'pylens', 'profiles.db');
}

const MIGRATIONS: string[] = [
  // 0 → 1
  `CREATE TABLE profiles (
     id INTEGER PRIMARY KEY,
     name TEXT NOT NULL,
     service TEXT NOT NULL,
     lens TEXT NOT NULL,
     mode TEXT NOT NULL,
     backend TEXT NOT NULL,
     command TEXT,
     pid INTEGER,
     host TEXT,
     python TEXT,
     start_ms REAL,
     end_ms REAL,
     duration_ns REAL,
     samples INTEGER NOT NULL,
     errors INTEGER NOT NULL,
     overhead REAL,
     source TEXT,
     added_ms REAL NOT NULL,
     bytes INTEGER NOT NULL,
     meta TEXT NOT NULL
   );
   CREATE INDEX profiles_start ON profiles(start_ms);
   CREATE INDEX profiles_service ON profiles(service, start_ms);
   CREATE INDEX profiles_added ON profiles(added_ms);
   CREATE TABLE blobs (id INTEGER PRIMARY KEY REFERENCES profiles(id) ON DELETE CASCADE, data BLOB NOT NULL);
   CREATE TABLE labels (profile INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (profile, key));
   CREATE INDEX labels_kv ON labels(key, value);
   CREATE TABLE functions (
     profile INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
     name TEXT NOT NULL,
     file TEXT,
     kind TEXT NOT NULL,
     self REAL NOT NULL,
     total REAL NOT NULL
   );
   CREATE INDEX functions_profile ON functions(profile);
   CREATE INDEX functions_name ON functions(name);`,
  // 1 → 2: each profile's labels also as one JSON object in its row (a list reads one column,
  // not a subquery per row); the labels table stays the index for filters
  `ALTER TABLE profiles ADD COLUMN labels_json TEXT NOT NULL DEFAULT '{}';
   UPDATE profiles SET labels_json = COALESCE((SELECT json_group_object(key, value) FROM labels WHERE profile = profiles.id), '{}');`,
  // 2 → 3: the workbench's page data of a profile, made when it is saved (opaque bytes and the
  // version of the code that made them), so its first open need not decode and encode it
  `CREATE TABLE pages (id INTEGER PRIMARY KEY REFERENCES profiles(id) ON DELETE CASCADE, version TEXT NOT NULL, data BLOB NOT NULL);`,
];
export const SCHEMA_VERSION = MIGRATIONS.length;

/** Data derived from a profile by a caller (the workbench's page), with the version of the code that made it. */
export interface StoredPage {
  version: string;
  bytes: Uint8Array;
}

/** A stored profile's row: everything a list shows, without the profile itself. */
export interface StoredProfile {
  id: number;
  name: string;
  service: string;
  lens: string;
  mode: string;
  backend: string;
  command: string | null;
  pid: number | null;
  host: string | null;
  python: string | null;
  /** wall-clock start and end, ms since the epoch (null when the profile does not say) */
  startMs: number | null;
  endMs: number | null;
  durationNs: number | null;
  samples: number;
  errors: number;
  /** the capture's own cost, 0–1 */
  overhead: number | null;
  /** where it came from: 'record', a file name */
  source: string | null;
  addedMs: number;
  /** size of the stored .pylens bytes */
  bytes: number;
  labels: Record<string, string>;
}

export interface ListQuery {
  /** label filters: key=value (equal), key!=value, key (present) */
  where?: string[];
  service?: string;
  lens?: string;
  /** start time range, ms since the epoch */
  since?: number;
  until?: number;
  /** substring of name, service, command or a label value */
  search?: string;
  /** profiles holding this function (name substring, from the function summary) */
  fn?: string;
  limit?: number;
  offset?: number;
  order?: 'newest' | 'oldest';
}

export interface StoredFunction {
  name: string;
  file: string | null;
  kind: string;
  /** shares of the profile's total, 0–1 */
  self: number;
  total: number;
}

/** The per-function summary kept for each profile: the functions carrying the most (inclusive) value. */
const SUMMARY_FUNCTIONS = 200;

const LABEL_KEY = /^[A-Za-z_][A-Za-z0-9_.\-/]*$/;

/** Parse "k=v" labels (the CLI's --label); throws StoreError naming the bad one. */
export function parseLabels(items: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const it of items) {
    const eq = it.indexOf('=');
    const k = eq < 0 ? '' : it.slice(0, eq);
    if (eq < 0 || !LABEL_KEY.test(k)) throw new StoreError(`label '${it}' is not key=value`, 'write labels as key=value, the key a name (letters, digits, _ . - /), e.g. --label env=prod');
    out[k] = it.slice(eq + 1);
  }
  return out;
}

/** The service a profile belongs to: its `service` label, else the program (`-m module` or script), else its name. */
export function serviceOf(p: Profile, labels: Record<string, string>): string {
  if (labels.service) return labels.service;
  const cmd = p.meta.command ?? [];
  const m = cmd.indexOf('-m');
  if (m >= 0 && cmd[m + 1]) return cmd[m + 1]!;
  const script = cmd.find((a, i) => i > 0 && /\.py$/.test(a));
  if (script) return script.replace(/^.*\//, '').replace(/\.py$/, '');
  const name = (p.meta.name ?? p.meta.source?.file ?? 'profile').replace(/^.*\//, '').replace(/ \(pid \d+\)$/, '');
  return name.replace(/(\.[A-Za-z0-9]+)+$/, '') || name;
}

/** a row as StoredProfile's fields (labels apart: their JSON object) */
const COLUMNS =
  'p.id, p.name, p.service, p.lens, p.mode, p.backend, p.command, p.pid, p.host, p.python, p.start_ms AS startMs, p.end_ms AS endMs, p.duration_ns AS durationNs, p.samples, p.errors, p.overhead, p.source, p.added_ms AS addedMs, p.bytes';
type Row = Omit<StoredProfile, 'labels'> & { labels: string | null };

export class ProfileStore {
  readonly path: string;
  readonly db: DatabaseSync;
  private stmts = new Map<string, StatementSync>();

  private constructor(path: string, db: DatabaseSync) {
    this.path = path;
    this.db = db;
  }

  /**
   * Open (creating when `create`, the default) the store at `path`, migrating its schema.
   * Throws StoreError with a fix for a file that is not a pylens store or is newer.
   */
  static open(path: string, o: { create?: boolean; readOnly?: boolean } = {}): ProfileStore {
    const abs = resolve(path);
    const create = o.create ?? !o.readOnly;
    if (!existsSync(abs)) {
      if (!create) throw new StoreError(`no profile store at ${abs}`, 'save a profile first (pylens record … --save, pylens store add FILE) or pass --store PATH');
      try {
        mkdirSync(dirname(abs), { recursive: true });
      } catch (e) {
        throw new StoreError(`cannot create the folder of ${abs}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'pass --store PATH somewhere writable');
      }
    } else if (statSync(abs).isDirectory()) throw new StoreError(`${abs} is a folder, not a store file`, 'pass --store PATH/profiles.db');
    const { DatabaseSync } = require('node:sqlite') as typeof import('node:sqlite');
    let db: DatabaseSync;
    try {
      db = new DatabaseSync(abs, { readOnly: o.readOnly ?? false, timeout: 30_000 });
    } catch (e) {
      throw new StoreError(`cannot open the store ${abs}: ${(e as Error).message}`, 'check the path and its permissions, or pass --store PATH');
    }
    const store = new ProfileStore(abs, db);
    try {
      if (!o.readOnly) db.exec('PRAGMA journal_mode = WAL');
      db.exec('PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON');
      store.migrate(o.readOnly ?? false);
    } catch (e) {
      db.close();
      if (e instanceof StoreError) throw e;
      const msg = (e as Error).message;
      throw new StoreError(`${abs} is not a pylens profile store (${msg})`, 'pass --store PATH naming a store pylens created, or a new file');
    }
    return store;
  }

  private migrate(readOnly: boolean): void {
    const version = (this.db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
    if (version > SCHEMA_VERSION) throw new StoreError(`the store ${this.path} has schema version ${version}; this pylens knows up to ${SCHEMA_VERSION}`, 'upgrade pylens, or pass --store PATH for another store');
    if (version === 0) {
      // a database someone else made is not ours to change
      const tables = this.db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get() as { n: number };
      if (tables.n > 0) throw new StoreError(`${this.path} is an SQLite database but not a pylens profile store`, 'pass --store PATH naming a pylens store, or a new file');
    }
    if (version === SCHEMA_VERSION) return;
    if (readOnly) throw new StoreError(`the store ${this.path} needs its schema upgraded (version ${version} → ${SCHEMA_VERSION})`, 'open it once with a command that writes (pylens store ls upgrades it)');
    for (let v = version; v < SCHEMA_VERSION; v++) {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        // another process may have migrated meanwhile
        const now = (this.db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
        if (now === v) {
          this.db.exec(MIGRATIONS[v]!);
          this.db.exec(`PRAGMA user_version = ${v + 1}`);
        }
        this.db.exec('COMMIT');
      } catch (e) {
        this.db.exec('ROLLBACK');
        throw e;
      }
    }
  }

  private stmt(sql: string): StatementSync {
    let s = this.stmts.get(sql);
    if (!s) this.stmts.set(sql, (s = this.db.prepare(sql)));
    return s;
  }

  close(): void {
    this.db.close();
  }

  /**
   * Store a profile with its labels (automatic ones: lens, mode, host, python); returns its row.
   * `page`: the workbench's page data for it (`render/html.ts storedPage`), kept beside it.
   */
  add(p: Profile, o: { labels?: Record<string, string>; source?: string; name?: string; page?: StoredPage } = {}): StoredProfile {
    const bytes = encodePylens(p);
    const labels: Record<string, string> = {};
    const env = p.meta.environment ?? {};
    if (env.hostname) labels.host = env.hostname;
    if (env.python?.version) labels.python = env.python.version;
    labels.lens = p.meta.lens;
    labels.mode = p.meta.mode;
    Object.assign(labels, o.labels ?? {});
    const service = serviceOf(p, labels);
    labels.service = service;
    const startMs = p.meta.startTime ? Date.parse(p.meta.startTime) : NaN;
    const durNs = p.meta.durationNs ?? null;
    const start = Number.isFinite(startMs) ? startMs : null;
    const end = start !== null && durNs !== null ? start + durNs / 1e6 : null;
    const name = o.name ?? p.meta.name ?? p.meta.source?.file?.replace(/^.*\//, '') ?? service;
    const cmd = p.meta.command?.join(' ') ?? null;
    // the summary: functions by inclusive value, shares of the total
    const agg = aggregate(p);
    const fns = agg.rows
      .filter((r) => r.total > 0)
      .sort((a, b) => b.total - a.total)
      .slice(0, SUMMARY_FUNCTIONS);
    const now = Date.now();
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const r = this.stmt(
        `INSERT INTO profiles (name, service, lens, mode, backend, command, pid, host, python, start_ms, end_ms, duration_ns, samples, errors, overhead, source, added_ms, bytes, meta, labels_json)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        name,
        service,
        p.meta.lens,
        p.meta.mode,
        p.meta.backend,
        cmd,
        p.meta.pid ?? null,
        env.hostname ?? null,
        env.python?.version ?? null,
        start,
        end,
        durNs,
        p.meta.sampleCount,
        p.meta.errorCount,
        p.meta.overhead?.fraction ?? null,
        o.source ?? p.meta.source?.file ?? null,
        now,
        bytes.byteLength,
        JSON.stringify(p.meta),
        JSON.stringify(labels),
      );
      const id = Number(r.lastInsertRowid);
      this.stmt('INSERT INTO blobs (id, data) VALUES (?, ?)').run(id, bytes);
      if (o.page) this.stmt('INSERT INTO pages (id, version, data) VALUES (?, ?, ?)').run(id, o.page.version, o.page.bytes);
      const lab = this.stmt('INSERT INTO labels (profile, key, value) VALUES (?, ?, ?)');
      for (const [k, v] of Object.entries(labels)) lab.run(id, k, v);
      const fn = this.stmt('INSERT INTO functions (profile, name, file, kind, self, total) VALUES (?, ?, ?, ?, ?, ?)');
      const tot = agg.grandTotal || 1;
      for (const f of fns) fn.run(id, f.name, f.file, f.kind, f.self / tot, f.total / tot);
      this.db.exec('COMMIT');
      return this.get(id)!;
    } catch (e) {
      this.db.exec('ROLLBACK');
      throw e;
    }
  }

  private rowOf(r: Row): StoredProfile {
    // node:sqlite rows have a null prototype: a plain object for JSON and deepEqual
    return { ...r, labels: JSON.parse(r.labels ?? '{}') as Record<string, string> };
  }

  get(id: number): StoredProfile | undefined {
    const r = this.stmt(`SELECT ${COLUMNS}, p.labels_json AS labels FROM profiles p WHERE p.id = ?`).get(id) as Row | undefined;
    return r ? this.rowOf(r) : undefined;
  }

  /** Profiles matching `q`, newest first by default, and how many match in all. */
  list(q: ListQuery = {}): { total: number; rows: StoredProfile[] } {
    const where: string[] = [];
    const args: (string | number)[] = [];
    for (const w of q.where ?? []) {
      const m = /^([^=!]+?)\s*(!=|=)\s*(.*)$/.exec(w);
      if (m) {
        where.push(`${m[2] === '!=' ? 'NOT ' : ''}EXISTS (SELECT 1 FROM labels l WHERE l.profile = p.id AND l.key = ? AND l.value = ?)`);
        args.push(m[1]!.trim(), m[3]!);
      } else {
        where.push('EXISTS (SELECT 1 FROM labels l WHERE l.profile = p.id AND l.key = ?)');
        args.push(w.trim());
      }
    }
    if (q.service !== undefined) (where.push('p.service = ?'), args.push(q.service));
    if (q.lens !== undefined) (where.push('p.lens = ?'), args.push(q.lens));
    if (q.since !== undefined) (where.push('COALESCE(p.start_ms, p.added_ms) >= ?'), args.push(q.since));
    if (q.until !== undefined) (where.push('COALESCE(p.start_ms, p.added_ms) < ?'), args.push(q.until));
    if (q.search) {
      const like = `%${q.search.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      where.push(`(p.name LIKE ? ESCAPE '\\' OR p.service LIKE ? ESCAPE '\\' OR p.command LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM labels l WHERE l.profile = p.id AND l.value LIKE ? ESCAPE '\\'))`);
      args.push(like, like, like, like);
    }
    if (q.fn) {
      where.push(`EXISTS (SELECT 1 FROM functions f WHERE f.profile = p.id AND f.name LIKE ? ESCAPE '\\')`);
      args.push(`%${q.fn.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
    }
    const cond = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const total = (this.db.prepare(`SELECT count(*) AS n FROM profiles p ${cond}`).get(...args) as { n: number }).n;
    const order = q.order === 'oldest' ? 'ASC' : 'DESC';
    const limit = Math.max(0, Math.min(q.limit ?? 100, 100_000));
    const rows = this.db
      .prepare(`SELECT ${COLUMNS}, p.labels_json AS labels FROM profiles p ${cond} ORDER BY COALESCE(p.start_ms, p.added_ms) ${order}, p.id ${order} LIMIT ? OFFSET ?`)
      .all(...args, limit, Math.max(0, q.offset ?? 0)) as unknown as Row[];
    return { total, rows: rows.map((r) => this.rowOf(r)) };
  }

  /** The stored .pylens bytes of a profile. */
  bytes(id: number): Uint8Array | undefined {
    const r = this.stmt('SELECT data FROM blobs WHERE id = ?').get(id) as { data: Uint8Array } | undefined;
    return r?.data;
  }

  /**
   * A profile's page data when it was made by the code of `version` (bytes are opaque here:
   * `render/html.ts storedPage` makes them); undefined when there is none or another version's.
   */
  page(id: number, version: string): Uint8Array | undefined {
    const r = this.stmt('SELECT data FROM pages WHERE id = ? AND version = ?').get(id, version) as { data: Uint8Array } | undefined;
    return r?.data;
  }

  /** Keep (or replace) a profile's page data; false when the profile is gone. */
  setPage(id: number, page: StoredPage): boolean {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const n = Number(this.stmt('INSERT OR REPLACE INTO pages (id, version, data) SELECT id, ?, ? FROM profiles WHERE id = ?').run(page.version, page.bytes, id).changes);
      this.db.exec('COMMIT');
      return n > 0;
    } catch (e) {
      this.db.exec('ROLLBACK');
      throw e;
    }
  }

  /**
   * Functions over time: for the profiles matching `q` (oldest first), each function's
   * inclusive share in each profile, from the function summaries (no profile is decoded).
   * The functions are `names` when given, else the `top` (default 8) with the largest mean
   * share over those profiles. A profile where a function is not among its 200 heaviest has
   * null for it.
   */
  trend(q: ListQuery & { names?: string[]; top?: number } = {}): { profiles: { id: number; startMs: number; name: string }[]; series: { name: string; file: string | null; mean: number; points: (number | null)[] }[] } {
    const rows = this.list({ ...q, order: 'oldest', limit: Math.min(q.limit ?? 500, 5000) }).rows;
    if (rows.length === 0) return { profiles: [], series: [] };
    const ids = rows.map((r) => r.id);
    const marks = ids.map(() => '?').join(',');
    let chosen: { name: string; file: string | null; mean: number }[];
    if (q.names?.length) {
      chosen = this.db
        .prepare(`SELECT name, file, sum(total) / ? AS mean FROM functions WHERE profile IN (${marks}) AND name IN (${q.names.map(() => '?').join(',')}) GROUP BY name, file ORDER BY mean DESC`)
        .all(ids.length, ...ids, ...q.names) as unknown as { name: string; file: string | null; mean: number }[];
    } else {
      // the roots (nearly) every stack shares (<module>, thread bootstraps) say nothing: leave
      // out functions at 95 % or more in every profile
      chosen = this.db
        .prepare(`SELECT name, file, sum(total) / ? AS mean FROM functions WHERE profile IN (${marks}) GROUP BY name, file HAVING min(total) < 0.95 OR count(*) < ? ORDER BY mean DESC LIMIT ?`)
        .all(ids.length, ...ids, ids.length, q.top ?? 8) as unknown as { name: string; file: string | null; mean: number }[];
    }
    const index = new Map(ids.map((id, i) => [id, i]));
    const series = chosen.map((c) => ({ name: c.name, file: c.file, mean: c.mean, points: new Array<number | null>(ids.length).fill(null) }));
    const get = this.db.prepare(`SELECT profile, total FROM functions WHERE profile IN (${marks}) AND name = ? AND file IS ?`);
    for (const s of series) for (const r of get.all(...ids, s.name, s.file) as { profile: number; total: number }[]) s.points[index.get(r.profile)!] = r.total;
    return { profiles: rows.map((r) => ({ id: r.id, startMs: r.startMs ?? r.addedMs, name: r.name })), series };
  }

  /** A stored profile's meta (kept beside its bytes: no decoding). */
  meta(id: number): ProfileMeta | undefined {
    const r = this.stmt('SELECT meta FROM profiles WHERE id = ?').get(id) as { meta: string } | undefined;
    return r ? (JSON.parse(r.meta) as ProfileMeta) : undefined;
  }

  /** A stored profile, decoded. */
  profile(id: number): Profile | undefined {
    const b = this.bytes(id);
    return b ? decodePylens(b, `${this.path}#${id}`) : undefined;
  }

  /** A profile's function summary (shares of its total), largest inclusive first. */
  functions(id: number): StoredFunction[] {
    return this.stmt('SELECT name, file, kind, self, total FROM functions WHERE profile = ? ORDER BY total DESC').all(id) as unknown as StoredFunction[];
  }

  /** Remove profiles; returns how many existed. */
  remove(ids: readonly number[]): number {
    let n = 0;
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const del = this.stmt('DELETE FROM profiles WHERE id = ?');
      for (const id of ids) n += Number(del.run(id).changes);
      this.db.exec('COMMIT');
    } catch (e) {
      this.db.exec('ROLLBACK');
      throw e;
    }
    return n;
  }

  /** Remove profiles added before `beforeMs`; returns how many. */
  gc(beforeMs: number): number {
    this.db.exec('BEGIN IMMEDIATE');
    let n: number;
    try {
      n = Number(this.stmt('DELETE FROM profiles WHERE added_ms < ?').run(beforeMs).changes);
      this.db.exec('COMMIT');
    } catch (e) {
      this.db.exec('ROLLBACK');
      throw e;
    }
    // give the space back
    if (n > 0) this.db.exec('PRAGMA wal_checkpoint(TRUNCATE); VACUUM');
    return n;
  }

  /** Label keys and their values with counts (for the list's filters). */
  labelValues(): { key: string; value: string; count: number }[] {
    return this.stmt('SELECT key, value, count(*) AS count FROM labels GROUP BY key, value ORDER BY key, count DESC').all() as unknown as { key: string; value: string; count: number }[];
  }

  /** `PRAGMA integrity_check` and the foreign keys: problems found (empty when the store is sound). */
  check(): string[] {
    const out: string[] = [];
    for (const r of this.db.prepare('PRAGMA integrity_check').all() as { integrity_check: string }[]) if (r.integrity_check !== 'ok') out.push(r.integrity_check);
    for (const r of this.db.prepare('PRAGMA foreign_key_check').all() as { table: string; rowid: number }[]) out.push(`foreign key: ${r.table} row ${r.rowid}`);
    const orphan = this.db.prepare('SELECT count(*) AS n FROM profiles p WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.id = p.id)').get() as { n: number };
    if (orphan.n > 0) out.push(`${orphan.n} profiles without their bytes`);
    return out;
  }
}
