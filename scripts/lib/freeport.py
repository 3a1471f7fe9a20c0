"""Hand out distinct free TCP ports on 127.0.0.1 to concurrently starting fixtures.

usage: freeport.py REGISTRY COUNT

Ports are drawn at random from 20000-32767 (below Linux's ephemeral range, so
outgoing connections do not take them), checked by binding, and recorded with a
timestamp in REGISTRY under an exclusive lock; a port handed out in the last
15 minutes is not handed out again.
"""
import fcntl
import os
import random
import socket
import sys
import time

LOW, HIGH, HOLD_S = 20000, 32767, 900


def main() -> int:
    registry, count = sys.argv[1], int(sys.argv[2])
    now = time.time()
    with open(registry + ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        recent = {}
        try:
            with open(registry) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 2 and now - float(parts[1]) < HOLD_S:
                        recent[int(parts[0])] = float(parts[1])
        except FileNotFoundError:
            pass
        held, chosen = [], []
        tries = 0
        while len(chosen) < count:
            tries += 1
            if tries > 20000:
                print("freeport: no free ports left", file=sys.stderr)
                return 1
            port = random.randint(LOW, HIGH)
            if port in recent or port in chosen:
                continue
            # binding the wildcard address also fails when anything listens on
            # 127.0.0.1:port, so this one check covers both
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                s.close()
                continue
            held.append(s)
            chosen.append(port)
        for s in held:
            s.close()
        for p in chosen:
            recent[p] = now
        tmp = registry + ".tmp"
        with open(tmp, "w") as f:
            for p, t in recent.items():
                f.write(f"{p} {t}\n")
        os.replace(tmp, registry)
    print("\n".join(str(p) for p in chosen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
