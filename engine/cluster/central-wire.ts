// What the driver and tree modes move: whole flat vectors cut into chunks (frames of at most
// chunkElements values, slice = chunk index, in increasing order) and lists of iteration
// statuses as JSON Control frames. Both the worker side (central-worker.ts) and the driver's
// side (central-driver.ts) use these, so the two agree on the framing by construction.
import type { Backend } from '../backends/backend.js';
import { FrameKind, WireDtype, type Transport } from '../../transport/transport.js';
import { encodeStatus, ProtocolError, statusFromJson, type IterationStatus } from './parameter-manager.js';
import type { FlatRange } from './slices.js';
import { decodeSlice, encodeSlice, wireDtype, type WireFormat } from './wire-codec.js';

export interface VectorCodec {
  backend: Backend;
  wire: WireFormat;
  chunks: readonly FlatRange[];
}

/** Sends `src` chunk by chunk; resolves when the transport has taken every frame. Returns payload bytes. */
export async function sendVector(t: Transport, to: number, kind: FrameKind.GradientSlice | FrameKind.WeightSlice, iteration: number,
  src: Float32Array, c: VectorCodec): Promise<number> {
  let bytes = 0;
  const dtype = wireDtype(c.wire);
  const sends: Promise<void>[] = [];
  for (const [k, ch] of c.chunks.entries()) {
    const payload = encodeSlice(c.backend, src.subarray(ch.start, ch.end), c.wire);
    bytes += payload.byteLength;
    sends.push(t.send(to, { kind, iteration, slice: k, dtype, payload }));
  }
  await Promise.all(sends);
  return bytes;
}

/** Receives a vector sent by sendVector into `dst` (which fixes its length). Returns payload bytes. */
export async function receiveVector(t: Transport, from: number, kind: FrameKind.GradientSlice | FrameKind.WeightSlice, iteration: number,
  dst: Float32Array, c: VectorCodec, what: string): Promise<number> {
  const dtype = wireDtype(c.wire);
  const frames = c.chunks.map((_, k) => t.receive(from, kind, iteration, k));
  let bytes = 0;
  for (const [k, ch] of c.chunks.entries()) {
    const f = await frames[k]!;
    if (f.dtype !== dtype) throw new ProtocolError(`iteration ${iteration}: ${what} from rank ${from} came as dtype ${WireDtype[f.dtype] ?? f.dtype}; this job uses ${c.wire}`);
    try {
      decodeSlice(c.backend, f.payload, c.wire, dst.subarray(ch.start, ch.end));
      f.release?.();
    } catch (err) {
      throw new ProtocolError(`iteration ${iteration}: chunk ${k} of ${what} from rank ${from}: ${(err as Error).message}`);
    }
    bytes += f.payload.byteLength;
  }
  return bytes;
}

export function sendStatuses(t: Transport, to: number, slice: number, iteration: number, statuses: readonly IterationStatus[]): Promise<void> {
  const payload = new TextEncoder().encode(JSON.stringify(statuses.map((s) => ({ rank: s.rank, ...encodeStatus(s) }))));
  return t.send(to, { kind: FrameKind.Control, iteration, slice, dtype: WireDtype.Bytes, payload });
}

/** A list of statuses from `from`; an unreadable list becomes one veto in the name of `from`. */
/** `workers`: N; statuses may come from ranks 0..N (N: the driver's own). */
export async function receiveStatuses(t: Transport, from: number, slice: number, iteration: number, workers: number): Promise<IterationStatus[]> {
  const f = await t.receive(from, FrameKind.Control, iteration, slice);
  try {
    if (f.dtype !== WireDtype.Bytes) throw new Error(`dtype ${WireDtype[f.dtype] ?? f.dtype}, expected Bytes`);
    const list = JSON.parse(new TextDecoder().decode(f.payload)) as unknown;
    if (!Array.isArray(list)) throw new Error('not a list');
    return list.map((j: { rank?: unknown }) => {
      const r = j?.rank;
      if (typeof r !== 'number' || !Number.isInteger(r) || r < 0 || r > workers) throw new Error(`status of an unknown rank ${String(r)}`);
      return statusFromJson(j, r, iteration);
    });
  } catch (err) {
    return [{ rank: from, ok: false, veto: `rank ${from}'s status list for iteration ${iteration} is unreadable (${(err as Error).message})` }];
  }
}
