/**
 * The profile store from the command line: `--save [--store PATH] [--label k=v]` on every
 * capture command, and `pylens store add|ls|rm|gc|export`. The store itself is
 * `../store/store.ts`.
 */
import { basename } from 'node:path';
import { importProfile } from '../formats/index.ts';
import type { Profile } from '../model/profile.ts';
import { defaultStorePath, parseLabels, ProfileStore, StoreError, type StoredProfile } from '../store/store.ts';
import { UsageError, type CommandSpec, type OptionSpec, type Parsed } from './args.ts';
import { pickExporter, readInput, writeOutput } from './commands.ts';
import { CliError, EXIT_USAGE } from './errors.ts';
import { renderStoreList } from '../render/store-list.ts';
import { storedPage } from '../render/html.ts';

/** Options of every command that captures a profile. */
export const saveOptions: OptionSpec[] = [
  { name: 'save', type: 'boolean', help: 'also keep the profile in the profile store (pylens store ls, pylens serve)' },
  { name: 'store', type: 'string', value: 'PATH', help: `the store's database file (default $XDG_DATA_HOME/pylens/profiles.db)` },
  { name: 'label', type: 'list', value: 'K=V[,…]', help: 'labels for the saved profile, e.g. --label env=prod,service=orders' },
];

/** The store named by --store (or the default), opened; StoreError becomes a CliError. */
export function openStore(args: Parsed, o: { create?: boolean } = {}): ProfileStore {
  const path = (args.options.store as string | undefined) ?? process.env.PYLENS_STORE ?? defaultStorePath();
  try {
    return ProfileStore.open(path, o);
  } catch (e) {
    if (e instanceof StoreError) throw new CliError(e.message, e.fix);
    throw e;
  }
}

/** --label values checked before a capture starts (a bad one must not waste a recording). */
export function checkSaveArgs(command: string, args: Parsed): void {
  const labels = (args.options.label as string[] | undefined) ?? [];
  if (labels.length && !args.options.save) throw new UsageError(command, '--label labels a saved profile: add --save');
  if (args.options.store !== undefined && !args.options.save) throw new UsageError(command, '--store names where --save keeps the profile: add --save');
  try {
    parseLabels(labels);
  } catch (e) {
    if (e instanceof StoreError) throw new UsageError(command, `--label: ${e.message}`);
    throw e;
  }
}

/** With --save: keep `profile` in the store and say so on stderr; returns its row. */
export function saveIfAsked(command: string, args: Parsed, profile: Profile): StoredProfile | undefined {
  if (!args.options.save) return undefined;
  const labels = parseLabels((args.options.label as string[] | undefined) ?? []);
  const store = openStore(args);
  try {
    // with the workbench's page data, so pylens serve opens it without decoding it first
    const row = store.add(profile, { labels, source: command, page: storedPage(profile) });
    process.stderr.write(`pylens ${command}: saved as #${row.id} in ${store.path}\n`);
    return row;
  } finally {
    store.close();
  }
}

export const storeSpec: CommandSpec = {
  name: 'store',
  summary: 'The profile store: add files of any format, list and filter, remove, expire, export.',
  usage: 'pylens store add FILE… | ls | rm ID… | gc --older-than 30d | export ID -o OUT   [--store PATH]',
  positionals: { min: 1, max: 100_000 },
  options: [
    { name: 'store', type: 'string', value: 'PATH', help: `the store's database file (default $XDG_DATA_HOME/pylens/profiles.db, or $PYLENS_STORE)` },
    { name: 'label', type: 'list', value: 'K=V[,…]', help: 'add: labels for the added profiles' },
    { name: 'from', type: 'string', value: 'FORMAT', help: 'add: input format, when detection should not decide' },
    { name: 'where', type: 'list', value: 'K=V|K!=V|K', help: 'ls: keep profiles whose labels match (every one given)' },
    { name: 'service', type: 'string', value: 'NAME', help: 'ls: one service' },
    { name: 'lens', type: 'string', value: 'LENS', help: 'ls: one lens (sampling, perf, ebpf, interpreter, import)' },
    { name: 'since', type: 'string', value: 'WHEN', help: 'ls: started at or after (ISO time, or an age like 2h, 7d)' },
    { name: 'search', type: 'string', value: 'TEXT', help: 'ls: name, service, command or a label value contains TEXT' },
    { name: 'function', type: 'string', value: 'NAME', help: 'ls: profiles where a function named like NAME carries value' },
    { name: 'limit', type: 'number', value: 'N', help: 'ls: at most N rows (default 50)' },
    { name: 'json', type: 'boolean', help: 'ls: JSON rows instead of the table' },
    { name: 'older-than', type: 'string', value: 'AGE', help: 'gc: remove profiles added longer ago than AGE (30d, 12h, 90m)' },
    { name: 'output', short: 'o', type: 'string', value: 'OUT', help: 'export: the file to write; format from its extension' },
    { name: 'format', short: 'f', type: 'string', value: 'FORMAT', help: 'export: output format (overrides the extension)' },
  ],
  examples: [
    'pylens record --save --label env=staging -- python app.py',
    'pylens store add py-spy.txt profile.pstats --label service=orders',
    'pylens store ls --where env=staging --since 7d',
    'pylens store export 42 -o orders.speedscope.json',
    'pylens store gc --older-than 30d',
  ],
};

