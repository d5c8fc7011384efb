/**
 * Versioning of the `.pylens` file format.
 *
 * The file header carries an integer format version. A reader upgrades an older
 * document one step at a time (v → v+1) with the upgraders below, then decodes it as
 * the current version. A newer version than this build knows is a clear error.
 *
 * Changelog of format versions (newest last). Add a line and an upgrader for every
 * change to the stored shape, however small:
 *
 *   1 (pylens 0.1.0) — first version: gzip payload holding a JSON header (meta,
 *     valueTypes, defaultValue, strings, frames, threads) followed by little-endian
 *     binary columns (stacks.frame, stacks.parent as int32; samples.stack, samples.thread
 *     as int32; samples.state as uint8; samples.time as float64 when present; one float64
 *     column per value type).
 */

export const FORMAT_VERSION = 1;

/** The decoded JSON header of a .pylens file, before binary columns are attached. */
export type StoredDocument = Record<string, unknown> & { formatVersion: number };

export type Upgrader = (doc: StoredDocument) => StoredDocument;

/** upgraders[v] turns a version-v document into a version-(v+1) document. */
export const UPGRADERS: Record<number, Upgrader> = {};

export class FormatVersionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FormatVersionError';
  }
}

export function upgradeDocument(doc: StoredDocument, upgraders: Record<number, Upgrader> = UPGRADERS, target = FORMAT_VERSION): StoredDocument {
  let d = doc;
  if (!Number.isInteger(d.formatVersion) || d.formatVersion < 1) {
    throw new FormatVersionError(`format version ${String(d.formatVersion)} is not valid`);
  }
  if (d.formatVersion > target) {
    throw new FormatVersionError(`written by a newer pylens (format version ${d.formatVersion}; this pylens reads up to ${target}): upgrade pylens to read it`);
  }
  while (d.formatVersion < target) {
    const step = upgraders[d.formatVersion];
    if (!step) throw new FormatVersionError(`no upgrader from format version ${d.formatVersion}`);
    const from = d.formatVersion;
    d = step(d);
    if (d.formatVersion !== from + 1) throw new FormatVersionError(`upgrader from ${from} produced version ${d.formatVersion}`);
  }
  return d;
}
