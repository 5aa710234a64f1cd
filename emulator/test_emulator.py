#!/usr/bin/env python3
"""Self-test of the IoT Hub twin API emulator over real TLS.

Run: python3 emulator/test_emulator.py [-v]
Needs the openssl CLI; uses curl for one check when it is installed.
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import warnings
from urllib.parse import quote

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(ROOT, "t", "data")
sys.dont_write_bytecode = True  # leave no __pycache__ in the tree
sys.path.insert(0, HERE)
import hub_emulator  # noqa: E402  (pure functions: SAS vectors)

HUB = "testhub.azure-devices.net"
API = "api-version=2021-04-12"
SERVICE_KEY = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0wMTIzNDU2Nzg5"
SERVICE_KEY2 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
OWNER_KEY = "/////////////////////w=="
SPECIAL_DEV = "dev#?%$'()*+,;=@!:-._"
SPECIAL_MOD = "m#?%$'()*+,;=@!:-._"

# host, policy, key, expiry, expected sig (url-encoded), token as the SDK prints
VECTORS = [
    ("myhub.azure-devices.net", "service", SERVICE_KEY, "1767225600",
     "Am2feY%2Bh9dVGwhY4yTvGISelVhvPARsoVcR2IB5FuBw%3D",
     "SharedAccessSignature sr=myhub.azure-devices.net&sig=Am2feY%2Bh9dVGwhY4"
     "yTvGISelVhvPARsoVcR2IB5FuBw%3D&skn=service&se=1767225600"),
    ("contoso-prod.azure-devices.net", "iothubowner", SERVICE_KEY2,
     "2000000000", "VLl%2FyJR7frjJb90gpbhPuAoew%2BqPyYNE4IRe9kFOa00%3D",
     "SharedAccessSignature sr=contoso-prod.azure-devices.net&sig=VLl%2FyJR7"
     "frjJb90gpbhPuAoew%2BqPyYNE4IRe9kFOa00%3D&skn=iothubowner&se=2000000000"),
    ("fleet-eu.azure-devices.net", "registryReadWrite", OWNER_KEY,
     "1893456000", "FgSLJnRW9A0tR7aIP%2BmxPD6xGJ3yih6UISsFKL6%2F6ng%3D",
     "SharedAccessSignature sr=fleet-eu.azure-devices.net&sig=FgSLJnRW9A0tR7"
     "aIP%2BmxPD6xGJ3yih6UISsFKL6%2F6ng%3D&skn=registryReadWrite&se=1893456000"),
]


def raw_sig(key_b64, sr, se):
    mac = hmac.new(base64.b64decode(key_b64), f"{sr}\n{se}".encode(),
                   hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def mint(policy="service", key=SERVICE_KEY, sr=HUB, se=None, sig=None):
    """A SAS header value the way the Node SDK builds it."""
    se = str(int(time.time()) + 3600) if se is None else str(se)
    sr = quote(sr, safe="")
    sig = quote(raw_sig(key, sr, se), safe="") if sig is None else sig
    return f"SharedAccessSignature sr={sr}&sig={sig}&skn={policy}&se={se}"


def lower_escapes(text):
    return re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), text)


def enc(ident):
    return quote(ident, safe="")  # like JS encodeURIComponent, stricter


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    """Starts the emulator with a fresh certificate in a temp dir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="hub-emu-test-")
        self.cert = os.path.join(self.dir, "cert.pem")
        self.key = os.path.join(self.dir, "key.pem")
        self.log = os.path.join(self.dir, "requests.jsonl")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
             "-keyout", self.key, "-out", self.cert, "-subj", f"/CN={HUB}",
             "-addext", f"subjectAltName=DNS:{HUB},IP:127.0.0.1"],
            check=True, capture_output=True)
        self.port, self.ctl_port = free_port(), free_port()
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "hub_emulator.py"),
             "--listen", f"127.0.0.1:{self.port}", "--cert", self.cert,
             "--key", self.key, "--hub", HUB,
             "--policies", os.path.join(DATA, "hub-policies.json"),
             "--seed", os.path.join(DATA, "seed.json"),
             "--control", f"127.0.0.1:{self.ctl_port}", "--log", self.log],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.ready = self._read_ready()
        self.ctx = ssl.create_default_context(cafile=self.cert)

    def _read_ready(self):
        result = []
        reader = threading.Thread(
            target=lambda: result.append(self.proc.stdout.readline()))
        reader.start()
        reader.join(15)
        if not result or not result[0].startswith("hub-emulator ready"):
            self.proc.kill()
            raise RuntimeError(f"emulator not ready: {result} "
                               f"{self.proc.stderr.read()}")
        return result[0].rstrip("\n")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.proc.returncode, err


