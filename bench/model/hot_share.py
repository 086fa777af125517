"""The hot scenario as queues: what share of the calls the half-speed replica
should get for the lowest fleet p99, with share-only balancing.

Three replicas, one worker each; 150 calls/s in all (60 % of the fleet's
capacity with r1 hot), Poisson arrivals split at random; r1 serves a call in
20 ms, r2 and r3 in 10 ms (deterministic). Prints the fleet's p99 and its
ratio to the equal fleet's (all three at 10 ms, a third each) for shares s
of r1. Used by bench/NOTES.md ("Health: the shedder's refusals and the
probe"). Run: python3 bench/model/hot_share.py
"""
import random


def waits(rate, service, n, seed):
    r = random.Random(seed)
    t, free, out = 0.0, 0.0, []
    for _ in range(n):
        t += r.expovariate(rate)
        start = max(t, free)
        free = start + service
        out.append(free - t)
    return out


def p(xs, q):
    xs = sorted(xs)
    return xs[int(q * len(xs))]


equal = waits(50, 0.010, 100000, 1) + waits(50, 0.010, 100000, 2) + waits(50, 0.010, 100000, 3)
e99 = p(equal, 0.99)
print("equal fleet p99 %.1f ms" % (e99 * 1000))
n = 300000
for s in [0, 0.05, 0.10, 0.15, 0.17, 0.20, 0.25, 0.30, 1 / 3]:
    hot = waits(150 * s, 0.020, int(n * s) + 1, 4) if s > 0 else []
    rest = waits(75 * (1 - s), 0.010, int(n * (1 - s) / 2), 5) + waits(75 * (1 - s), 0.010, int(n * (1 - s) / 2), 6)
    f99 = p(hot + rest, 0.99)
    print("r1 share %.2f: fleet p99 %.1f ms, ratio %.2f" % (s, f99 * 1000, f99 / e99))
