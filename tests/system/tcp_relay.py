"""stdin/stdout <-> a TCP server: what qemu's guestfwd=...-cmd: runs for each guest connection.

    python3 tcp_relay.py HOST PORT

qemu (slirp) hands the guest's connection to this process as its stdin and stdout;
the relay copies both ways until each side has closed, half-closes included.
"""
import os
import select
import socket
import sys


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    s = socket.create_connection((host, port))
    ends = {0: s.fileno(), s.fileno(): 1}
    while ends:
        ready, _, _ = select.select(list(ends), [], [])
        for fd in ready:
            data = os.read(fd, 65536) if fd == 0 else s.recv(65536)
            if not data:
                if fd == 0:
                    s.shutdown(socket.SHUT_WR)
                else:
                    try:  # slirp's end is a socket: tell the guest the answer is complete
                        socket.socket(fileno=os.dup(1)).shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    os.close(1)
                del ends[fd]
                continue
            if fd == 0:
                s.sendall(data)
            else:
                view = memoryview(data)
                while view:
                    view = view[os.write(1, view):]


if __name__ == "__main__":
    main()
