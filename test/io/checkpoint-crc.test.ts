// The checkpoint checksum: the TypeScript CRC-32 gives the standard check values, agrees
// with the one crc32() uses (crc32Implementation: the native module's, else zlib's), and
// continues across chunks.
import t from 'tap';
import { crc32, crc32TS } from '../../engine/io/checkpoint/index.js';
import { Rng } from '../conformance/util.js';

const text = (s: string): Uint8Array => Buffer.from(s, 'latin1');

t.test('standard check values', (t) => {
  for (const f of [crc32TS, crc32]) {
    t.equal(f(text('')), 0, `${f.name}: empty`);
    t.equal(f(text('123456789')), 0xcbf43926, `${f.name}: "123456789"`);
    t.equal(f(text('The quick brown fox jumps over the lazy dog')), 0x414fa339, `${f.name}: quick brown fox`);
    t.equal(f(new Uint8Array(32)), 0x190a55ad, `${f.name}: 32 zero bytes`);
    t.equal(f(new Uint8Array(32).fill(0xff)), 0xff6cab0b, `${f.name}: 32 0xff bytes`);
  }
  t.end();
});

t.test('TypeScript and platform CRC agree on every length and alignment, and continue across chunks', (t) => {
  const rng = new Rng(91);
  const data = new Uint8Array(1 << 16);
  for (let i = 0; i < data.length; i++) data[i] = rng.int(0, 255);
  let bad = 0;
  for (let len = 0; len <= 80; len++) {
    for (const off of [0, 1, 3, 5]) {
      const s = data.subarray(off, off + len);
      if (crc32TS(s) !== crc32(s)) bad++;
    }
  }
  t.equal(bad, 0, 'lengths 0..80 at offsets 0, 1, 3, 5');
  const whole = crc32TS(data);
  t.equal(crc32(data), whole, '64 KiB');
  for (const cut of [0, 1, 7, 8, 4097, data.length]) {
    t.equal(crc32TS(data.subarray(cut), crc32TS(data.subarray(0, cut))), whole, `TS, continued at ${cut}`);
    t.equal(crc32(data.subarray(cut), crc32TS(data.subarray(0, cut))), whole, `mixed, continued at ${cut}`);
  }
  t.end();
});
