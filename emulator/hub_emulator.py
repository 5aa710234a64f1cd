#!/usr/bin/env python3
"""Azure IoT Hub twin API emulator for the ngx_iothub_twin tests and demo.

Serves the service-side twin API (GET/PATCH/PUT on /twins/{id} and
/twins/{id}/modules/{mid}) over TLS with strict SAS verification, plus a
plain-HTTP control API on loopback.  Standard library only.
"""

import argparse
import base64
import copy
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import math
import re
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
import uuid
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, unquote_plus

# --------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------

ID_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    "-:.+%_#*?!(),=@;$'")
ID_MAX = 128
# RFC 3986 pchar: unreserved / pct-encoded / sub-delims / ":" / "@"
PCHAR = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    "-._~%!$&'()*+,;=:@")
PATH_CHARS = PCHAR | {"/"}
QUERY_CHARS = PCHAR | {"/", "?"}
BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
API_VERSION_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MIN_API_VERSION = "2020-09-30"

SAS_SCHEME = "SharedAccessSignature "
SAS_FIELDS = ("sr", "sig", "se", "skn")
SE_RE = re.compile(r"[0-9]{1,20}")

KEY_MAX_BYTES = 1024
STRING_MAX_BYTES = 4096
MAX_DEPTH = 10
INT_MIN, INT_MAX = -4503599627370496, 4503599627370495
TAGS_MAX_BYTES = 8 * 1024
DESIRED_MAX_BYTES = 32 * 1024

MAX_BODY = 1024 * 1024
IDLE_TIMEOUT = 120.0
HANDSHAKE_TIMEOUT = 10.0
ZERO_TIME = "0001-01-01T00:00:00Z"
JSON_TYPE = "application/json; charset=utf-8"
TWIN_METHODS = ("GET", "PATCH", "PUT")

DEFAULT_FAIL_CODES = {
    400: "ArgumentInvalid", 401: "IotHubUnauthorizedAccess",
    403: "IoTHubQuotaExceeded", 404: "DeviceNotFound",
    412: "PreconditionFailed", 429: "ThrottlingException",
    500: "InternalServerError", 503: "ServiceUnavailable",
}


# --------------------------------------------------------------------------
# Errors and responses
# --------------------------------------------------------------------------