EMU = None


def setUpModule():
    global EMU
    EMU = Emulator()


def tearDownModule():
    rc, err = EMU.stop()
    assert rc == 0, f"emulator exit code {rc}: {err}"
    assert "Traceback" not in err, err


class Reply:
    def __init__(self, resp):
        self.status = resp.status
        self.headers = resp.getheaders()
        self.raw = resp.read()
        self.json = json.loads(self.raw) if self.raw else None

    def header(self, name):
        vals = [v for n, v in self.headers if n.lower() == name.lower()]
        return vals[0] if vals else None


class Base(unittest.TestCase):
    def setUp(self):
        self.control("POST", "/reset")

    # --- helpers ---
    def control(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", EMU.ctl_port,
                                          timeout=10)
        data = None if body is None else json.dumps(body)
        conn.request(method, path, body=data)
        reply = Reply(conn.getresponse())
        conn.close()
        return reply

    def call(self, method, target, body=None, auth=None, headers=None):
        conn = http.client.HTTPSConnection("127.0.0.1", EMU.port,
                                           context=EMU.ctx, timeout=10)
        hdrs = {"Authorization": mint() if auth is None else auth}
        if auth is False:
            del hdrs["Authorization"]
        if body is not None:
            hdrs["Content-Type"] = "application/json; charset=utf-8"
            if not isinstance(body, (bytes, str)):
                body = json.dumps(body)
        hdrs.update(headers or {})
        conn.request(method, target, body=body, headers=hdrs)
        reply = Reply(conn.getresponse())
        conn.close()
        return reply

    def twin(self, dev="dev1", mod=None):
        path = f"/twins/{enc(dev)}" + (f"/modules/{enc(mod)}" if mod else "")
        return path + "?" + API

    def assert_error(self, reply, status, name):
        self.assertEqual(reply.status, status, reply.raw)
        self.assertEqual(reply.header("iothub-errorcode"), name)
        self.assertEqual(list(reply.json), ["Message", "ExceptionMessage"])
        self.assertTrue(reply.json["Message"].startswith(f"ErrorCode:{name};"))
        self.assertRegex(reply.json["ExceptionMessage"],
                         r"^Tracking ID:[0-9a-f]{32}-G:0-TimeStamp:"
                         r"\d\d/\d\d/\d{4} \d\d:\d\d:\d\d$")
        self.assert_common(reply)

    def assert_common(self, reply):
        self.assertRegex(reply.header("x-ms-request-id"),
                         r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-"
                         r"[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
        self.assertEqual(reply.header("Content-Type"),
                         "application/json; charset=utf-8")
        self.assertEqual(int(reply.header("Content-Length")), len(reply.raw))

    def last_request(self):
        return self.control("GET", "/requests").json[-1]


class SasVectors(unittest.TestCase):
    def test_vectors(self):
        for host, policy, key, se, sig, token in VECTORS:
            self.assertEqual(quote(raw_sig(key, host, se), safe=""), sig)
            self.assertEqual(mint(policy, key, host, se), token)
            pols = {policy: hub_emulator.Policy(
                policy, [base64.b64decode(key)], frozenset())}
            ok = hub_emulator.verify_sas(token, host, pols, int(se) - 1)
            self.assertEqual(ok.name, policy)
            with self.assertRaisesRegex(hub_emulator.AuthError, "expired"):
                hub_emulator.verify_sas(token, host, pols, int(se))
            reordered = (f"SharedAccessSignature skn={policy}&se={se}"
                         f"&sr={host}&sig={lower_escapes(sig)}")
            self.assertEqual(hub_emulator.verify_sas(
                reordered, host.upper(), pols, int(se) - 1).name, policy)


class TwinRead(Base):
    def test_get_device_twin(self):
        r = self.call("GET", self.twin())
        self.assertEqual(r.status, 200)
        self.assert_common(r)
        self.assertIsNone(r.header("ETag"))
        self.assertIsNone(r.header("iothub-errorcode"))
        t = r.json
        self.assertEqual(list(t)[:4], ["deviceId", "etag", "deviceEtag",
                                       "status"])
        self.assertNotIn("moduleId", t)
        self.assertEqual((t["etag"], t["version"]), ("AAAAAAAAAAE=", 1))
        self.assertEqual(t["tags"], {"location": {"city": "Oslo"}})
        desired = t["properties"]["desired"]
        self.assertEqual(desired["telemetry"], {"interval": 30})
        self.assertEqual(desired["$version"], 1)
        self.assertIn("$lastUpdated", desired["$metadata"])
        self.assertIn("firmware", t["properties"]["reported"])
        self.assertEqual(t["x509Thumbprint"], {"primaryThumbprint": None,
                                               "secondaryThumbprint": None})

    def test_get_module_twin(self):
        t = self.call("GET", self.twin("dev1", "mod1")).json
        self.assertEqual(list(t)[:3], ["deviceId", "moduleId", "etag"])
        self.assertEqual(t["moduleId"], "mod1")
        r = self.call("GET", self.twin("dev1", "$edgeAgent"))
        self.assertEqual(r.status, 200)
        raw = self.call("GET", f"/twins/dev1/modules/$edgeAgent?{API}")
        self.assertEqual(raw.json["moduleId"], "$edgeAgent")

    def test_special_characters(self):
        r = self.call("GET", self.twin(SPECIAL_DEV))
        self.assertEqual((r.status, r.json["deviceId"]), (200, SPECIAL_DEV))
        r = self.call("GET", self.twin(SPECIAL_DEV, SPECIAL_MOD))
        self.assertEqual(r.json["moduleId"], SPECIAL_MOD)
        r = self.call("PATCH", self.twin(SPECIAL_DEV, SPECIAL_MOD),
                      {"properties": {"desired": {"level": 2}}})
        self.assertEqual(r.status, 200)
        c = self.control("GET", f"/twins/{enc(SPECIAL_DEV)}/modules/"
                                f"{enc(SPECIAL_MOD)}")
        self.assertEqual(c.json["properties"]["desired"]["level"], 2)
        self.assertEqual(self.last_request()["ids"],
                         {"deviceId": SPECIAL_DEV, "moduleId": SPECIAL_MOD})

    def test_not_found(self):
        self.assert_error(self.call("GET", self.twin("nope")), 404,
                          "DeviceNotFound")
        self.assert_error(self.call("GET", self.twin("dev1", "nope")), 404,
                          "ModuleNotFound")
        self.assert_error(self.call("GET", self.twin("dev2", "mod1")), 404,
                          "ModuleNotFound")
        for target in (f"/devices/dev1?{API}", f"/twins/dev1/?{API}",
                       f"/twins/dev1/modules?{API}", f"/?{API}"):
            self.assertEqual(self.call("GET", target).status, 404, target)

    def test_bad_requests(self):
        cases = [f"/twins/dev1", f"/twins/dev1?api-version=2018-06-30",
                 f"/twins/dev1?{API}&{API}", f"/twins/a%2Fb?{API}",
                 f"/twins/..?{API}", f"/twins/{'d' * 129}?{API}",
                 f"/twins/dev%ZZ?{API}", f"/twins/d%C3%A9v?{API}",
                 f"/twins/dev1/modules/m%00?{API}"]
        for target in cases:
            self.assert_error(self.call("GET", target), 400, "ArgumentInvalid")
        ok = self.call("GET", f"/twins/{'d' * 128}?api-version=2020-09-30")
        self.assert_error(ok, 404, "DeviceNotFound")


class TwinWrite(Base):
    def test_patch_merge_delete_and_versions(self):
        r = self.call("PATCH", self.twin(), {
            "deviceId": "ignored", "version": 99,
            "tags": {"location": {"city": None, "country": "NO"}},
            "properties": {"desired": {"telemetry": {"unit": "s"},
                                       "new": [1, 2]}}})
        self.assertEqual(r.status, 200, r.raw)
        t = r.json
        self.assertEqual(t["deviceId"], "dev1")
        self.assertEqual((t["version"], t["etag"]), (2, "AAAAAAAAAAI="))
        self.assertEqual(t["tags"], {"location": {"country": "NO"}})
        d = t["properties"]["desired"]
        self.assertEqual(d["telemetry"], {"interval": 30, "unit": "s"})
        self.assertEqual((d["new"], d["$version"]), ([1, 2], 2))
        r = self.call("PATCH", self.twin(),
                      {"properties": {"desired": {"new": None}}})
        self.assertNotIn("new", r.json["properties"]["desired"])
        self.assertEqual(r.json["properties"]["desired"]["$version"], 3)
        r = self.call("PATCH", self.twin(), {"tags": {"x": 1}})
        self.assertEqual(r.json["properties"]["desired"]["$version"], 3)
        self.assertEqual(r.json["version"], 4)
        for _ in range(3):
            r = self.call("PATCH", self.twin(), {"tags": {"x": 2}})
        self.assertEqual((r.json["version"], r.json["etag"]),
                         (7, "AAAAAAAAAAc="))
        stored = self.control("GET", "/twins/dev1").json
        self.assertEqual(stored["version"], 7)

    def test_put_replaces(self):
        r = self.call("PUT", self.twin(), {
            "tags": {"only": True},
            "properties": {"desired": {"fresh": "yes"}}})
        self.assertEqual(r.status, 200)
        d = dict(r.json["properties"]["desired"])
        self.assertEqual(d.pop("$version"), 2)
        d.pop("$metadata")
        self.assertEqual((r.json["tags"], d), ({"only": True},
                                               {"fresh": "yes"}))

    def test_if_match(self):
        stale = '"AAAAAAAAAAE="'
        r = self.call("PATCH", self.twin(), {"tags": {"a": 1}},
                      headers={"If-Match": stale})
        self.assertEqual((r.status, r.json["etag"]), (200, "AAAAAAAAAAI="))
        r = self.call("PATCH", self.twin(), {"tags": {"a": 2}},
                      headers={"If-Match": stale})
        self.assert_error(r, 412, "PreconditionFailed")
        self.assertEqual(self.control("GET", "/twins/dev1").json["tags"]["a"],
                         1)
        self.assertEqual(self.last_request()["if_match"],
                         {"mode": "quoted", "value": stale})
        r = self.call("PATCH", self.twin(), {"tags": {"a": 3}},
                      headers={"If-Match": "AAAAAAAAAAE="})
        self.assertEqual(r.status, 200)
        self.assertEqual(self.last_request()["if_match"]["mode"],
                         "unquoted-ignored")
        for value in ("*", '"*"'):
            r = self.call("PATCH", self.twin(), {"tags": {"a": 4}},
                          headers={"If-Match": value})
            self.assertEqual(r.status, 200)
            self.assertEqual(self.last_request()["if_match"]["mode"],
                             "wildcard")

    def test_write_refusals(self):
        cases = [
            ({"properties": {"reported": {"x": 1}}}, "ArgumentInvalid"),
            ({"properties": {"desired": {"$version": 3}}}, "ArgumentInvalid"),
            ({"properties": {"desired": {"a.b": 1}}}, "ArgumentInvalid"),
            ({"tags": {"a": [1, None]}}, "ArgumentInvalid"),
            ({"tags": None}, "ArgumentInvalid"),
            ({"tags": {"big": 2 ** 60}}, "ArgumentInvalid"),
            ({"tags": {"s": "x" * 4097}}, "ArgumentInvalid"),
            ("[1]", "IotHubFormatError"),
            ("{not json", "IotHubFormatError"),
            ('{"tags":{"a":1,"a":2}}', "IotHubFormatError"),
            ("", "IotHubFormatError"),
        ]
        deep = {}
        for _ in range(11):
            deep = {"k": deep}
        cases.append(({"tags": deep}, "ArgumentInvalid"))
        for body, name in cases:
            self.assert_error(self.call("PATCH", self.twin(), body), 400, name)
        r = self.call("PATCH", self.twin(), b'{"tags":{"a":"\xff"}}')
        self.assert_error(r, 400, "IotHubFormatError")
        rec = self.last_request()
        self.assertIsNone(rec["body"])
        self.assertEqual(base64.b64decode(rec["body_b64"]),
                         b'{"tags":{"a":"\xff"}}')
        self.assertEqual(self.control("GET", "/twins/dev1").json["version"], 1)

    def test_size_limit_on_merged_tags(self):
        chunk = {f"k{i}": "v" * 3000 for i in range(2)}
        self.assertEqual(self.call("PATCH", self.twin(),
                                   {"tags": chunk}).status, 200)
        r = self.call("PATCH", self.twin(), {"tags": {"k9": "v" * 3000}})
        self.assert_error(r, 400, "ArgumentInvalid")

    def test_system_module(self):
        r = self.call("PATCH", self.twin("dev1", "$edgeAgent"),
                      {"properties": {"desired": {"x": 1}}})
        self.assert_error(r, 401, "SystemModuleModifyUnauthorizedAccess")
        r = self.call("PUT", self.twin("dev1", "$edgeAgent"), {"tags": {}})
        self.assert_error(r, 401, "SystemModuleModifyUnauthorizedAccess")

    def test_methods_and_content_type(self):
        self.assert_error(self.call("DELETE", self.twin()), 405,
                          "GenericMethodNotAllowed")
        r = self.call("PATCH", self.twin(), body="{}",
                      headers={"Content-Type": "text/plain"})
        self.assertEqual(r.status, 415)


class Auth(Base):
    def expect_401(self, auth, reason):
        r = self.call("GET", self.twin(), auth=auth)
        self.assert_error(r, 401, "IotHubUnauthorizedAccess")
        rec = self.last_request()
        self.assertEqual((rec["status"], rec["auth"]), (401, reason))
        sig = auth and auth.partition("sig=")[2].partition("&")[0]
        if sig:
            self.assertNotIn(sig, r.raw.decode())

    def test_valid_variants(self):
        self.assertEqual(self.call("GET", self.twin()).status, 200)
        self.assertEqual(self.last_request()["auth"], "ok")
        for auth in (mint(key=SERVICE_KEY2),
                     mint("iothubowner", OWNER_KEY),
                     mint(sr=HUB.upper())):
            self.assertEqual(self.call("GET", self.twin(), auth=auth).status,
                             200)
        se = str(int(time.time()) + 600)
        sig = lower_escapes(quote(raw_sig(SERVICE_KEY, HUB, se), safe=""))
        self.assertEqual(self.call("GET", self.twin(), auth=(
            f"SharedAccessSignature se={se}&skn=service&sig={sig}&sr={HUB}"
        )).status, 200)

    def test_rejections(self):
        past = int(time.time()) - 1
        self.expect_401(False, "malformed")
        self.expect_401(mint(se=past), "expired")
        self.expect_401(mint(key=OWNER_KEY), "bad-signature")
        self.expect_401(mint("nosuch"), "unknown-policy")
        self.expect_401(mint("registryRead"), "insufficient-rights")
        self.expect_401(mint(sr="otherhub.azure-devices.net"),
                        "wrong-resource")
        self.expect_401(mint(sr=HUB + "/devices/dev1"), "wrong-resource")
        good = mint()
        for bad in (good.replace("SharedAccessSignature", "sharedaccesssignature"),
                    good.replace("SharedAccessSignature ", "SharedAccessSignature  "),
                    good + "&skn=service", good + "&foo=bar",
                    good.replace("&skn=service", ""),
                    good.replace("&skn=service", "&skn="),
                    good.replace("se=", "se=+"), "Bearer abc"):
            self.expect_401(bad, "malformed")

    def test_raw_plus_in_signature(self):
        se = int(time.time()) + 3600
        while "+" not in raw_sig(SERVICE_KEY, HUB, se):
            se += 1
        raw = raw_sig(SERVICE_KEY, HUB, se)
        encoded = quote(raw, safe="")
        self.assertEqual(self.call("GET", self.twin(),
                                   auth=mint(se=se, sig=encoded)).status, 200)
        self.expect_401(mint(se=se, sig=raw), "bad-signature")
        self.expect_401(mint(se=se, sig=encoded.replace("%2B", "+")),
                        "bad-signature")
        # raw '/' and '=' survive URL-decoding unchanged
        slash_ok = quote(raw, safe="/=")
        self.assertEqual(self.call("GET", self.twin(),
                                   auth=mint(se=se, sig=slash_ok)).status, 200)


class Control(Base):
    def test_request_log(self):
        body = {"tags": {"z": 1}}
        self.call("PATCH", self.twin(), body, headers={"X-Test": "one"})
        log = self.control("GET", "/requests").json
        self.assertEqual(len(log), 1)
        rec = log[0]
        self.assertEqual((rec["method"], rec["target"], rec["path"],
                          rec["query"], rec["status"], rec["auth"]),
                         ("PATCH", self.twin(), "/twins/dev1", API, 200, "ok"))
        self.assertEqual(json.loads(rec["body"]), body)
        names = [n for n, _ in rec["headers"]]
        self.assertEqual(names[0], "Host")
        self.assertIn(["X-Test", "one"], rec["headers"])
        self.assertLess(names.index("Authorization"), names.index("X-Test"))
        self.assertEqual(rec["tls"][:5], "TLSv1")
        self.assertIn(rec["tls"], ("TLSv1.2", "TLSv1.3"))
        with open(EMU.log) as fh:
            lines = [json.loads(line) for line in fh]
        self.assertEqual(lines[-1]["target"], rec["target"])

    def test_reset_and_state(self):
        self.call("PATCH", self.twin(), {"tags": {"z": 1}})
        self.control("POST", "/config", {"etag_header": True})
        self.assertEqual(self.control("POST", "/reset").status, 200)
        self.assertEqual(self.control("GET", "/requests").json, [])
        state = self.control("GET", "/state").json
        self.assertFalse(state["config"]["etag_header"])
        dev1 = [t for t in state["twins"] if t["deviceId"] == "dev1"
                and "moduleId" not in t][0]
        self.assertEqual((dev1["version"], "z" in dev1["tags"]), (1, False))
        self.assertEqual(len(state["twins"]), 6)
        self.assertEqual(self.control("GET", "/twins/nope").status, 404)
        self.assertEqual(self.control("POST", "/config",
                                      {"bogus": 1}).status, 400)

    def test_fail_injection(self):
        r = self.control("POST", "/config", {"fail": {
            "status": 429, "code": "ThrottlingException",
            "retry_after": "2", "count": 2}})
        self.assertEqual(r.status, 200)
        self.expect_status(mint(se=1), 401)  # auth failures do not consume
        for _ in range(2):
            r = self.call("PATCH", self.twin(), {"tags": {"f": 1}})
            self.assert_error(r, 429, "ThrottlingException")
            self.assertEqual(r.header("Retry-After"), "2")
        self.assertNotIn("f", self.control("GET", "/twins/dev1").json["tags"])
        self.assertEqual(self.call("GET", self.twin()).status, 200)
        self.control("POST", "/config", {"fail": {"status": 503}})
        r = self.call("GET", self.twin())
        self.assert_error(r, 503, "ServiceUnavailable")
        self.assertIsNone(r.header("Retry-After"))

    def test_rekey(self):
        new = base64.b64encode(b"a regenerated primary key").decode()
        r = self.control("POST", "/config",
                         {"keys": {"service": [new, SERVICE_KEY2]}})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["keys"], {"service": 2})
        self.assertNotIn(new, json.dumps(self.control("GET", "/state").json))
        self.expect_status(mint(key=SERVICE_KEY), 401)
        self.expect_status(mint(key=new), 200)
        self.expect_status(mint(key=SERVICE_KEY2), 200)
        self.expect_status(mint(policy="iothubowner", key=OWNER_KEY), 200)
        for bad in ({"nope": [new]}, {"service": []}, {"service": ["%%"]},
                    {"service": [new, new, new]}, ["service"]):
            self.assertEqual(self.control("POST", "/config",
                                          {"keys": bad}).status, 400)
        self.control("POST", "/reset")
        self.expect_status(mint(key=SERVICE_KEY), 200)
        self.expect_status(mint(key=new), 401)

    def expect_status(self, auth, status):
        self.assertEqual(self.call("GET", self.twin(), auth=auth).status,
                         status)

    def test_etag_header(self):
        self.control("POST", "/config", {"etag_header": True})
        r = self.call("GET", self.twin())
        self.assertEqual(r.header("ETag"), '"AAAAAAAAAAE="')
        r = self.call("PATCH", self.twin(), {"tags": {"e": 1}})
        self.assertEqual(r.header("ETag"), '"AAAAAAAAAAI="')
        self.assertIsNone(self.call("GET", self.twin("nope")).header("ETag"))

    def test_delay(self):
        self.control("POST", "/config", {"delay_ms": 300})
        start = time.monotonic()
        self.assertEqual(self.call("GET", self.twin()).status, 200)
        self.assertGreaterEqual(time.monotonic() - start, 0.3)


