// PLACEHOLDER: being written now; replaced before this lands.
import { NOT_MINE, type Exporter, type Importer } from './types.ts';

export const chromeTraceImporter: Importer = { id: 'chrome-trace', extensions: ['.trace.json', '.chrometrace.json'], detect: () => false, parse: () => NOT_MINE };
export const chromeTraceExporter: Exporter = { id: 'chrome-trace', extension: '.trace.json', lossless: false, write: () => { throw new Error('not written yet'); } };
