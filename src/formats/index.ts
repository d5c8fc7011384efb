/**
 * Format registry and dispatcher.
 *
 * Detection order: (1) binary magic of every importer that has one, (2) the file name's
 * ending, (3) structural sniffing, in the order of IMPORTERS. The first importer whose
 * parse does not answer NOT_MINE wins; a ParseError from an importer that matched by
 * magic or by structure surfaces to the user.
 */
import type { Profile } from '../model/profile.ts';
import { pylensExporter, pylensImporter } from './pylens.ts';
import { embeddedImporter } from './embedded.ts';
import { pprofExporter, pprofImporter } from './pprof.ts';
import { pstatsExporter, pstatsImporter } from './pstats.ts';
import { speedscopeExporter, speedscopeImporter } from './speedscope.ts';
import { chromeTraceExporter, chromeTraceImporter } from './chrome-trace.ts';
import { perfScriptImporter } from './perf-script.ts';
import { bpftraceImporter } from './bpftrace.ts';
import { austinImporter } from './austin.ts';
import { tachyonImporter } from './tachyon.ts';
import { pyspyRawImporter } from './pyspy-raw.ts';
import { foldedExporter, foldedImporter } from './folded.ts';
import { InputFile, NOT_MINE, ParseError, UnknownFormatError, type Exporter, type Importer } from './types.ts';

/**
 * Importers, most specific first: structural sniffing tries them in this order, so a
 * format whose text could also pass for a looser one (py-spy raw vs Gregg folded)
 * must come before it.
 */
export const IMPORTERS: Importer[] = [
  pylensImporter,
  embeddedImporter,
  pprofImporter,
  pstatsImporter,
  speedscopeImporter,
  chromeTraceImporter,
  perfScriptImporter,
  bpftraceImporter,
  austinImporter,
  tachyonImporter,
  pyspyRawImporter,
  foldedImporter,
];

/**
 * The data formats pylens writes, by id. The views (HTML, SVG, top table) are render's:
 * src/render/outputs.ts lists every output, these and those.
 */
export const EXPORTERS: Exporter[] = [pylensExporter, foldedExporter, speedscopeExporter, pprofExporter, chromeTraceExporter, pstatsExporter];

export function importerById(id: string): Importer | undefined {
  return IMPORTERS.find((i) => i.id === id);
}

export function exporterById(id: string): Exporter | undefined {
  return EXPORTERS.find((e) => e.id === id);
}

/** The exporter of `exporters` (default: the data formats) whose extension the path ends with (longest match wins). */
export function exporterForPath(path: string, exporters: readonly Exporter[] = EXPORTERS): Exporter | undefined {
  const lower = path.toLowerCase();
  let best: Exporter | undefined;
  let bestLen = 0;
  for (const e of exporters) {
    for (const ext of [e.extension, ...(e.extensions ?? [])]) {
      if (lower.endsWith(ext) && ext.length > bestLen) {
        best = e;
        bestLen = ext.length;
      }
    }
  }
  return best;
}

function byName(name: string | undefined): Importer[] {
  if (!name) return [];
  const lower = name.toLowerCase();
  // "x.pb.gz" matches ".pb.gz"; "x.folded.gz" also matches ".folded" once ".gz" is dropped.
  const candidates = lower.endsWith('.gz') ? [lower, lower.slice(0, -3)] : [lower];
  const score = (i: Importer) => Math.max(0, ...i.extensions.flatMap((e) => candidates.filter((c) => c.endsWith(e)).map(() => e.length)));
  return IMPORTERS.map((i) => ({ i, len: score(i) }))
    .filter((x) => x.len > 0)
    .sort((a, b) => b.len - a.len)
    .map((x) => x.i);
}

/** Result of detection: which importer, and how it was chosen. */
export interface Detection {
  importer: Importer;
  by: 'forced' | 'magic' | 'name' | 'structure';
}

/**
 * Import a profile. `format` forces an importer. Throws ParseError (file + position),
 * UnknownFormatError, or FormatVersionError.
 */
export function importProfile(input: InputFile, format?: string): { profile: Profile; detection: Detection } {
  if (format) {
    const imp = importerById(format);
    if (!imp) throw new Error(`unknown input format '${format}'; known: ${IMPORTERS.map((i) => i.id).join(', ')}`);
    const r = imp.parse(input);
    if (r === NOT_MINE) throw new ParseError(imp.id, input.label, { line: 1 }, `does not look like ${imp.id} input`);
    return { profile: finish(r, imp, input), detection: { importer: imp, by: 'forced' } };
  }
  const tried = new Set<Importer>();
  const attempt = (imp: Importer, by: Detection['by']): { profile: Profile; detection: Detection } | undefined => {
    if (tried.has(imp)) return undefined;
    tried.add(imp);
    const r = imp.parse(input);
    if (r === NOT_MINE) return undefined;
    return { profile: finish(r, imp, input), detection: { importer: imp, by } };
  };
  const head = input.bytes.subarray(0, 64);
  for (const imp of IMPORTERS) {
    if (imp.magic && imp.magic(head)) {
      const r = attempt(imp, 'magic');
      if (r) return r;
    }
  }
  // A name match is a hint, not proof: only trust it if the structure agrees or the importer accepts it.
  for (const imp of byName(input.name)) {
    if (imp.magic && !imp.magic(head)) continue;
    let r: ReturnType<typeof attempt>;
    try {
      r = attempt(imp, 'name');
    } catch (e) {
      // A wrong extension must not hide the real format; rethrow only if structure agrees too.
      if (e instanceof ParseError && !imp.detect(input)) continue;
      throw e;
    }
    if (r) return r;
  }
  for (const imp of IMPORTERS) {
    if (tried.has(imp)) continue;
    if (!imp.detect(input)) continue;
    const r = attempt(imp, 'structure');
    if (r) return r;
  }
  throw new UnknownFormatError(input.label, IMPORTERS.map((i) => i.id));
}

function finish(p: Profile, imp: Importer, input: InputFile): Profile {
  if (!p.meta.source) p.meta.source = { format: imp.id, ...(input.name ? { file: input.name } : {}) };
  return p;
}

export { InputFile };