class Wire(Base):
    """Raw TLS connections: SNI, keep-alive, chunked bodies, bad framing."""

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", EMU.port), timeout=10)
        return EMU.ctx.wrap_socket(sock, server_hostname=HUB)

    @staticmethod
    def read_reply(tls):
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = tls.recv(4096)
            if not chunk:
                return None, None, b""
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])
        while len(rest) < length:
            rest += tls.recv(4096)
        return int(head.split()[1]), head.decode(), rest[:length]

    def test_keep_alive_sni_and_chunked(self):
        tls = self.connect()
        get = (f"GET {self.twin()} HTTP/1.1\r\nHost: {HUB}\r\n"
               f"Authorization: {mint()}\r\n\r\n").encode()
        body = b'{"tags":{"chunked":true}}'
        patch = (f"PATCH {self.twin()} HTTP/1.1\r\nHost: {HUB}\r\n"
                 f"Authorization: {mint()}\r\nContent-Type: application/json"
                 f"\r\nTransfer-Encoding: chunked\r\n\r\n").encode() + \
            b"5\r\n" + body[:5] + b"\r\n" + \
            f"{len(body) - 5:x}\r\n".encode() + body[5:] + b"\r\n0\r\n\r\n"
        for request in (get, patch, get):
            tls.sendall(request)
            status, head, _ = self.read_reply(tls)
            self.assertEqual(status, 200, head)
            self.assertNotIn("Connection: close", head)
        tls.close()
        log = self.control("GET", "/requests").json
        self.assertEqual([r["sni"] for r in log], [HUB] * 3)
        self.assertEqual(self.control("GET", "/twins/dev1").json["tags"]
                         ["chunked"], True)

    def test_bad_framing_closes(self):
        tls = self.connect()
        tls.sendall((f"PATCH {self.twin()} HTTP/1.1\r\nHost: {HUB}\r\n"
                     f"Authorization: {mint()}\r\n"
                     "Content-Length: abc\r\n\r\n").encode())
        status, head, body = self.read_reply(tls)
        self.assertEqual(status, 400)
        self.assertIn("Connection: close", head)
        self.assertIn(b"GenericBadRequest", body)
        self.assertEqual(tls.recv(10), b"")
        tls.close()
        tls = self.connect()
        tls.sendall(b"GARBAGE\r\n\r\n")
        status, _, body = self.read_reply(tls)
        self.assertEqual(status, 400)
        tls.close()
        tls = self.connect()
        tls.sendall(f"GET {self.twin()}\r\n\r\n".encode())  # HTTP/0.9
        self.assertEqual(self.read_reply(tls)[0], 400)
        tls.close()
        tls = self.connect()
        tls.sendall(f"GET {self.twin()} HTTP/1.1\r\n"
                    f"Authorization: {mint()}\r\n\r\n".encode())
        self.assertEqual(self.read_reply(tls)[0], 400)  # no Host
        tls.close()
        self.assertEqual(self.call("GET", self.twin()).status, 200)

    def test_raw_hash_in_target(self):
        self.assert_error(self.call("GET", f"/twins/dev#1?{API}"), 400,
                          "GenericBadRequest")

    def test_tls_version_floor(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(EMU.cert)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        sock = socket.create_connection(("127.0.0.1", EMU.port), timeout=10)
        with self.assertRaises((ssl.SSLError, OSError)):
            ctx.wrap_socket(sock, server_hostname=HUB)
        sock.close()

    @unittest.skipUnless(shutil.which("curl"), "curl not installed")
    def test_curl(self):
        out = subprocess.run(
            ["curl", "-sS", "--cacert", EMU.cert, "--resolve",
             f"{HUB}:{EMU.port}:127.0.0.1", "-H", f"Authorization: {mint()}",
             "-w", "\n%{http_code}",
             f"https://{HUB}:{EMU.port}{self.twin('dev1', 'mod1')}"],
            capture_output=True, text=True, timeout=20)
        body, _, code = out.stdout.rpartition("\n")
        self.assertEqual(code, "200", out.stderr)
        self.assertEqual(json.loads(body)["moduleId"], "mod1")


if __name__ == "__main__":
    unittest.main()
