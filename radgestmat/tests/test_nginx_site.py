"""The shipped nginx site, run by a real nginx in front of stand-ins for Flower and the web: Flower's
unauthenticated /metrics and /healthcheck are not reachable from outside."""

from __future__ import annotations

import http.server
import os
import shutil
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from radgestmat.testing.net import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "deploy" / "nginx" / "radgestmat.conf"


class Upstream(http.server.ThreadingHTTPServer):
    """Answers 200 to everything and remembers the paths it was asked for."""

    def __init__(self, name: str):
        self.name = name
        self.paths: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.paths.append(self.path)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(server.name.encode())

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture
def nginx(tmp_path):
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    assert os.path.exists(binary), "nginx is not installed (apt-get install nginx-light)"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=radgestmat.example.org",
            "-keyout",
            str(tmp_path / "key.pem"),
            "-out",
            str(tmp_path / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )
    flower, web = Upstream("flower"), Upstream("web")
    https_port, http_port = free_port(), free_port()
    site = (
        SITE.read_text()
        .replace("server 127.0.0.1:5555;", f"server 127.0.0.1:{flower.server_port};")
        .replace("server 127.0.0.1:8000 fail_timeout=0;", f"server 127.0.0.1:{web.server_port} fail_timeout=0;")
        .replace("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
        .replace("listen 80;", f"listen 127.0.0.1:{http_port};")
        .replace("listen [::]:443 ssl;", "")
        .replace("listen [::]:80;", "")
        .replace("http2 on;", "")  # nginx >= 1.25.1 only; Debian 12 has 1.22
        .replace("/etc/letsencrypt/live/radgestmat.example.org/fullchain.pem", str(tmp_path / "cert.pem"))
        .replace("/etc/letsencrypt/live/radgestmat.example.org/privkey.pem", str(tmp_path / "key.pem"))
    )
    (tmp_path / "site.conf").write_text(site)
    temp = {name: tmp_path / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    (tmp_path / "nginx.conf").write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"daemon off;\npid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\nevents {{}}\n"
        + "http {\n"
        + f"access_log {tmp_path / 'access.log'};\n"
        + "".join(f"{name}_temp_path {path};\n" for name, path in temp.items())
        + f"include {tmp_path / 'site.conf'};\n}}\n"
    )
    proc = subprocess.Popen([binary, "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)], stderr=subprocess.PIPE)
    base = f"https://127.0.0.1:{https_port}"
    try:
        wait_until(lambda: proc.poll() is None and fetch(f"{base}/") == 200, what="nginx", timeout=20)
    except AssertionError:
        proc.kill()
        raise AssertionError(proc.stderr.read().decode() + (tmp_path / "error.log").read_text()) from None
    yield base, flower
    proc.terminate()
    proc.wait(10)
    flower.shutdown()
    web.shutdown()


def fetch(url: str) -> int:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    request = urllib.request.Request(url, headers={"Host": "radgestmat.example.org"})
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_flower_metrics_and_healthcheck_are_not_public(nginx):
    base, flower = nginx
    hidden = [
        "/flower/metrics",
        "/flower/healthcheck",
        "/flower//metrics",
        "/flower/metrics/",
        "/flower/metrics?x=1",
        "/flower/%6detrics",
        "/flower/healthcheck/",
    ]

    statuses = {path: fetch(base + path) for path in hidden}

    assert statuses == dict.fromkeys(hidden, 404)
    assert flower.paths == []
    assert (
        fetch(f"{base}/flower/") == 200 and fetch(f"{base}/flower/api/workers") == 200
    )  # the rest still reaches Flower
    assert flower.paths == ["/flower/", "/flower/api/workers"]