def iso_now():
    """Hub-style timestamp with 7 fractional digits."""
    now = dt.datetime.now(dt.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def json_bytes(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class Response:
    status: int
    body: bytes
    headers: list = field(default_factory=list)
    close: bool = False
    fault: dict = None


class HubError(Exception):
    """An error answered in the hub's shape."""

    def __init__(self, status, name, text, headers=(), close=False):
        super().__init__(f"{status} {name}: {text}")
        self.status, self.name, self.text = status, name, text
        self.headers, self.close = list(headers), close

    def response(self):
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%m/%d/%Y %H:%M:%S")
        body = {"Message": f"ErrorCode:{self.name};{self.text}",
                "ExceptionMessage":
                    f"Tracking ID:{uuid.uuid4().hex}-G:0-TimeStamp:{stamp}"}
        headers = [("iothub-errorcode", self.name)] + self.headers
        return Response(self.status, json_bytes(body), headers, self.close)


def bad_argument(text):
    return HubError(400, "ArgumentInvalid", text)


def format_error(text):
    return HubError(400, "IotHubFormatError", text)


# --------------------------------------------------------------------------
# SAS tokens
# --------------------------------------------------------------------------

class AuthError(Exception):
    """SAS rejected; args[0] is a short reason for the request log."""


@dataclass
class Policy:
    name: str
    keys: list          # decoded key bytes: primary, then secondary
    rights: frozenset


def sas_signature(key, sr_raw, se_text):
    """base64(HMAC-SHA256(key, sr + "\\n" + se)), not URL-encoded."""
    mac = hmac.new(key, f"{sr_raw}\n{se_text}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def parse_sas(value):
    """Split a SharedAccessSignature header into its four raw fields."""
    if value is None or not value.startswith(SAS_SCHEME):
        raise AuthError("malformed")
    fields = {}
    for part in value[len(SAS_SCHEME):].split("&"):
        name, sep, val = part.partition("=")
        if not sep or not val or name not in SAS_FIELDS or name in fields:
            raise AuthError("malformed")
        fields[name] = val
    if len(fields) != len(SAS_FIELDS):
        raise AuthError("malformed")
    return fields


def verify_sas(value, hub, policies, now):
    """Return the Policy a header authenticates with, or raise AuthError."""
    f = parse_sas(value)
    if not SE_RE.fullmatch(f["se"]):
        raise AuthError("malformed")
    if unquote_plus(f["sr"]).lower() != hub.lower():
        raise AuthError("wrong-resource")
    if int(f["se"]) <= now:
        raise AuthError("expired")
    policy = policies.get(unquote_plus(f["skn"]))
    if policy is None:
        raise AuthError("unknown-policy")
    given = unquote_plus(f["sig"]).encode("utf-8", "replace")
    matches = [hmac.compare_digest(
        given, sas_signature(k, f["sr"], f["se"]).encode())
        for k in policy.keys]
    if not any(matches):
        raise AuthError("bad-signature")
    return policy


def load_policies(path):
    with open(path, encoding="utf-8") as fh:
        raw = json.load(fh)
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a JSON array of policies")
    policies = {}
    for item in raw:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name or name in policies:
            raise ValueError(f"{path}: bad or duplicate policy name {name!r}")
        keys = [item[k] for k in ("primaryKey", "secondaryKey") if k in item]
        if not keys:
            raise ValueError(f"{path}: policy {name} has no key")
        try:
            decoded = [base64.b64decode(k, validate=True) for k in keys]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: policy {name}: bad key: {exc}") from None
        rights = item.get("rights", [])
        if not isinstance(rights, list):
            raise ValueError(f"{path}: policy {name}: rights must be a list")
        policies[name] = Policy(name, decoded, frozenset(rights))
    return policies


# --------------------------------------------------------------------------
# Twin documents: validation, size, merge patch
# --------------------------------------------------------------------------

def utf8_len(text, what):
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise bad_argument(f"{what} is not valid UTF-8") from None


def check_key(key):
    if key == "":
        raise bad_argument("Property name must not be empty")
    if utf8_len(key, "Property name") > KEY_MAX_BYTES:
        raise bad_argument("Property name exceeds 1024 bytes")
    for ch in key:
        code = ord(ch)
        if ch in ".$ " or code < 0x20 or 0x7F < code < 0xA0:
            raise bad_argument(
                "Property name contains an invalid character "
                "('.', '$', space or control character)")


def check_value(value, depth=0, in_array=False):
    """Validate one twin value; depth counts enclosing objects."""
    if value is None:
        if in_array:
            raise bad_argument("Arrays must not contain null")
    elif isinstance(value, bool):
        pass
    elif isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise bad_argument("Integer value out of range")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise bad_argument("Number is not finite")
    elif isinstance(value, str):
        if utf8_len(value, "String value") > STRING_MAX_BYTES:
            raise bad_argument("String value exceeds 4096 bytes")
    elif isinstance(value, list):
        for item in value:
            check_value(item, depth, in_array=True)
    elif isinstance(value, dict):
        if depth + 1 > MAX_DEPTH:
            raise bad_argument("Twin exceeds the maximum depth of 10")
        for key, item in value.items():
            check_key(key)
            check_value(item, depth + 1)
    else:
        raise bad_argument("Unsupported value type")


def check_section(section, what):
    if not isinstance(section, dict):
        raise bad_argument(f"{what} must be a JSON object")
    try:
        for key, value in section.items():
            check_key(key)
            check_value(value)
    except RecursionError:
        raise bad_argument(f"{what} is nested too deeply") from None


def doc_size(value):
    """Hub size accounting: key bytes + value bytes; numbers 8, booleans 4."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return 4
    if isinstance(value, (int, float)):
        return 8
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, list):
        return sum(doc_size(v) for v in value)
    return sum(len(k.encode("utf-8")) + doc_size(v) for k, v in value.items())


def merge_patch(target, patch):
    """RFC 7396: return target merged with patch (neither is modified)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --------------------------------------------------------------------------
# Twin store
# --------------------------------------------------------------------------

def etag_of(version):
    return base64.b64encode(version.to_bytes(8, "big")).decode()


def device_etag_of(device_id):
    """Stable stand-in for the identity etag (hub style: base64 of digits)."""
    digits = str(zlib.crc32(device_id.encode()))
    return base64.b64encode(digits.encode()).decode()


def check_id(text, what):
    if (not 1 <= len(text) <= ID_MAX or text in (".", "..")
            or not all(ch in ID_CHARS for ch in text)):
        raise bad_argument(f"Invalid {what}")
    return text


@dataclass
class Twin:
    device_id: str
    module_id: str | None
    tags: dict
    desired: dict
    reported: dict
    updated: str
    version: int = 1
    desired_version: int = 1
    reported_version: int = 1
    desired_updated: str = ""
    reported_updated: str = ""

    def __post_init__(self):
        self.desired_updated = self.desired_updated or self.updated
        self.reported_updated = self.reported_updated or self.updated

    @property
    def etag(self):
        return etag_of(self.version)

    def render(self):
        doc = {"deviceId": self.device_id}
        if self.module_id is not None:
            doc["moduleId"] = self.module_id
        doc.update({
            "etag": self.etag,
            "deviceEtag": device_etag_of(self.device_id),
            "status": "enabled",
            "statusUpdateTime": ZERO_TIME,
            "connectionState": "Disconnected",
            "lastActivityTime": ZERO_TIME,
            "cloudToDeviceMessageCount": 0,
            "authenticationType": "sas",
            "x509Thumbprint": {"primaryThumbprint": None,
                               "secondaryThumbprint": None},
            "modelId": "",
            "version": self.version,
            "tags": copy.deepcopy(self.tags),
            "properties": {
                "desired": self._section(self.desired, self.desired_updated,
                                         self.desired_version),
                "reported": self._section(self.reported,
                                          self.reported_updated,
                                          self.reported_version),
            },
        })
        return doc

    @staticmethod
    def _section(values, updated, version):
        section = copy.deepcopy(values)
        section["$metadata"] = section_metadata(values, updated, version)
        section["$version"] = version
        return section

    def update(self, tags, desired):
        """Store new tags/desired (already merged) and bump versions."""
        if canonical(desired) != canonical(self.desired):
            self.desired = desired
            self.desired_version += 1
            self.desired_updated = iso_now()
        self.tags = tags
        self.version += 1


def section_metadata(values, updated, version):
    """$metadata as the hub writes it: one entry per key, nested like the
    values, each with $lastUpdated and $lastUpdatedVersion (the emulator
    keeps one time and version per section, not per key)."""
    meta = {"$lastUpdated": updated, "$lastUpdatedVersion": version}
    for key, value in values.items():
        if isinstance(value, dict):
            meta[key] = section_metadata(value, updated, version)
        else:
            meta[key] = {"$lastUpdated": updated,
                         "$lastUpdatedVersion": version}
    return meta


def canonical(doc):
    """Type-exact comparison key (in Python, 1 == 1.0 == True)."""
    return json.dumps(doc, sort_keys=True)


def twin_from_seed(entry, device_id, module_id, when):
    """Build a Twin from a seed entry, validating its sections."""
    sections = {}
    for name in ("tags", "desired", "reported"):
        value = entry.get(name, {})
        check_section(value, f"seed {name} of {device_id}/{module_id}")
        sections[name] = copy.deepcopy(value)
    return Twin(device_id, module_id, updated=when, **sections)


def build_store(seed):
    """Return {deviceId: {"twin": Twin, "modules": {moduleId: Twin}}}."""
    when = iso_now()
    devices = {}
    for entry in seed.get("devices", []):
        dev_id = check_id(entry.get("deviceId", ""), "seed deviceId")
        if dev_id in devices:
            raise ValueError(f"seed: duplicate device {dev_id!r}")
        modules = {}
        for mod in entry.get("modules", []):
            mod_id = check_id(mod.get("moduleId", ""), "seed moduleId")
            if mod_id in modules:
                raise ValueError(f"seed: duplicate module {dev_id}/{mod_id}")
            modules[mod_id] = twin_from_seed(mod, dev_id, mod_id, when)
        devices[dev_id] = {"twin": twin_from_seed(entry, dev_id, None, when),
                           "modules": modules}
    return devices


def load_seed(path):
    with open(path, encoding="utf-8") as fh:
        seed = json.load(fh)
    if not isinstance(seed, dict) or not isinstance(seed.get("devices"), list):
        raise ValueError(f"{path}: expected {{\"devices\": [...]}}")
    try:
        build_store(seed)
    except HubError as exc:
        raise ValueError(f"{path}: {exc.text}") from None
    return seed


# --------------------------------------------------------------------------
# Request parsing helpers
# --------------------------------------------------------------------------

@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: list
    body: bytes
    sni: str = None
    tls: str = None
    error: HubError = None   # framing error found while reading the body


def header_values(headers, name):
    name = name.lower()
    return [v for n, v in headers if n.lower() == name]


def decode_segment(raw, what):
    """Percent-decode one path segment exactly once and check the ID rule."""
    if BAD_ESCAPE.search(raw):
        raise bad_argument(f"Invalid {what}")
    try:
        text = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise bad_argument(f"Invalid {what}") from None
    return check_id(text, what)


def check_api_version(query):
    values = []
    for part in query.split("&") if query else []:
        name, _, value = part.partition("=")
        if unquote_plus(name) == "api-version":
            values.append(unquote_plus(value))
    if not values:
        raise bad_argument("api-version is required")
    if len(values) > 1:
        raise bad_argument("api-version given more than once")
    version = values[0]
    try:
        valid = (API_VERSION_RE.fullmatch(version)
                 and dt.date.fromisoformat(version)
                 and version >= MIN_API_VERSION)
    except ValueError:
        valid = False
    if not valid:
        raise bad_argument(f"Unsupported api-version '{version[:40]}'")
    return version


def parse_target(target):
    """Return (device_id, module_id or None) for a twin request-target."""
    path, _, query = target.partition("?")
    if (not all(ch in PATH_CHARS for ch in path)
            or not all(ch in QUERY_CHARS for ch in query)):
        raise HubError(400, "GenericBadRequest", "Invalid request target")
    seg = path.split("/")
    if len(seg) == 3 and seg[:2] == ["", "twins"]:
        raw_ids = (seg[2], None)
    elif (len(seg) == 5 and seg[:2] == ["", "twins"]
          and seg[3] == "modules"):
        raw_ids = (seg[2], seg[4])
    else:
        raise HubError(404, "GenericNotFound",
                       "The requested resource does not exist")
    check_api_version(query)
    device_id = decode_segment(raw_ids[0], "device id")
    module_id = None
    if raw_ids[1] is not None:
        module_id = decode_segment(raw_ids[1], "module id")
    return device_id, module_id


def no_duplicate_keys(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key[:40]!r}")
        obj[key] = value
    return obj


def reject_constant(name):
    raise ValueError(f"invalid JSON constant {name}")


def parse_json_body(body):
    """Parse a twin body strictly; returns a dict."""
    try:
        text = body.decode("utf-8")
        doc = json.loads(text, object_pairs_hook=no_duplicate_keys,
                         parse_constant=reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise format_error("The request body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise format_error("The request body must be a JSON object")
    return doc


def twin_patch_parts(doc):
    """Extract (tags, desired) from a twin body; None means absent."""
    tags = doc.get("tags")
    if "tags" in doc:
        check_section(tags, "tags")
    desired = None
    props = doc.get("properties")
    if "properties" in doc:
        if not isinstance(props, dict):
            raise bad_argument("properties must be a JSON object")
        if "reported" in props:
            raise bad_argument(
                "Reported properties cannot be updated by the service")
        if "desired" in props:
            desired = props["desired"]
            check_section(desired, "properties.desired")
    return tags, desired


def check_content_type(headers):
    values = header_values(headers, "Content-Type")
    if len(values) != 1:
        raise HubError(415, "GenericUnsupportedMediaType",
                       "Content-Type must be application/json")
    media, *params = [p.strip().lower() for p in values[0].split(";")]
    charset_ok = all(p in ("charset=utf-8", 'charset="utf-8"')
                     for p in params if p.startswith("charset="))
    if media != "application/json" or not charset_ok:
        raise HubError(415, "GenericUnsupportedMediaType",
                       "Content-Type must be application/json")


def if_match_of(headers):
    """Classify If-Match: (mode, raw value). Modes follow the hub's rules."""
    values = header_values(headers, "If-Match")
    if not values:
        return "absent", None
    if len(values) > 1:
        raise bad_argument("If-Match given more than once")
    value = values[0].strip()
    if value in ("*", '"*"'):
        return "wildcard", value
    if value.startswith('"'):
        return "quoted", value
    return "unquoted-ignored", value


# --------------------------------------------------------------------------
# The hub application (no sockets here)
# --------------------------------------------------------------------------

class Hub:
    """Twin state, configuration, request log and the twin API logic."""

    def __init__(self, hub_host, policies, seed, etag_header, log_path=None):
        self.hub_host = hub_host
        self.base_policies = policies
        self.policies = policies
        self.seed = seed
        self.default_etag_header = etag_header
        self.lock = threading.RLock()
        self.log_file = (open(log_path, "a", encoding="utf-8")
                         if log_path else None)
        self.reset()

    # ---- state and control ----

    def reset(self):
        with self.lock:
            self.devices = build_store(self.seed)
            self.requests = []
            self.policies = self.base_policies
            self.config = {"etag_header": self.default_etag_header,
                           "fail": None, "delay_ms": 0, "answer": None,
                           "keys": {}}

    def close(self):
        if self.log_file:
            self.log_file.close()

    def lookup(self, device_id, module_id):
        device = self.devices.get(device_id)
        if device is None:
            raise HubError(404, "DeviceNotFound",
                           f"Device {device_id} not registered")
        if module_id is None:
            return device["twin"]
        twin = device["modules"].get(module_id)
        if twin is None:
            raise HubError(404, "ModuleNotFound",
                           f"Module {module_id} on device {device_id} "
                           "not registered")
        return twin

    def twin_json(self, device_id, module_id):
        with self.lock:
            return self.lookup(device_id, module_id).render()

    def state(self):
        with self.lock:
            twins = []
            for device in self.devices.values():
                twins.append(device["twin"].render())
                twins.extend(t.render() for t in device["modules"].values())
            return {"hub": self.hub_host, "config": copy.deepcopy(self.config),
                    "requests": len(self.requests), "twins": twins}

    def request_log(self):
        with self.lock:
            return copy.deepcopy(self.requests)

    def delay_seconds(self):
        with self.lock:
            return self.config["delay_ms"] / 1000.0

    def configure(self, changes):
        """Apply a /config document; raises ValueError on bad input."""
        if not isinstance(changes, dict):
            raise ValueError("config must be a JSON object")
        unknown = set(changes) - {"etag_header", "fail", "delay_ms",
                                  "answer", "keys"}
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        update = {}
        if "etag_header" in changes:
            if not isinstance(changes["etag_header"], bool):
                raise ValueError("etag_header must be a boolean")
            update["etag_header"] = changes["etag_header"]
        if "delay_ms" in changes:
            delay = changes["delay_ms"]
            if (isinstance(delay, bool) or not isinstance(delay, int)
                    or not 0 <= delay <= 600000):
                raise ValueError("delay_ms must be an integer 0..600000")
            update["delay_ms"] = delay
        if "fail" in changes:
            update["fail"] = parse_fail(changes["fail"])
        if "answer" in changes:
            update["answer"] = parse_answer(changes["answer"])
        policies = None
        if "keys" in changes:
            policies = rekey_policies(self.policies, changes["keys"])
        with self.lock:
            if policies is not None:
                self.policies = policies
                self.config["keys"] = dict(self.config["keys"], **{
                    name: len(policies[name].keys)
                    for name in changes["keys"]})
            self.config.update(update)
            return copy.deepcopy(self.config)

    def take_injected(self, kind):
        """Consume one injected "fail" or "answer" fault, if one is pending."""
        with self.lock:
            fault = self.config[kind]
            if not fault:
                return None
            fault["remaining"] -= 1
            if fault["remaining"] <= 0:
                self.config[kind] = None
            return dict(fault)

    # ---- request log ----

    def new_record(self, req):
        path, _, query = req.target.partition("?")
        record = {"method": req.method, "target": req.target, "path": path,
                  "query": query, "headers": [list(h) for h in req.headers]}
        try:
            record["body"] = req.body.decode("utf-8")
        except UnicodeDecodeError:
            record["body"] = None
            record["body_b64"] = base64.b64encode(req.body).decode()
        record.update({"status": None, "auth": "not-checked",
                       "if_match": None, "sni": req.sni, "tls": req.tls,
                       "time": iso_now()})
        return record

    def append_record(self, record):
        with self.lock:
            self.requests.append(record)
            if self.log_file:
                self.log_file.write(json.dumps(record, ensure_ascii=False))
                self.log_file.write("\n")
                self.log_file.flush()

    # ---- twin API ----

    def handle(self, req):
        """Answer one twin-API request and log it; never raises."""
        record = self.new_record(req)
        try:
            resp = self._handle(req, record)
        except HubError as exc:
            resp = exc.response()
        except Exception:  # emulator bug: answer hub-shaped, keep serving
            traceback.print_exc(file=sys.stderr)
            resp = HubError(500, "InternalServerError",
                            "Internal error in the emulator").response()
        resp.headers.append(("x-ms-request-id", str(uuid.uuid4())))
        resp.headers.append(("Content-Type", JSON_TYPE))
        if resp.status == 200:
            resp.fault = self.take_injected("answer")
            if resp.fault:
                record["answer_fault"] = resp.fault["mode"]
        record["status"] = resp.status
        self.append_record(record)
        return resp

    def _handle(self, req, record):
        if req.error is not None:
            raise req.error
        check_host(req)
        self.authenticate(req, record)
        fail = self.take_injected("fail")
        if fail:
            record["injected"] = True
            raise injected_error(fail)
        device_id, module_id = parse_target(req.target)
        record["ids"] = {"deviceId": device_id, "moduleId": module_id}
        if req.method not in TWIN_METHODS:
            raise HubError(405, "GenericMethodNotAllowed",
                           f"Method {req.method} is not allowed",
                           headers=[("Allow", ", ".join(TWIN_METHODS))])
        if req.method == "GET":
            return self.twin_response(self.twin_json(device_id, module_id))
        return self.write_twin(req, record, device_id, module_id)

    def authenticate(self, req, record):
        values = header_values(req.headers, "Authorization")
        try:
            if len(values) != 1:
                raise AuthError("malformed")
            policy = verify_sas(values[0].strip(), self.hub_host,
                                self.policies, time.time())
            if "ServiceConnect" not in policy.rights:
                raise AuthError("insufficient-rights")
        except AuthError as exc:
            record["auth"] = exc.args[0]
            raise HubError(401, "IotHubUnauthorizedAccess",
                           "Unauthorized") from None
        record["auth"] = "ok"
        record["policy"] = policy.name

    def write_twin(self, req, record, device_id, module_id):
        check_content_type(req.headers)
        tags, desired = twin_patch_parts(parse_json_body(req.body))
        mode, value = if_match_of(req.headers)
        record["if_match"] = {"mode": mode, "value": value}
        with self.lock:
            twin = self.lookup(device_id, module_id)
            if module_id is not None and module_id.startswith("$"):
                raise HubError(401, "SystemModuleModifyUnauthorizedAccess",
                               f"Cannot modify system module {module_id}")
            if mode == "quoted" and value != f'"{twin.etag}"':
                raise HubError(412, "PreconditionFailed",
                               "Precondition failed: etag mismatch")
            if req.method == "PUT":
                new_tags = merge_patch({}, tags or {})
                new_desired = merge_patch({}, desired or {})
            else:
                new_tags = merge_patch(twin.tags, tags or {})
                new_desired = merge_patch(twin.desired, desired or {})
            check_limits(new_tags, new_desired)
            twin.update(new_tags, new_desired)
            return self.twin_response(twin.render())

    def twin_response(self, doc):
        headers = []
        with self.lock:
            if self.config["etag_header"]:
                headers.append(("ETag", f'"{doc["etag"]}"'))
        return Response(200, json_bytes(doc), headers)


def check_host(req):
    hosts = header_values(req.headers, "Host")
    if len(hosts) > 1 or (not hosts and req.version == "HTTP/1.1"):
        raise HubError(400, "GenericBadRequest",
                       "Exactly one Host header is required")


def check_limits(tags, desired):
    if doc_size(tags) > TAGS_MAX_BYTES:
        raise bad_argument("Twin tags exceed the size limit of 8192 bytes")
    if doc_size(desired) > DESIRED_MAX_BYTES:
        raise bad_argument(
            "Twin desired properties exceed the size limit of 32768 bytes")


def rekey_policies(policies, keys):
    """The policies with new keys, from the "keys" part of /config: the
    keys a policy now accepts (a regenerated or removed key is refused
    from then on).  The keys themselves are never shown back."""
    if not isinstance(keys, dict):
        raise ValueError("keys must be an object of policy names")
    result = dict(policies)
    for name, values in keys.items():
        if name not in policies:
            raise ValueError(f"keys: no policy {name!r}")
        if not isinstance(values, list) or not 1 <= len(values) <= 2 \
                or not all(isinstance(v, str) for v in values):
            raise ValueError(f"keys.{name} must be a list of 1 or 2 keys")
        try:
            decoded = [base64.b64decode(v, validate=True) for v in values]
        except ValueError:
            raise ValueError(f"keys.{name}: a key is not base64") from None
        result[name] = Policy(name, decoded, policies[name].rights)
    return result


def parse_fail(fail):
    """Validate the "fail" part of /config."""
    if fail is None:
        return None
    if not isinstance(fail, dict):
        raise ValueError("fail must be an object or null")
    unknown = set(fail) - {"status", "code", "retry_after", "count", "message"}
    if unknown:
        raise ValueError(f"unknown fail keys: {sorted(unknown)}")
    status = fail.get("status")
    if isinstance(status, bool) or not isinstance(status, int) \
            or not 400 <= status <= 599:
        raise ValueError("fail.status must be an integer 400..599")
    code = fail.get("code", DEFAULT_FAIL_CODES.get(status))
    count = fail.get("count", 1)
    retry = fail.get("retry_after")
    message = fail.get("message", "Injected failure")
    if not isinstance(code, str) or not re.fullmatch(r"[A-Za-z0-9]+", code):
        raise ValueError("fail.code must be an alphanumeric error name")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError("fail.count must be a positive integer")
    if retry is not None:
        retry = str(retry)
        if not re.fullmatch(r"[\x21-\x7e ]{1,64}", retry):
            raise ValueError("fail.retry_after must be a short header value")
    if not isinstance(message, str) or re.search(r"[\x00-\x1f]", message):
        raise ValueError("fail.message must be a single-line string")
    return {"status": status, "code": code, "retry_after": retry,
            "count": count, "remaining": count, "message": message}


ANSWER_MODES = ("cut", "stall", "not_json", "etag", "chunked", "huge",
                "spaced")


def parse_answer(answer):
    """Validate the "answer" part of /config: a fault on the next 200s."""
    if answer is None:
        return None
    if not isinstance(answer, dict):
        raise ValueError("answer must be an object or null")
    unknown = set(answer) - {"mode", "etag", "count", "stall_ms"}
    if unknown:
        raise ValueError(f"unknown answer keys: {sorted(unknown)}")
    if answer.get("mode") not in ANSWER_MODES:
        raise ValueError(f"answer.mode must be one of {ANSWER_MODES}")
    count = answer.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError("answer.count must be a positive integer")
    etag = answer.get("etag", "")
    if not isinstance(etag, str):
        raise ValueError("answer.etag must be a string")
    stall = answer.get("stall_ms", 3000)
    if isinstance(stall, bool) or not isinstance(stall, int) \
            or not 0 <= stall <= 60000:
        raise ValueError("answer.stall_ms must be an integer 0..60000")
    return {"mode": answer["mode"], "etag": etag, "remaining": count,
            "stall_ms": stall}


def faulty_body(fault, body):
    """The body a faulty hub sends instead of the twin it applied."""
    mode = fault["mode"]
    if mode == "not_json":
        return b"<html><body>Service temporarily unavailable</body></html>"
    if mode == "huge":
        return (b'{"deviceId":"pad","pad":"' + b"a" * (1024 * 1024 + 16)
                + b'"}')
    if mode == "spaced":
        # the same twin, indented: valid JSON with whitespace everywhere
        return json.dumps(json.loads(body), indent=2,
                          ensure_ascii=False).encode() + b"\n"
    if mode == "etag":
        doc = json.loads(body)
        marker = b'"etag":' + json.dumps(doc["etag"]).encode()
        raw = b'"etag":"' + fault["etag"].encode("latin-1") + b'"'
        return body.replace(marker, raw, 1)
    return body


def injected_error(fail):
    headers = [("Retry-After", fail["retry_after"])] \
        if fail["retry_after"] else []
    return HubError(fail["status"], fail["code"], fail["message"], headers)


# --------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------

class QuietHandler(BaseHTTPRequestHandler):
    """Common HTTP/1.1 handler: raw target, quiet unless --verbose."""

    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT
    wbufsize = 64 * 1024  # head and body leave in one write (no Nagle stall)

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def version_string(self):
        return self.server_version

    def handle_expect_100(self):
        ok = super().handle_expect_100()
        self.wfile.flush()
        return ok

    def raw_target(self):
        words = self.requestline.split()
        return words[1] if len(words) >= 2 else self.path

    def log_message(self, fmt, *args):
        if self.server.verbose:
            super().log_message(fmt, *args)

    def send(self, resp):
        if resp.fault:
            return self.send_faulty(resp)
        self.send_response(resp.status)
        for name, value in resp.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(resp.body)))
        if resp.close:
            self.close_connection = True
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)
        self.wfile.flush()


    def send_faulty(self, resp):
        """A 200 that goes wrong after its headers, or is not a twin."""
        fault = resp.fault
        body = faulty_body(fault, resp.body)
        self.send_response(resp.status)
        for name, value in resp.headers:
            self.send_header(name, value)
        if fault["mode"] == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 100):
                piece = body[i:i + 100]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault["mode"] in ("cut", "stall"):
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            if fault["mode"] == "stall":
                time.sleep(fault["stall_ms"] / 1000.0)
            self.close_connection = True
            return
        self.wfile.write(body)
        self.wfile.flush()


class TwinHandler(QuietHandler):
    """The HTTPS twin API."""

    server_version = "Microsoft-HTTPAPI/2.0"

    def serve(self):
        if self.request_version not in ("HTTP/1.0", "HTTP/1.1"):
            return self.send_error(400, "HTTP/1.0 or HTTP/1.1 required")
        body, error = b"", None
        try:
            body = self.read_body()
        except HubError as exc:
            error = exc
            self.close_connection = True
        conn = self.connection
        req = Request(self.command, self.raw_target(), self.request_version,
                      list(self.headers.items()), body,
                      sni=getattr(conn, "emu_sni", None),
                      tls=conn.version() if hasattr(conn, "version") else None,
                      error=error)
        resp = self.server.hub.handle(req)
        delay = self.server.hub.delay_seconds()
        if delay:
            time.sleep(delay)
        self.send(resp)

    do_GET = do_PATCH = do_PUT = do_POST = do_DELETE = serve
    do_HEAD = do_OPTIONS = serve

    def read_body(self):
        te = self.headers.get_all("Transfer-Encoding") or []
        cl = self.headers.get_all("Content-Length") or []
        if te and cl:
            raise framing("Both Transfer-Encoding and Content-Length given")
        if te:
            if [v.strip().lower() for v in te] != ["chunked"]:
                raise framing("Unsupported Transfer-Encoding")
            return self.read_chunked()
        if not cl:
            return b""
        if len(set(v.strip() for v in cl)) != 1 \
                or not re.fullmatch(r"[0-9]{1,12}", cl[0].strip()):
            raise framing("Invalid Content-Length")
        length = int(cl[0])
        if length > MAX_BODY:
            raise too_large()
        data = self.rfile.read(length)
        if len(data) != length:
            raise framing("Request body shorter than Content-Length")
        return data

    def read_chunked(self):
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            size_text = line.split(b";", 1)[0].strip()
            if not line.endswith(b"\n") or \
                    not re.fullmatch(rb"[0-9A-Fa-f]{1,8}", size_text):
                raise framing("Invalid chunk size")
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > MAX_BODY:
                raise too_large()
            chunks.append(self.rfile.read(size))
            if self.rfile.read(2) != b"\r\n":
                raise framing("Invalid chunk terminator")
        while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
            pass  # skip trailers
        return b"".join(chunks)

    def send_error(self, code, message=None, explain=None):
        """Errors raised by the HTTP parser itself, answered hub-shaped."""
        self.close_connection = True
        if self.request_version not in ("HTTP/1.0", "HTTP/1.1"):
            self.request_version = "HTTP/1.1"  # always send a status line
        name = {400: "GenericBadRequest", 414: "GenericRequestUriTooLong",
                431: "GenericBadRequest", 501: "GenericNotImplemented",
                505: "GenericBadRequest"}.get(code, "GenericBadRequest")
        resp = HubError(code, name, message or "Bad request").response()
        resp.headers += [("x-ms-request-id", str(uuid.uuid4())),
                         ("Content-Type", JSON_TYPE)]
        self.send(resp)


def framing(text):
    return HubError(400, "GenericBadRequest", text, close=True)


def too_large():
    return HubError(413, "GenericRequestEntityTooLarge",
                    "Request body too large", close=True)


class ControlHandler(QuietHandler):
    """Plain-HTTP control API for tests (no auth, loopback only)."""

    server_version = "hub-emulator-control"

    def do_GET(self):
        hub, path = self.server.hub, self.raw_target().partition("?")[0]
        if path == "/requests":
            return self.reply(200, hub.request_log())
        if path == "/state":
            return self.reply(200, hub.state())
        if path == "/config":
            return self.reply(200, hub.state()["config"])
        seg = path.split("/")
        if seg[:2] == ["", "twins"] and (
                len(seg) == 3 or (len(seg) == 5 and seg[3] == "modules")):
            module = unquote(seg[4]) if len(seg) == 5 else None
            try:
                return self.reply(200, hub.twin_json(unquote(seg[2]), module))
            except HubError as exc:
                return self.reply(exc.status, {"error": exc.name})
        return self.reply(404, {"error": "not found"})

    def do_POST(self):
        hub, path = self.server.hub, self.raw_target().partition("?")[0]
        body = self.read_body()
        if body is None:
            return None
        if path == "/reset":
            hub.reset()
            return self.reply(200, {"ok": True})
        if path == "/config":
            try:
                return self.reply(200, hub.configure(json.loads(body or b"{}")))
            except ValueError as exc:
                return self.reply(400, {"error": str(exc)})
        return self.reply(404, {"error": "not found"})

    def read_body(self):
        length = self.headers.get("Content-Length", "0").strip()
        if self.headers.get("Transfer-Encoding") or not length.isdigit() \
                or int(length) > MAX_BODY:
            self.close_connection = True
            self.reply(400, {"error": "send a Content-Length body"})
            return None
        return self.rfile.read(int(length))

    def reply(self, status, obj):
        self.send(Response(status, json_bytes(obj),
                           [("Content-Type", JSON_TYPE)]))


class QuietServerMixin:
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        if self.verbose:
            super().handle_error(request, client_address)


class ControlServer(QuietServerMixin, ThreadingHTTPServer):
    pass


class TlsServer(QuietServerMixin, ThreadingHTTPServer):
    """Threaded HTTPS server; the TLS handshake runs in the worker thread."""

    def finish_request(self, request, client_address):
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            conn = self.tls_context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            conn.close()


def make_tls_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)

    def remember_sni(sock, server_name, _ctx):
        sock.emu_sni = server_name

    ctx.sni_callback = remember_sni
    return ctx


