// The one error type of the model importers: which file, and where in it (a byte offset
// for binary formats, a line:column for text, a layer or node name for graph problems).
export class ModelFormatError extends Error {
  constructor(
    readonly file: string,
    readonly where: string,
    readonly detail: string,
  ) {
    super(`${file}: ${where}: ${detail}`);
    this.name = 'ModelFormatError';
  }
}

/** A layer or operator type the importer knows but Squall cannot run, or does not know at all. */
export class UnsupportedLayerError extends ModelFormatError {
  constructor(file: string, layerName: string, readonly layerType: string, detail = 'is not supported by Squall') {
    super(file, `layer "${layerName}"`, `type ${layerType} ${detail}`);
    this.name = 'UnsupportedLayerError';
  }
}
