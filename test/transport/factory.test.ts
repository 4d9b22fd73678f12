// transport/index.ts: createTransport over the kinds ('inproc' from a hub, 'tcp' listening on
// the port its address book entry gives and connecting), and refusal of unknown kinds.
import t from 'tap';
import { FrameKind, InProcessHub, WireDtype, createTransport, listenTcp, type Transport } from '../../transport/index.js';
import { rejection, within } from './util.js';

async function roundTrip(a: Transport, b: Transport): Promise<number[]> {
  await a.send(b.rank, { kind: FrameKind.Control, iteration: 1, slice: 2, dtype: WireDtype.Bytes, payload: new Uint8Array([a.rank, 42]) });
  return [...(await b.receive(a.rank, FrameKind.Control, 1, 2)).payload];
}

t.test("createTransport('inproc')", async (t) => {
  const hub = new InProcessHub(2, { jobId: '3' });
  const a = await createTransport('inproc', { hub, rank: 0 });
  const b = await createTransport('inproc', { hub, rank: 1 });
  t.teardown(() => Promise.all([a.close(), b.close()]));
  t.equal(a, hub.endpoint(0));
  t.same(await roundTrip(a, b), [0, 42]);
  t.ok(await rejection(createTransport('inproc', { hub, rank: 2 })) instanceof RangeError, 'rank outside the hub');
  t.ok(await rejection(createTransport('inproc', { rank: 0 } as never)) instanceof TypeError, 'no hub');
});

t.test("createTransport('tcp')", async (t) => {
  const common = { worldSize: 2, secret: 'factory-secret', jobId: '11', log: () => {} };
  const r0 = await listenTcp({ ...common, rank: 0, host: '127.0.0.1', connectTimeoutMs: 10_000 });
  t.teardown(() => r0.close());
  const [r1] = await within(Promise.all([
    createTransport('tcp', { ...common, rank: 1, host: '127.0.0.1', addresses: [r0.addressString, '127.0.0.1:0'] }),
    r0.connect([]),
  ]), 'mesh');
  t.teardown(() => r1.close());
  t.same(await roundTrip(r1, r0), [1, 42]);
  t.same(await roundTrip(r0, r1), [0, 42]);
});

t.test('unknown kind', async (t) => {
  t.ok(await rejection(createTransport('webrtc' as never, {} as never)) instanceof RangeError);
});
