/** What a recording reports as it goes (the sampler's `onProgress`; `record`'s progress line). */
export interface RecordProgress {
  elapsedNs: number;
  ticks: number;
  samples: number;
  errors: number;
  /** threads seen in the last tick, over all processes */
  threads: number;
  processes: number;
}
