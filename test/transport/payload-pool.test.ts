// The received-payload pool: a released large payload is what the next frame of its size
// gets; small ones, foreign views and a second release are ignored; a frame decoded from
// the wire carries a release only when its payload is large enough to pool, and a reused
// buffer is fully overwritten by the next frame (the decoded bytes equal the sent ones).
import t from 'tap';
import { FrameDecoder, encodeFrameBytes } from '../../transport/frame.js';
import { POOL_MIN_BYTES, givePayload, pooledBytes, releaser, takePayload } from '../../transport/payload-pool.js';
import { FrameKind, WireDtype, type Frame } from '../../transport/transport.js';

function frame(bytes: Uint8Array, iteration: number): Frame {
  return { kind: FrameKind.GradientSlice, jobId: '5', iteration, sender: 1, slice: 0, dtype: WireDtype.F32, payload: bytes };
}

t.test('take, release, take again', async (t) => {
  const n = POOL_MIN_BYTES * 2;
  const a = takePayload(n);
  t.equal(a.byteOffset, 0, 'owns its buffer from byte 0');
  t.equal(a.buffer.byteLength, n, 'and nothing else');
  const before = pooledBytes();
  const release = releaser(a);
  release();
  t.equal(pooledBytes(), before + n, 'released: held for reuse');
  release();
  t.equal(pooledBytes(), before + n, 'a second release does nothing');
  const b = takePayload(n);
  t.equal(b, a, 'the next payload of that size is the released buffer');
  t.equal(pooledBytes(), before, 'and no longer held');
  const small = takePayload(1024);
  givePayload(small);
  t.equal(pooledBytes(), before, 'small payloads are not pooled');
  const big = new Uint8Array(n * 2);
  givePayload(big.subarray(0, n));
  t.equal(pooledBytes(), before, 'a view of a larger buffer is not pooled');
});

t.test('decoded frames reuse released buffers without mixing their contents', async (t) => {
  const n = POOL_MIN_BYTES;
  const d = new FrameDecoder({ expectJobId: '5' });
  const sent: Uint8Array[] = [];
  let reused = 0;
  let last: Uint8Array | null = null;
  for (let i = 0; i < 6; i++) {
    const p = new Uint8Array(n);
    for (let k = 0; k < n; k++) p[k] = (k * 31 + i * 7) & 255;
    sent.push(p);
    const wire = encodeFrameBytes(frame(p, i));
    // Fed in odd-sized pieces, as a socket delivers them.
    const got: Frame[] = [];
    for (let off = 0; off < wire.length; off += 7919) got.push(...d.push(wire.subarray(off, off + 7919)));
    t.equal(got.length, 1, `frame ${i} decoded`);
    const f = got[0]!;
    t.ok(typeof f.release === 'function', `frame ${i} carries a release`);
    t.same(Buffer.from(f.payload).equals(Buffer.from(p)), true, `frame ${i}: the payload is the one sent`);
    if (last && f.payload.buffer === last.buffer) reused++;
    last = f.payload;
    f.release!();
  }
  t.ok(reused >= 4, `released buffers were reused (${reused} of 5 frames)`);
  const tiny = [...d.push(encodeFrameBytes(frame(new Uint8Array(16), 9)))];
  t.equal(tiny[0]!.release, undefined, 'a small payload carries no release');
});
