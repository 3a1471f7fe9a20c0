"""A TLS-terminating TCP front for tests: accepts TLS on 127.0.0.1 with the
given certificate and relays the plaintext to TARGET (host:port) and back.
Prints the port it listens on, then serves until killed or --max-seconds.

    tls_front.py --cert leaf.pem --key leaf.key --target 127.0.0.1:8333
"""
import argparse
import socket
import ssl
import sys
import threading
import time


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(conn, context, target):
    try:
        tls = context.wrap_socket(conn, server_side=True)
    except (ssl.SSLError, OSError):
        # A client that refused the certificate: what the tests check for.
        conn.close()
        return
    try:
        upstream = socket.create_connection(target)
    except OSError:
        tls.close()
        return
    threading.Thread(target=pipe, args=(tls, upstream), daemon=True).start()
    pipe(upstream, tls)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--max-seconds", type=float, default=900)
    args = parser.parse_args()
    host, port = args.target.rsplit(":", 1)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.5)
    print(listener.getsockname()[1], flush=True)
    deadline = time.monotonic() + args.max_seconds
    while time.monotonic() < deadline:
        try:
            conn, _ = listener.accept()
        except socket.timeout:
            continue
        conn.settimeout(None)
        threading.Thread(target=serve, args=(conn, context, (host, int(port))), daemon=True).start()
    sys.exit(0)


if __name__ == "__main__":
    main()
