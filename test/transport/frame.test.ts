// The frame codec: encode/decode round trips of random headers and payloads through a
// stream cut at every byte boundary (small frames) or at random points (large ones), and
// every corrupt field (magic, version, kind, dtype, reserved, job id, sender, length past
// the maximum or not a multiple of the element size, checksum flips, truncation) rejected
// with a FrameError naming the field and its byte offset in the stream, before any
// allocation of a declared length.
import t from 'tap';
import { crc32TS } from '../../engine/io/checkpoint/crc32.js';
import {
  FrameDecoder, FrameError, HEADER_FIELDS, HEADER_SIZE, decodeFrames, encodeFrame, encodeFrameBytes, encodeHeader,
} from '../../transport/frame.js';
import { FrameKind, WireDtype, dtypeSize, type Frame } from '../../transport/transport.js';
import { Rng, sameBytes } from './util.js';

function randomFrame(rng: Rng, maxLen: number): Frame {
  let kind = rng.int(1, 5) as FrameKind;
  const dtype = rng.int(0, 3) as WireDtype;
  const es = dtypeSize(dtype);
  let len = Math.floor(rng.int(0, maxLen) / es) * es;
  if (kind === FrameKind.Heartbeat) len = 0;
  if (rng.int(0, 9) === 0) kind = FrameKind.GradientSlice;
  const jobId = ((BigInt(rng.u32()) << 32n) | BigInt(rng.u32())).toString();
  return { kind, jobId, iteration: rng.u32(), sender: rng.u32(), slice: rng.u32(), dtype, payload: rng.bytes(len) };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

function sameFrame(a: Frame, b: Frame): boolean {
  return a.kind === b.kind && a.jobId === b.jobId && a.iteration === b.iteration && a.sender === b.sender &&
    a.slice === b.slice && a.dtype === b.dtype && sameBytes(a.payload, b.payload);
}

function feed(d: FrameDecoder, stream: Uint8Array, cuts: number[]): Frame[] {
  const out: Frame[] = [];
  let prev = 0;
  for (const c of [...cuts, stream.byteLength]) {
    for (const f of d.push(stream.subarray(prev, c))) out.push(f);
    prev = c;
  }
  return out;
}

t.test('header layout', async (t) => {
  const f: Frame = { kind: FrameKind.WeightSlice, jobId: '18446744073709551615', iteration: 0xfffffffe, sender: 3, slice: 7, dtype: WireDtype.F16, payload: new Uint8Array([1, 2, 3, 4]) };
  const b = encodeFrameBytes(f);
  t.equal(HEADER_SIZE, 36);
  t.equal(b.byteLength, 40);
  t.same([...b.subarray(0, 8)], [0x53, 0x51, 0x4c, 0x46, 1, 3, 2, 0], 'magic "SQLF", version 1, kind, dtype, reserved 0');
  const v = new DataView(b.buffer);
  t.equal(v.getBigUint64(8, true), 0xffffffffffffffffn, 'job id u64 LE at 8');
  t.equal(v.getUint32(16, true), 0xfffffffe, 'iteration at 16');
  t.equal(v.getUint32(20, true), 3, 'sender at 20');
  t.equal(v.getUint32(24, true), 7, 'slice at 24');
  t.equal(v.getUint32(28, true), 4, 'payload length at 28');
  t.equal(v.getUint32(32, true), crc32TS(f.payload, crc32TS(b.subarray(0, 32))), 'CRC-32 of header bytes 0..31 then payload at 32');
  t.same(HEADER_FIELDS.map((x) => x.name), ['magic', 'version', 'kind', 'dtype', 'reserved', 'jobId', 'iteration', 'sender', 'slice', 'length', 'checksum']);
  const [h, p] = encodeFrame(f);
  t.equal(p, f.payload, 'encodeFrame does not copy the payload');
  t.ok(sameBytes(h, b.subarray(0, 36)));
  t.throws(() => encodeHeader({ ...f, iteration: 2 ** 32 }, f.payload), RangeError);
  t.throws(() => encodeHeader({ ...f, sender: -1 }, f.payload), RangeError);
});

t.test('round trip, small frames, cut at every byte boundary', async (t) => {
  const rng = new Rng(1234);
  let checked = 0;
  let bad = 0;
  for (let round = 0; round < 12; round++) {
    const frames = Array.from({ length: rng.int(1, 4) }, () => randomFrame(rng, 24));
    const stream = concat(frames.map((f) => encodeFrameBytes(f)));
    for (let k = 0; k <= stream.byteLength; k++) {
      const d = new FrameDecoder();
      const got = feed(d, stream, [k]);
      d.end();
      checked++;
      if (got.length !== frames.length || !got.every((g, i) => sameFrame(g, frames[i]!))) bad++;
      if (d.offset !== stream.byteLength || d.pending !== 0) bad++;
    }
    // one byte at a time, and random cuts into many pieces
    const one = feed(new FrameDecoder(), stream, Array.from({ length: stream.byteLength }, (_, i) => i));
    if (!one.every((g, i) => sameFrame(g, frames[i]!)) || one.length !== frames.length) bad++;
    for (let r = 0; r < 20; r++) {
      const cuts = Array.from({ length: rng.int(1, 8) }, () => rng.int(0, stream.byteLength)).sort((a, b) => a - b);
      const got = feed(new FrameDecoder(), stream, cuts);
      checked++;
      if (got.length !== frames.length || !got.every((g, i) => sameFrame(g, frames[i]!))) bad++;
    }
  }
  t.equal(bad, 0, `${checked} cut streams decode to the frames encoded`);
});

t.test('round trip, large payloads at random cuts; payloads own their buffer', async (t) => {
  const rng = new Rng(99);
  const frames: Frame[] = [
    { ...randomFrame(rng, 0), kind: FrameKind.GradientSlice, dtype: WireDtype.F32, payload: rng.bytes(1 << 20) },
    { ...randomFrame(rng, 0), kind: FrameKind.Control, dtype: WireDtype.Bytes, payload: new Uint8Array(0) },
    { ...randomFrame(rng, 0), kind: FrameKind.WeightSlice, dtype: WireDtype.BF16, payload: rng.bytes(300_002) },
  ];
  const stream = concat(frames.map((f) => encodeFrameBytes(f)));
  for (let r = 0; r < 4; r++) {
    const cuts = Array.from({ length: 40 }, () => rng.int(0, stream.byteLength)).sort((a, b) => a - b);
    const got = feed(new FrameDecoder(), stream, cuts);
    t.ok(got.length === 3 && got.every((g, i) => sameFrame(g, frames[i]!)), `cut into ${cuts.length + 1} pieces`);
    t.ok(got.every((g) => g.payload.byteOffset === 0 && g.payload.buffer.byteLength === g.payload.byteLength), 'each payload owns its ArrayBuffer from byte 0');
  }
  t.same(decodeFrames(stream).length, 3, 'decodeFrames');
});

/** Decodes `stream` and returns the error (and the frames yielded before it). */
function decodeError(stream: Uint8Array, opts: ConstructorParameters<typeof FrameDecoder>[0] = {}, cuts: number[] = []): { err: unknown; frames: Frame[]; d: FrameDecoder } {
  const d = new FrameDecoder(opts);
  const frames: Frame[] = [];
  try {
    let prev = 0;
    for (const c of [...cuts, stream.byteLength]) {
      for (const f of d.push(stream.subarray(prev, c))) frames.push(f);
      prev = c;
    }
    d.end();
    return { err: null, frames, d };
  } catch (err) {
    return { err, frames, d };
  }
}

t.test('every corrupt field gives a FrameError naming it and its offset', async (t) => {
  const rng = new Rng(7);
  const first: Frame = { kind: FrameKind.Control, jobId: '5', iteration: 1, sender: 1, slice: 0, dtype: WireDtype.Bytes, payload: rng.bytes(13) };
  const good: Frame = { kind: FrameKind.GradientSlice, jobId: '5', iteration: 9, sender: 1, slice: 2, dtype: WireDtype.F32, payload: rng.bytes(64) };
  const a = encodeFrameBytes(first);
  const base = a.byteLength; // the faulty frame starts here
  const make = (edit: (b: Uint8Array, v: DataView) => void): Uint8Array => {
    const b = encodeFrameBytes(good);
    edit(b, new DataView(b.buffer));
    return concat([a, b]);
  };
  const cases: { what: string; bytes: Uint8Array; field: string; at: number; opts?: ConstructorParameters<typeof FrameDecoder>[0]; re?: RegExp }[] = [
    { what: 'magic', bytes: make((b) => { b[2] = 0x58; }), field: 'magic', at: 0, re: /SQLF/ },
    { what: 'version 2', bytes: make((b) => { b[4] = 2; }), field: 'version', at: 4, re: /version 2/ },
    { what: 'kind 0', bytes: make((b) => { b[5] = 0; }), field: 'kind', at: 5, re: /unknown frame kind 0/ },
    { what: 'kind 200', bytes: make((b) => { b[5] = 200; }), field: 'kind', at: 5 },
    { what: 'kind not allowed here', bytes: make(() => {}), field: 'kind', at: 5, opts: { kinds: [FrameKind.Control] }, re: /not allowed/ },
    { what: 'dtype 4', bytes: make((b) => { b[6] = 4; }), field: 'dtype', at: 6, re: /dtype 4/ },
    { what: 'reserved 1', bytes: make((b) => { b[7] = 1; }), field: 'reserved', at: 7 },
    { what: 'other job', bytes: make((_, v) => { v.setBigUint64(8, 6n, true); }), field: 'jobId', at: 8, opts: { expectJobId: '5' }, re: /job id 6/ },
    { what: 'other sender', bytes: make((_, v) => { v.setUint32(20, 2, true); }), field: 'sender', at: 20, opts: { expectSender: 1 }, re: /sender 2/ },
    { what: 'sender outside world', bytes: make((_, v) => { v.setUint32(20, 4, true); }), field: 'sender', at: 20, opts: { worldSize: 4 } },
    { what: 'length past max', bytes: make((_, v) => { v.setUint32(28, 65, true); }), field: 'length', at: 28, opts: { maxPayloadBytes: 64 }, re: /65 exceeds the maximum of 64/ },
    { what: 'length 2^32-1 (default max)', bytes: make((_, v) => { v.setUint32(28, 0xffffffff, true); }), field: 'length', at: 28, re: /exceeds the maximum of 268435456/ },
    { what: 'length not a multiple of 4 (F32)', bytes: make((_, v) => { v.setUint32(28, 62, true); }), field: 'length', at: 28, re: /multiple of 4/ },
    { what: 'heartbeat with a payload', bytes: make((b) => { b[5] = FrameKind.Heartbeat; }), field: 'length', at: 28, re: /Heartbeat/ },
    { what: 'checksum field flipped', bytes: make((b) => { b[33]! ^= 0x10; }), field: 'checksum', at: 32, re: /CRC-32/ },
    { what: 'payload bit flipped', bytes: make((b) => { b[HEADER_SIZE + 40]! ^= 1; }), field: 'checksum', at: 32 },
    { what: 'iteration bit flipped', bytes: make((b) => { b[17]! ^= 4; }), field: 'checksum', at: 32 },
    { what: 'slice bit flipped', bytes: make((b) => { b[24]! ^= 128; }), field: 'checksum', at: 32 },
  ];
  for (const c of cases) {
    for (const cuts of [[], [base + 3], [base + 30, base + 36]]) {
      const { err, frames, d } = decodeError(c.bytes, c.opts, cuts);
      const ok = err instanceof FrameError && err.field === c.field && err.offset === base + c.at && err.frameOffset === base && !err.truncated &&
        (!c.re || c.re.test(err.message)) && err.message.includes(c.field);
      if (cuts.length === 0) t.ok(ok, `${c.what}: ${err instanceof Error ? err.message : String(err)}`);
      else if (!ok) t.fail(`${c.what} cut at ${cuts.join(',')}: ${String(err)}`);
      if (frames.length !== 1 || !sameFrame(frames[0]!, first)) t.fail(`${c.what}: the good frame before it is delivered`);
      // the decoder stays failed
      let again: unknown = null;
      try {
        [...d.push(encodeFrameBytes(first))];
      } catch (e) {
        again = e;
      }
      if (again !== err) t.fail(`${c.what}: a later push throws the same error`);
    }
  }
  t.equal(new FrameError('checksum', 1, 0, 'x').reason, 'frame:checksum');
});

t.test('the length is checked before the payload is allocated', async (t) => {
  const b = encodeFrameBytes({ kind: FrameKind.GradientSlice, jobId: '1', iteration: 0, sender: 0, slice: 0, dtype: WireDtype.Bytes, payload: new Uint8Array(0) });
  new DataView(b.buffer).setUint32(28, 0xfffffff0, true);
  const before = process.memoryUsage().arrayBuffers;
  const d = new FrameDecoder({ maxPayloadBytes: 1 << 20 });
  let err: unknown;
  try {
    [...d.push(b.subarray(0, HEADER_SIZE))]; // header only: no payload bytes exist
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof FrameError && err.field === 'length', `refused from the header alone: ${String(err)}`);
  t.ok(process.memoryUsage().arrayBuffers - before < 1 << 20, 'nothing near the declared size was allocated');
  // A length within the limit is only allocated once the header is complete and checked.
  const ok = new FrameDecoder({ maxPayloadBytes: 1 << 20 });
  const g = encodeFrameBytes({ kind: FrameKind.GradientSlice, jobId: '1', iteration: 0, sender: 0, slice: 0, dtype: WireDtype.Bytes, payload: new Uint8Array(1000) });
  [...ok.push(g.subarray(0, HEADER_SIZE - 1))];
  t.equal(ok.pending, HEADER_SIZE - 1, 'a partial header holds only its bytes');
});

t.test('a stream truncated anywhere inside a frame names the field it stopped in', async (t) => {
  const f: Frame = { kind: FrameKind.WeightSlice, jobId: '77', iteration: 3, sender: 0, slice: 1, dtype: WireDtype.Bytes, payload: new Uint8Array(10).fill(7) };
  const lead = encodeFrameBytes({ ...f, payload: new Uint8Array(3) });
  const stream = concat([lead, encodeFrameBytes(f)]);
  const base = lead.byteLength;
  const wrong: string[] = [];
  for (let k = base + 1; k < stream.byteLength; k++) {
    const { err, frames } = decodeError(stream.subarray(0, k));
    const within = k - base;
    const want = within >= HEADER_SIZE ? 'payload' : HEADER_FIELDS.find((x) => x.offset + x.size > within)!.name;
    if (!(err instanceof FrameError && err.truncated && err.field === want && err.offset === k && err.frameOffset === base && /truncated/.test(err.message) &&
      err.reason === 'frame:truncated' && frames.length === 1)) wrong.push(`${k}: ${String(err)}`);
  }
  t.same(wrong, [], `all ${stream.byteLength - base - 1} cuts inside the second frame give a truncation error naming the field`);
  t.equal(decodeError(stream.subarray(0, base)).err, null, 'a cut between frames is not an error');
  const e = decodeError(stream.subarray(0, base + 10)).err as FrameError;
  t.match(e.message, /jobId at byte 49 \(frame at byte 39\)/, `message: ${e.message}`);
});
