/**
 * The contract between the HTML exporter (src/render/html.ts, in Node) and the page code
 * (src/render/page/*.ts, in the browser). Types only: both sides import it with
 * `import type`, so it never reaches the page bundle.
 *
 * The page gets the profile's columns, not a pre-built tree, so it can build the merged
 * and time-order views and filter by thread, process, state and value type itself.
 *
 * Layout of the embedded data:
 *   <script type="application/json" id="pylens-data">  PageData (strings, meta, threads, column specs)
 *   <script type="text/plain" id="pylens-blob">        base64 of the binary blob (deflate-raw
 *                                                       compressed when PageData.compressed)
 * Every numeric column lives in the blob, little-endian, each starting at a multiple of 8.
 *
 * Inside `pylens serve` the page is the same for every profile (no data in it) and its data
 * comes from the workbench by postMessage as one buffer, the page bundle (html.ts
 * `encodePageBundle`, decode.ts `readBundle`):
 *   u32 LE n | n bytes of UTF-8 JSON `PageBundle` | zero padding to a multiple of 8 | the blob (uncompressed)
 */
import type { ProfileMeta, ValueType } from '../../model/profile.ts';

/** Element types a column can be stored as. The page widens them to Int32Array / Float64Array. */
export type ColumnType = 'u8' | 'u16' | 'i32' | 'f64';

export type ColumnSpec =
  /** Every row has the same value (nothing in the blob). */
  | { enc: 'const'; value: number }
  /**
   * `length` elements at byte `offset`; `delta` = each element is the difference to the
   * previous one, times `scale` (default 1). `restarts`: at row `at[k]` the sum starts again
   * from `base[k]` (the row's own element is then 0): times restart at each thread's first row.
   */
  | { enc: ColumnType; offset: number; delta?: boolean; scale?: number; restarts?: { at: number[]; base: number[] } }
  /** Runs of equal values: `count` runs, the run values and their lengths, each a column of `count`. */
  | { enc: 'runs'; count: number; values: ColumnSpec; lengths: ColumnSpec };

/** 2: per-thread time deltas in a common unit (`scale`, `restarts`) and run-length columns (`runs`). */
export const PAGE_DATA_VERSION = 2;

export interface PageData {
  version: typeof PAGE_DATA_VERSION;
  title: string;
  meta: ProfileMeta;
  valueTypes: ValueType[];
  defaultValue: number;
  /** The profile's strings plus the frame labels the exporter made with frameLabel(). */
  strings: string[];
  frameCount: number;
  stackCount: number;
  /**
   * Rows after export-time aggregation: sample rows sorted by (thread, time), with runs
   * of consecutive rows of the same (stack, thread, state) merged (values summed, first
   * time kept, the last one's in `rowRuns`). Merging consecutive identical rows changes
   * neither view. In timed profiles a run does not merge across a gap of more than twice
   * `sampleIntervalNs`, so its samples are evenly spread over its span (the timeline and
   * the time-range filter rely on that).
   */
  rowCount: number;
  /** Sample rows in the profile before aggregation. */
  sampleRows: number;
  /** Whether rows carry times (false for aggregated formats such as pstats or folded). */
  timed: boolean;
  /**
   * The time between two samples of a thread, in ns: 1e9 / meta.rateHz, else the median
   * gap between consecutive samples of a thread; 0 when untimed or unknown.
   */
  sampleIntervalNs?: number;
  /** The earliest and the latest sample time (ns since the profile start), when timed. */
  sampleTimes?: { first: number; last: number };
  threads: { pid: number[]; tid: number[]; name: number[] };
  columns: {
    /** Per frame: string index of the frame's label (frameLabel: `qualname (file:line)`). */
    frameLabel: ColumnSpec;
    /** Per frame: string index of the qualified name. */
    frameName: ColumnSpec;
    /** Per frame: string index of the file, -1 when unknown. */
    frameFile: ColumnSpec;
    frameLine: ColumnSpec;
    /** Per frame: FrameKindCode (python 0, native 1, kernel 2, marker 3). */
    frameKind: ColumnSpec;
    /** Per frame: string index of the shared object / module, -1 when unknown. */
    frameLib: ColumnSpec;
    stackFrame: ColumnSpec;
    /** -1 for roots; a parent always precedes its children. */
    stackParent: ColumnSpec;
    /** Per row: stack index, -1 for an empty stack. */
    rowStack: ColumnSpec;
    rowThread: ColumnSpec;
    /** Per row: SampleStateCode. */
    rowState: ColumnSpec;
    /** Per row: nanoseconds since the profile start; null when untimed. */
    rowTime: ColumnSpec | null;
    /**
     * The rows that are merged runs of samples (timed profiles): `rows` their indexes
     * (ascending, delta-coded), `ns` the time from each one's first sample to its last.
     * Null (or absent) when untimed or when no run was merged.
     */
    rowRuns?: { count: number; rows: ColumnSpec; ns: ColumnSpec } | null;
    /** Per value type, per row. */
    rowValues: ColumnSpec[];
  };
  /** How the blob is compressed. */
  compressed: 'deflate-raw' | null;
  /** Blob length in bytes before compression. */
  blobBytes: number;
}

/** The JSON part of a page bundle (see the top of this file). */
export interface PageBundle {
  data: PageData;
  table: PageTable | null;
}

/**
 * The function table embedded as <script type="application/json" id="pylens-table">
 * (html.ts `tableData`, rows from analysis/report.ts `functionTable`), read by page/table.ts.
 */
export interface PageTable {
  unit: string;
  grandTotal: number;
  /** The heaviest functions by total over the whole profile (at most `limit`), with their sandwich. */
  rows: PageTableRow[];
  /** How many rows a table holds (the page's recomputed tables too). */
  limit: number;
  /**
   * Every function of the profile (keys and labels as in `rows`; its name is the qualified
   * name of its frames), and per frame its function: what the page needs to recompute the
   * table for its filters (page/functions.ts).
   */
  fns: { label: string[]; frame: number[] };
}

export interface PageTableEntry {
  /** index into `rows`, -1 when the function is not listed */
  row: number;
  label: string;
  value: number;
}

export interface PageTableRow {
  label: string;
  name: string;
  file: string | null;
  self: number;
  total: number;
  /** value by state name, when the profile has several states */
  states?: Partial<Record<string, number>>;
  /** pstats's columns, for profiles that count calls (trace, yappi, cProfile dumps); times in seconds */
  pstats?: { ncalls: number; primitive: number; tottime: number; cumtime: number };
  callers: PageTableEntry[];
  callees: PageTableEntry[];
}
