"""Keeps N concurrent GET requests going at http://127.0.0.1:PORT/PATH until killed (stdlib
threads and http.client, keep-alive). Prints "ready" after the first response."""
import http.client
import sys
import threading

PORT, PATH, N = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
first = threading.Event()


def loop():
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    while True:
        try:
            conn.request("GET", PATH)
            conn.getresponse().read()
            first.set()
        except Exception:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)


for _ in range(N):
    threading.Thread(target=loop, daemon=True).start()
first.wait()
print("ready", flush=True)
threading.Event().wait()