/** "30d", "12h", "90m", "45s", "2w" → milliseconds; undefined when unreadable */
export function parseAge(s: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$/.exec(s);
  if (!m) return undefined;
  return Number(m[1]) * { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 }[m[2] as 's']!;
}

function idsOf(args: string[]): number[] {
  return args.map((a) => {
    const n = Number(a.replace(/^#/, ''));
    if (!Number.isInteger(n) || n <= 0) throw new UsageError('store', `'${a}' is not a profile id (a whole number, as pylens store ls shows)`);
    return n;
  });
}

export function runStore(args: Parsed): number {
  const [sub, ...rest] = args.positionals;
  const o = args.options;
  switch (sub) {
    case 'add': {
      if (rest.length === 0) throw new UsageError('store', 'store add needs FILE… (profiles in any format pylens reads)');
      const labels = (() => {
        try {
          return parseLabels((o.label as string[] | undefined) ?? []);
        } catch (e) {
          throw new UsageError('store', `--label: ${(e as Error).message}`);
        }
      })();
      const profiles = rest.map((file) => ({ file, profile: importProfile(readInput(file), o.from as string | undefined).profile }));
      const store = openStore(args);
      try {
        for (const { file, profile } of profiles) {
          const row = store.add(profile, { labels, source: basename(file), page: storedPage(profile) });
          process.stdout.write(`#${row.id}\t${file}\t${row.service}\t${row.samples} samples\n`);
        }
      } finally {
        store.close();
      }
      return 0;
    }
    case 'ls': {
      if (rest.length) throw new UsageError('store', `store ls takes no arguments (got ${rest.join(' ')}); filter with --where, --service, --since, --search`);
      let since: number | undefined;
      if (o.since !== undefined) {
        const age = parseAge(o.since as string);
        since = age !== undefined ? Date.now() - age : Date.parse(o.since as string);
        if (!Number.isFinite(since)) throw new UsageError('store', `--since '${o.since}' is neither an age (7d, 12h) nor an ISO time`);
      }
      const store = openStore(args, { create: false });
      try {
        const { total, rows } = store.list({
          ...(o.where ? { where: o.where as string[] } : {}),
          ...(o.service !== undefined ? { service: o.service as string } : {}),
          ...(o.lens !== undefined ? { lens: o.lens as string } : {}),
          ...(since !== undefined ? { since } : {}),
          ...(o.search !== undefined ? { search: o.search as string } : {}),
          ...(o.function !== undefined ? { fn: o.function as string } : {}),
          limit: (o.limit as number | undefined) ?? 50,
        });
        if (o.json) {
          process.stdout.write(JSON.stringify({ store: store.path, total, profiles: rows }, null, 2) + '\n');
          return 0;
        }
        process.stdout.write(renderStoreList(rows, total, store.path));
      } finally {
        store.close();
      }
      return 0;
    }
    case 'rm': {
      if (rest.length === 0) throw new UsageError('store', 'store rm needs the ids to remove (pylens store ls shows them)');
      const ids = idsOf(rest);
      const store = openStore(args, { create: false });
      try {
        const missing = ids.filter((id) => !store.get(id));
        if (missing.length) throw new CliError(`store: no profile ${missing.map((m) => `#${m}`).join(', ')} in ${store.path}`, 'pylens store ls lists the ids');
        const n = store.remove(ids);
        process.stdout.write(`removed ${n} profile${n === 1 ? '' : 's'}\n`);
      } finally {
        store.close();
      }
      return 0;
    }
    case 'gc': {
      const age = o['older-than'] === undefined ? undefined : parseAge(o['older-than'] as string);
      if (age === undefined) throw new UsageError('store', o['older-than'] === undefined ? 'store gc needs --older-than AGE (e.g. 30d)' : `--older-than '${o['older-than']}' is not an age (e.g. 30d, 12h, 90m)`);
      const store = openStore(args, { create: false });
      try {
        const n = store.gc(Date.now() - age);
        process.stdout.write(`removed ${n} profile${n === 1 ? '' : 's'} added more than ${o['older-than']} ago\n`);
      } finally {
        store.close();
      }
      return 0;
    }
    case 'export': {
      if (rest.length !== 1) throw new UsageError('store', 'store export takes one id: pylens store export ID -o OUT');
      const out = o.output as string | undefined;
      if (!out) throw new UsageError('store', 'store export needs -o OUT (the file to write)');
      const exporter = pickExporter('store', out, o.format as string | undefined);
      const [id] = idsOf(rest);
      const store = openStore(args, { create: false });
      try {
        const p = store.profile(id!);
        if (!p) throw new CliError(`store: no profile #${id} in ${store.path}`, 'pylens store ls lists the ids');
        const abs = writeOutput(out, exporter.write(p, { title: p.meta.name ?? `profile #${id}` }));
        process.stdout.write(`${abs}\n`);
      } finally {
        store.close();
      }
      return 0;
    }
    default:
      throw new CliError(`store: unknown subcommand '${sub}'`, 'use add, ls, rm, gc or export (pylens help store)', EXIT_USAGE);
  }
}
