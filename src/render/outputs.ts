/**
 * Every output pylens writes: the data formats (src/formats) and the views written here
 * (interactive HTML, SVG flamegraph, top table). The CLI picks from this list by id or by
 * the output file's extension.
 */
import { EXPORTERS, exporterForPath } from '../formats/index.ts';
import type { Exporter } from '../formats/types.ts';
import { htmlExporter } from './html.ts';
import { svgExporter } from './svg.ts';
import { topExporter } from './top.ts';

export const OUTPUTS: readonly Exporter[] = [...EXPORTERS.filter((e) => e.id !== 'pstats'), svgExporter, htmlExporter, topExporter, ...EXPORTERS.filter((e) => e.id === 'pstats')];

export function outputById(id: string): Exporter | undefined {
  return OUTPUTS.find((e) => e.id === id);
}

/** The output whose extension the path ends with (longest match wins). */
export function outputForPath(path: string): Exporter | undefined {
  return exporterForPath(path, OUTPUTS);
}
