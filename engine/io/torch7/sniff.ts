// Recognising a Torch7 binary file by its first object, without reading the rest: a Torch
// object (type 4) whose version string is "V <n>" followed by a plausible class name, or a
// pre-versioning class name directly; or a table (type 3) with a plausible entry count
// whose first key is a number or a string.
import { ByteReader } from './byte-reader.js';
import { TYPE } from './deserialize.js';

const CLASS_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$/;

export function looksLikeTorch7(bytes: Uint8Array): boolean {
  const r = new ByteReader(bytes, '');
  try {
    const type = r.int32('');
    r.int32(''); // object index
    if (type === TYPE.TORCH) {
      const shortString = (): string => {
        const n = r.int32('');
        if (n < 1 || n > 256) throw new RangeError('implausible string length');
        return Buffer.from(r.take(n, '')).toString('latin1');
      };
      const first = shortString();
      return CLASS_NAME.test(/^V \d+$/.test(first) ? shortString() : first);
    }
    if (type === TYPE.TABLE) {
      // a saved table ({model = net, ...}): a sane entry count, then a number or string key
      const n = r.int32('');
      if (n < 1 || n * 8 > r.remaining()) return false;
      const keyType = r.int32('');
      return keyType === TYPE.NUMBER || keyType === TYPE.STRING;
    }
    return false;
  } catch {
    return false;
  }
}
