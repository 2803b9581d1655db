#!/usr/bin/python3
"""faultserver.py: a loopback HTTP server (standard library) that serves the
files of a folder and injects the faults the fetcher must survive.

  faultserver.py ROOT PORTFILE [LOGFILE]

Binds 127.0.0.1 (or $FAULTSERVER_BIND) on a free port, writes the port to PORTFILE, serves until
killed (or 15 minutes at most). Every request line is appended to LOGFILE.
Paths:
  /f/NAME            the file ROOT/NAME
  /flaky/NAME        500 on the first request for NAME, then the file
  /reset/NAME        the first connection is closed without an answer, then the file
  /stall/NAME        headers and 10 bytes, then silence (until the client leaves, 120 s max)
  /missing/NAME      404
  /big/N             an N MB body of a PNG header and noise, with Content-Length
  /bigchunked/N      the same without a length (chunked)
  /text/NAME         a text/plain body
  /html/NAME         an HTML page with status 200
  /loop/N            a redirect to /loop/N+1, for ever
  /redir/NAME        one redirect to /f/NAME
  /ftp/NAME          a redirect to ftp://127.0.0.1/NAME (a protocol not allowed)
  /tolocal/NAME      a redirect to http://127.0.0.1:PORT/f/NAME (this server, on loopback)
  /slow/NAME         the file in 10 pieces over 5 s
  /delay/NAME        the file after 50 ms
"""
import http.server, os, random, socketserver, sys, threading, time

ROOT = "."
LOG = None
seen = {}
lock = threading.Lock()


def first_time(key):
    with lock:
        n = seen.get(key, 0)
        seen[key] = n + 1
        return n == 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        if LOG:
            with lock, open(LOG, "a") as f:
                f.write(self.requestline + "\n")

    def send_body(self, status, body, ctype="application/octet-stream"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_file(self, name):
        path = os.path.join(ROOT, os.path.basename(name))
        try:
            with open(path, "rb") as f:
                body = f.read()
        except OSError:
            return self.send_body(404, b"no such file\n", "text/plain")
        ctype = "image/png" if name.endswith(".png") else "image/bmp" if name.endswith(
            ".bmp") else "application/octet-stream"
        self.send_body(200, body, ctype)

    def redirect(self, where):
        self.send_response(302)
        self.send_header("Location", where)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        parts = path.split("/", 2)
        kind = parts[1] if len(parts) > 1 else ""
        arg = parts[2] if len(parts) > 2 else ""
        if kind == "f":
            return self.send_file(arg)
        if kind == "flaky":
            if first_time(path):
                return self.send_body(500, b"try again\n", "text/plain")
            return self.send_file(arg)
        if kind == "reset":
            if first_time(path):
                self.close_connection = True
                self.connection.shutdown(2)
                return
            return self.send_file(arg)
        if kind == "stall":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"\x89PNG\r\n\x1a\n\x00\x00")
            self.wfile.flush()
            end = time.time() + 120
            while time.time() < end:
                time.sleep(0.2)
                try:
                    self.connection.settimeout(0.01)
                    if self.connection.recv(1, 0) == b"":
                        break
                except (BlockingIOError, TimeoutError, OSError):
                    pass
            self.close_connection = True
            return
        if kind == "slow":
            try:
                with open(os.path.join(ROOT, os.path.basename(arg)), "rb") as f:
                    body = f.read()
            except OSError:
                return self.send_body(404, b"no such file\n", "text/plain")
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            step = max(1, len(body) // 10)
            try:
                for i in range(0, len(body), step):
                    self.wfile.write(body[i:i + step])
                    self.wfile.flush()
                    time.sleep(0.5)
            except OSError:
                pass
            return
        if kind == "delay":
            time.sleep(0.05)
            return self.send_file(arg)
        if kind == "missing":
            return self.send_body(404, b"not found\n", "text/plain")
        if kind in ("big", "bigchunked"):
            total = int(arg) << 20
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            if kind == "big":
                self.send_header("Content-Length", str(total))
            else:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            rng = random.Random(1)
            chunk = b"\x89PNG\r\n\x1a\n" + rng.randbytes((1 << 20) - 8)
            sent = 0
            try:
                while sent < total:
                    if kind == "big":
                        self.wfile.write(chunk)
                    else:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sent += len(chunk)
                if kind == "bigchunked":
                    self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass
            self.close_connection = True
            return
        if kind == "text":
            return self.send_body(200, b"this is not an image\n" * 10, "text/plain")
        if kind == "html":
            return self.send_body(200, b"<html><body>sign in</body></html>\n", "text/html")
        if kind == "loop":
            try:
                n = int(arg)
            except ValueError:
                n = 0
            return self.redirect(f"/loop/{n + 1}")
        if kind == "redir":
            return self.redirect(f"/f/{arg}")
        if kind == "ftp":
            return self.redirect(f"ftp://127.0.0.1/{arg}")
        if kind == "tolocal":
            return self.redirect(f"http://127.0.0.1:{self.server.server_address[1]}/f/{arg}")
        return self.send_body(404, b"unknown path\n", "text/plain")

    do_HEAD = do_GET


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 256


def main():
    global ROOT, LOG
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    ROOT = sys.argv[1]
    LOG = sys.argv[3] if len(sys.argv) > 3 else None
    srv = Server((os.environ.get("FAULTSERVER_BIND", "127.0.0.1"), 0), Handler)
    with open(sys.argv[2] + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(sys.argv[2] + ".tmp", sys.argv[2])
    threading.Timer(900, srv.shutdown).start()
    srv.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
