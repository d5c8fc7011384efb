// PLACEHOLDER: being written now; replaced before this lands.
import { NOT_MINE, type Exporter, type Importer } from './types.ts';

export const speedscopeImporter: Importer = { id: 'speedscope', extensions: ['.speedscope.json', '.speedscope'], detect: () => false, parse: () => NOT_MINE };
export const speedscopeExporter: Exporter = { id: 'speedscope', extension: '.speedscope.json', lossless: false, write: () => { throw new Error('not written yet'); } };