def split_hostport(text):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def make_server(cls, addr, handler, hub, verbose):
    if ":" in addr[0]:
        cls = type(cls.__name__ + "V6", (cls,),
                   {"address_family": socket.AF_INET6})
    server = cls(addr, handler)
    server.hub, server.verbose = hub, verbose
    return server


def is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def show_addr(addr):
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_args(argv):
    p = argparse.ArgumentParser(description="Azure IoT Hub twin API emulator")
    p.add_argument("--listen", required=True, help="HTTPS HOST:PORT")
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--hub", required=True, help="hub host name (SAS sr)")
    p.add_argument("--policies", required=True)
    p.add_argument("--seed", required=True)
    p.add_argument("--control", required=True, help="loopback HOST:PORT")
    p.add_argument("--log", help="append twin-API requests as JSON lines")
    p.add_argument("--etag-header", action="store_true",
                   help="send an ETag header on twin responses")
    p.add_argument("--verbose", action="store_true")
    return p.parse_args(argv)


def start(args):
    """Build and bind both servers; returns (hub, [servers])."""
    listen, control = split_hostport(args.listen), split_hostport(args.control)
    if not is_loopback(control[0]):
        raise ValueError("--control must be a loopback address")
    hub = Hub(args.hub, load_policies(args.policies), load_seed(args.seed),
              args.etag_header, args.log)
    tls = make_server(TlsServer, listen, TwinHandler, hub, args.verbose)
    tls.tls_context = make_tls_context(args.cert, args.key)
    ctl = make_server(ControlServer, control, ControlHandler, hub,
                      args.verbose)
    return hub, [tls, ctl]


def main(argv=None):
    args = parse_args(argv)
    try:
        hub, servers = start(args)
    except (OSError, ValueError, ssl.SSLError) as exc:
        print(f"hub-emulator: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    https, ctl = (show_addr(s.server_address) for s in servers)
    print(f"hub-emulator ready https={https} control={ctl}", flush=True)
    while not stop.wait(0.5):
        pass
    for server in servers:
        server.shutdown()
        server.server_close()
    hub.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
