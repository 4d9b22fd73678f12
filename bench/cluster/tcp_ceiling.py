#!/usr/bin/env python3
"""The loopback TCP ceiling of an all-reduce: N processes on 127.0.0.1 in a full mesh move
exactly the bytes a reduce-scatter + all-gather moves (each rank sends every peer S/N bytes
twice and receives as much), with plain blocking sockets and no processing at all: a
sender and a receiver thread per peer (socket calls release the GIL, so the copying is the
kernel's). No all-reduce over TCP on this machine can take less time than this; gloo and
Squall are measured against it in bench/cluster.

usage: tcp_ceiling.py --world N --mib S[,S...] --reps R[,R...] --json FILE
Writes one JSON line per size: {"world", "mib", "reps", "times": [...], "median_s"}.
"""
import argparse, json, os, socket, statistics, threading, time

def serve(rank, world, sizes, reps, barrier_r, barrier_w, out):
    # Every rank listens on a port of its own choosing and tells the parent; the parent
    # sends every rank the list; rank i dials every j < i.
    lst = socket.socket()
    lst.bind(('127.0.0.1', 0)); lst.listen(world)
    os.write(barrier_w, lst.getsockname()[1].to_bytes(2, 'little'))
    ports = [int.from_bytes(read_exact(barrier_r, 2), 'little') for _ in range(world)]
    peers = {}
    for j in range(rank):
        s = socket.create_connection(('127.0.0.1', ports[j])); s.sendall(bytes([rank])); peers[j] = s
    for _ in range(world - 1 - rank):
        s, _a = lst.accept(); j = s.recv(1)[0]; peers[j] = s
    for s in peers.values(): s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    results = []
    for mib, r in zip(sizes, reps):
        part = (mib << 20) // world
        src = bytearray(part); dst = {j: bytearray(part) for j in peers}
        def pump_out(s):
            s.sendall(src); s.sendall(src)
        def pump_in(s, buf):
            mv = memoryview(buf)
            for _ in range(2):
                got = 0
                while got < part: got += s.recv_into(mv[got:], part - got)
        times = []
        for k in range(r + 2):
            os.write(barrier_w, b'b'); os.read(barrier_r, 1)
            t0 = time.perf_counter()
            th = [threading.Thread(target=pump_out, args=(s,)) for s in peers.values()] + \
                 [threading.Thread(target=pump_in, args=(s, dst[j])) for j, s in peers.items()]
            for t in th: t.start()
            for t in th: t.join()
            if k >= 2: times.append(time.perf_counter() - t0)
        results.append(times)
    os.write(out, (json.dumps(results) + '\n').encode()); os.close(out)

def read_exact(fd, n):
    data = b''
    while len(data) < n:
        c = os.read(fd, n - len(data))
        if not c: raise EOFError('the other side of a pipe went away')
        data += c
    return data

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--world', type=int, required=True)
    ap.add_argument('--mib', required=True)
    ap.add_argument('--reps', required=True)
    ap.add_argument('--json', required=True)
    a = ap.parse_args()
    sizes = [int(x) for x in a.mib.split(',')]; reps = [int(x) for x in a.reps.split(',')]
    kids = []
    for rank in range(a.world):
        to_kid_r, to_kid_w = os.pipe(); from_kid_r, from_kid_w = os.pipe(); res_r, res_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                serve(rank, a.world, sizes, reps, to_kid_r, from_kid_w, res_w)
            except BaseException as e:  # the parent sees the pipe close and stops everyone
                os.write(2, f'tcp_ceiling rank {rank}: {e!r}\n'.encode())
                os._exit(1)
            os._exit(0)
        for fd in (to_kid_r, from_kid_w, res_w): os.close(fd)  # the child's ends: EOF on res once it exits
        kids.append((pid, to_kid_w, from_kid_r, res_r))
    try:
        ports = [read_exact(r, 2) for _pid, _w, r, _res in kids]
        for _pid, w, _r, _res in kids: os.write(w, b''.join(ports))
        # Barriers: a byte from every rank, then release them all.
        rounds = sum(r + 2 for r in reps)
        for _ in range(rounds):
            for _pid, _w, r, _res in kids: read_exact(r, 1)
            for _pid, w, _r, _res in kids: os.write(w, b'g')
    except (EOFError, BrokenPipeError) as e:
        for pid, *_ in kids:
            try: os.kill(pid, 9)
            except ProcessLookupError: pass
        raise SystemExit(f'tcp_ceiling: a rank failed ({e})')
    per_rank = []
    for pid, _w, _r, res in kids:
        data = b''
        while True:
            c = os.read(res, 1 << 16)
            if not c: break
            data += c
        per_rank.append(json.loads(data)); os.waitpid(pid, 0)
    with open(a.json, 'a') as f:
        for i, mib in enumerate(sizes):
            times = [max(rt[i][k] for rt in per_rank) for k in range(reps[i])]
            f.write(json.dumps({'world': a.world, 'mib': mib, 'reps': reps[i], 'times': times, 'median_s': statistics.median(times)}) + '\n')

if __name__ == '__main__':
    main()
