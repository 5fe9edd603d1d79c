"""Runs an EpollDC or EpollBackend in its own process, so its descriptors
do not count against the test process (the client side) or the daemon.

As a script: `server_proc.py dc|front` prints `port N`, then answers each
`stats` line on stdin with one JSON line; EOF on stdin stops it.
ServerProc is the parent's handle on such a process."""

import json
import os
import resource
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def raise_nofile():
    """Soft descriptor limit up to the hard one, for this process."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class ServerProc:
    def __init__(self, kind):
        self.kind = kind
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "server_proc.py"), kind],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "port":
            raise RuntimeError("%s server did not start: %r" % (kind, line))
        self.addr = ("127.0.0.1", int(line[1]))

    def stats(self):
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()   # by PID: we started it
                self.proc.wait()


def main():
    sys.path.insert(0, HERE)
    from epoll_servers import EpollBackend, EpollDC
    raise_nofile()
    srv = {"dc": EpollDC, "front": EpollBackend}[sys.argv[1]]().start()
    print("port %d" % srv.addr[1], flush=True)
    for line in sys.stdin:
        if line.strip() == "stats":
            print(json.dumps(srv.stats()), flush=True)
    srv.stop()


if __name__ == "__main__":
    main()
