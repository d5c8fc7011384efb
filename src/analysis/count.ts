/**
 * The `count` lens's result as data (python/pylens/_lens_count.py writes it): per function,
 * exact calls and, with --time, total and mean time (`countRows`).
 */

export interface CountCode {
  file: string;
  line: number;
  name: string;
}

export interface CountFunction {
  spec: string;
  module: string;
  qualname: string;
  resolved: boolean;
  how: 'import' | 'main' | 'loaded' | 'attribute' | null;
  calls: number;
  total_ns: number | null;
  codes: CountCode[];
  error: string | null;
}

export interface CountData {
  mechanism: 'sys.monitoring' | 'sys.setprofile';
  time: boolean;
  functions: CountFunction[];
}

export interface CountRow {
  function: string;
  calls: number;
  totalNs: number | null;
  meanNs: number | null;
  file: string | null;
  line: number | null;
  error: string | null;
}

export function countRows(data: CountData): CountRow[] {
  return data.functions.map((f) => ({
    function: f.spec,
    calls: f.calls,
    totalNs: data.time && f.resolved ? (f.total_ns ?? 0) : null,
    meanNs: data.time && f.resolved && f.calls > 0 ? (f.total_ns ?? 0) / f.calls : null,
    file: f.codes[0]?.file ?? null,
    line: f.codes[0]?.line ?? null,
    error: f.resolved ? null : (f.error ?? `${f.spec} was never resolved`),
  }));
}
