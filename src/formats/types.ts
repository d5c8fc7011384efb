/**
 * The contract every format module implements. One file per format in src/formats/.
 *
 * An importer is a cheap detector plus a converter. The converter returns NOT_MINE when
 * the input turns out not to be its format (the dispatcher then tries the next one);
 * a real parse error in input that is clearly its format throws a ParseError naming the
 * file and the line or byte offset.
 */
import type { Profile } from '../model/profile.ts';

export const NOT_MINE: unique symbol = Symbol('not mine');
export type NotMine = typeof NOT_MINE;

/** Input handed to importers. Text is decoded lazily (UTF-8) and cached. */
export class InputFile {
  readonly bytes: Uint8Array;
  /** File name as given by the user, or undefined when detecting without a name. */
  readonly name: string | undefined;
  private decoded: string | undefined;

  constructor(bytes: Uint8Array, name?: string) {
    this.bytes = bytes;
    this.name = name;
  }

  static fromText(text: string, name?: string): InputFile {
    const f = new InputFile(new TextEncoder().encode(text), name);
    f.decoded = text;
    return f;
  }

  text(): string {
    if (this.decoded === undefined) this.decoded = new TextDecoder('utf-8').decode(this.bytes);
    return this.decoded;
  }

  /** The first `n` bytes decoded as text (for cheap structural sniffing). */
  head(n = 4096): string {
    if (this.decoded !== undefined) return this.decoded.slice(0, n);
    return new TextDecoder('utf-8').decode(this.bytes.subarray(0, n));
  }

  /** Label for error messages. */
  get label(): string {
    return this.name ?? '<input>';
  }
}

export interface Position {
  /** 1-based line number, for text formats. */
  line?: number;
  /** 0-based byte offset, for binary formats. */
  offset?: number;
}

/** A real parse error: names the file and position, says what was expected. */
export class ParseError extends Error {
  readonly file: string;
  readonly position: Position;
  readonly format: string;

  constructor(format: string, file: string, position: Position, message: string) {
    const where = position.line !== undefined ? `:${position.line}` : position.offset !== undefined ? ` at byte ${position.offset}` : '';
    super(`${file}${where}: ${message} (reading it as ${format})`);
    this.name = 'ParseError';
    this.file = file;
    this.position = position;
    this.format = format;
  }
}

/** Input no importer recognised. */
export class UnknownFormatError extends Error {
  constructor(file: string, tried: string[]) {
    super(`${file}: not a profile format pylens knows (tried ${tried.join(', ')}); pass --format to force one`);
    this.name = 'UnknownFormatError';
  }
}

export interface Importer {
  /** Stable id used by --format, e.g. 'folded', 'perf-script'. */
  id: string;
  /** File name endings that suggest this format, e.g. ['.folded', '.collapsed']. */
  extensions: string[];
  /** Binary magic check on the first bytes; only for binary formats. Must be cheap. */
  magic?(bytes: Uint8Array): boolean;
  /** Structural sniff of the input (cheap: look at the head only). */
  detect(input: InputFile): boolean;
  /** Convert; NOT_MINE when the input is not this format after all; throws ParseError on real errors. */
  parse(input: InputFile): Profile | NotMine;
}

export interface ExportOptions {
  /** Which value column to export where the format holds only one (default: profile.defaultValue). */
  valueIndex?: number;
  /** Folded/SVG/HTML labels: include line numbers (default true). */
  lineno?: boolean;
  fullFilenames?: boolean;
  /** Title for SVG/HTML outputs. */
  title?: string;
}

export interface Exporter {
  /** Stable id used by --format. */
  id: string;
  /** Default file name ending, e.g. '.speedscope.json'. */
  extension: string;
  /** Other endings that select this exporter. */
  extensions?: string[];
  /** Whether export → import through this format keeps the model (up to documented normalisation). */
  lossless: boolean;
  write(profile: Profile, opts?: ExportOptions): Uint8Array | string;
}
